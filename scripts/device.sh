#!/usr/bin/env bash
# The GPU run, prepared for a session that is lent the device machine (an H200, 15 minutes of device
# time in all: /work/.library/device/README.md). It trains the five built-in students further at once
# on the one GPU (issue #32: from the shipped built-ins, same width, their official teachers labelling),
# for a fixed time, and brings the best checkpoints back.
#
#   scripts/device.sh pack            here: .device/ (git-ignored, about 25 MB with the 40 MB of tracked
#                                     files, under the 64 MiB a call carries): the five official teachers
#                                     from ../shared and 800 training photos (none of the hold-outs) at 256 px
#   device run: command "scripts/device.sh distill 8", carry [".device"], timeout_s 600
#                                     there: the five students side by side on the GPU for 8 minutes (the
#                                     learning rate decays by then), checkpoints, logs and a sample grid to $OUT
#   scripts/device.sh unpack DIR      here: DIR/STYLE.pt into runs/distill-STYLE/best.pt; then
#                                     scripts/builtins.sh export STYLE and metrics
#   scripts/device.sh distill 1 cpu   a dry run of the device step here (a minute, no GPU; OUT=/tmp/device-out)
set -euo pipefail
cd "$(dirname "$0")/.."
STYLES="anime 3d handdrawn sketch artstyle"
S=../shared

case "${1:-}" in
  pack)
    rm -rf .device && mkdir -p .device/teachers
    for style in $STYLES; do cp "$S/models/official/dctnet_$style.tflite" .device/teachers/; done
    .venv/bin/python - <<'EOF'
from pathlib import Path

import cv2

from dctoon.train._util import dataset_files

for folder, n in (("face-photos", 560), ("handdrawn-portraits-photos", 240)):
    train = dataset_files(Path("../shared/data") / folder, "train", 0.1)  # the hold-out stays here
    out = Path(".device/photos") / folder
    out.mkdir(parents=True)
    for path in train[:: max(1, len(train) // n)][:n]:
        img = cv2.imread(str(path))
        scale = min(1.0, 256 / max(img.shape[:2]))
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(out / (path.stem + ".jpg")), img, [cv2.IMWRITE_JPEG_QUALITY, 85])
EOF
    du -sh .device ;;
  distill)
    minutes=${2:-8}; device=${3:-cuda}; out=${OUT:-/tmp/device-out}; runs=/tmp/dctoon-device-runs
    mkdir -p "$out" "$runs"
    export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1
    python=python3; [ -x .venv/bin/python ] && python=.venv/bin/python
    { date -u; nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1 || true; } > "$out/machine.txt"
    stop=$(date -u -d "+$minutes min" +%H:%M)
    batch=32 pool=800; [ "$device" = cpu ] && batch=4 pool=16
    for style in $STYLES; do  # the pool's teacher labels on the CPU (3 threads each), the student on the GPU
      $python -m dctoon train distill --teacher ".device/teachers/dctnet_$style.tflite" --photos .device/photos/* \
        --out "$runs/$style" --pool "$pool" --steps 1000000 --batch "$batch" --res 192 --channel 28 --blocks 4 \
        --init "src/dctoon/builtin/$style" --lr 2e-4 --warmup 50 --threads 3 --device "$device" --sample-every 1000 --stop-at "$stop" --resume \
        > "$runs/$style.log" 2>&1 &
    done
    wait || true
    for style in $STYLES; do cp "$runs/$style/best.pt" "$out/$style.pt" || true; done
    tar czf "$out/logs.tgz" -C "$runs" $(cd "$runs" && ls -d *.log */log.jsonl 2>/dev/null) \
      $(cd "$runs" && for s in $STYLES; do ls "$s"/samples/*.jpg 2>/dev/null | tail -n 1; done)
    tail -n 2 "$runs"/*.log ;;
  unpack)
    for style in $STYLES; do
      [ -f "$2/$style.pt" ] || continue
      if [ -e "runs/distill-$style/best.pt" ]; then echo "runs/distill-$style/best.pt exists: kept"; continue; fi
      mkdir -p "runs/distill-$style" && cp "$2/$style.pt" "runs/distill-$style/best.pt"
    done ;;
  *)
    sed -n '2,15p' "$0"; exit 2 ;;
esac
