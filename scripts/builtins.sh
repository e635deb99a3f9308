#!/usr/bin/env bash
# How the built-in styles are made (a maintainer's script, not needed to use dctoon):
#   scripts/builtins.sh distill STYLE [STEPS] [THREADS] [DEVICE]
#                                                         distil the official STYLE (../shared) into runs/distill-STYLE
#                                                         (DEVICE cuda on a GPU machine; default cpu)
#   scripts/builtins.sh export STYLE                      write src/dctoon/builtin/NAME from that run
#   scripts/builtins.sh metrics                           python bench/fidelity.py, then each card gets its numbers
# STYLE is an official DCT-Net style: anime 3d handdrawn sketch artstyle sd-design sd-illustration.
set -euo pipefail
cd "$(dirname "$0")/.."
S="$(realpath ../shared)"
PY=.venv/bin/python
name() { case "$1" in sd-design) echo design;; sd-illustration) echo illustration;; *) echo "$1";; esac; }
describe() {
  case "$1" in
    anime) echo "Anime: big clean eyes, smooth pale skin, flat colour, drawn hair";;
    3d) echo "3D: the look of a 3D animated film, soft shading and large eyes";;
    handdrawn) echo "Hand-drawn: a coloured illustration with drawn outlines";;
    sketch) echo "Sketch: a monochrome pencil drawing";;
    artstyle) echo "Art style: a painterly portrait with bold colour";;
    sd-design) echo "Design: a stylised illustration trained on Stable-Diffusion design exemplars";;
    sd-illustration) echo "Illustration: soft illustrated portraits trained on Stable-Diffusion exemplars";;
  esac
}

case "$1" in
  distill)
    style=$2; steps=${3:-1500}; threads=${4:-2}; device=${5:-cpu}
    .venv/bin/dctoon train distill --teacher "$S/models/official/dctnet_$style.tflite" \
      --photos "$S/data/face-photos" "$S/data/handdrawn-portraits-photos" --out "runs/distill-$style" \
      --pool 1500 --steps "$steps" --channel 16 --blocks 4 --init teacher --threads "$threads" --device "$device" --resume ;;
  export)
    style=$2; n=$(name "$style")
    $PY -c "from skimage import data; import cv2; cv2.imwrite('/tmp/dctoon-preview.png', data.astronaut()[16:272, 124:380, ::-1])"
    .venv/bin/dctoon train export "runs/distill-$style/checkpoint.pt" --out "src/dctoon/builtin/$n" --name "$n" \
      --description "$(describe "$style") (distilled from DCT-Net's official $style style: c=16, 4 blocks, 3.7x fewer operations)" \
      --preview /tmp/dctoon-preview.png \
      --command "dctoon train distill --teacher dctnet_$style.tflite --photos face-photos handdrawn-portraits-photos --pool 1500 --channel 16 --blocks 4 --init teacher (scripts/builtins.sh distill $style; steps in this card)" ;;
  metrics)
    $PY bench/fidelity.py --sheet
    for style in anime 3d handdrawn sketch artstyle sd-design sd-illustration; do
      n=$(name "$style"); [ -d "src/dctoon/builtin/$n" ] || continue
      $PY -c "
import json, sys
r = json.load(open('bench/.cache/fidelity.json'))['$style']
f = r['faces']
r['summary'] = (f\"{r['mean_psnr']:.1f} dB mean PSNR to the teacher through the compound pipeline; faces detected \"
                f\"{f['faces_student']:.1%} (teacher {f['faces_teacher']:.1%})\")
r['eval'] = 'bench/fidelity.py: held-out face photos, the shared images and 1 frame/s of the shared videos'
json.dump(r, open('/tmp/dctoon-metrics.json', 'w'))"
      .venv/bin/dctoon train export "src/dctoon/builtin/$n" --out "src/dctoon/builtin/$n" --name "$n" \
        --metrics /tmp/dctoon-metrics.json --preview /tmp/dctoon-preview.png
    done ;;
  *) echo "usage: $0 distill STYLE [STEPS] [THREADS] [DEVICE] | export STYLE | metrics" >&2; exit 2 ;;
esac
