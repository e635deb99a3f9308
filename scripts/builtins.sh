#!/usr/bin/env bash
# How the built-in styles are made (a maintainer's script, not needed to use dctoon):
#   [STOP_AT=HH:MM] [LR=2e-4] [WARMUP=50] [POOL=1500] [INIT=teacher] [CALIB=24] [CALIB_KINDS="KIND ..."] [WIDTH=C] scripts/builtins.sh distill STYLE [STEPS] [THREADS] [DEVICE]
#                                                         distil the official STYLE (../shared) into runs/distill-STYLE:
#                                                         the first round from the teacher cut to the built-in's width,
#                                                         later rounds from the shipped built-in (resumable; DEVICE cuda
#                                                         on a GPU machine; default cpu)
#   [RUNS=DIR] scripts/builtins.sh export STYLE           write src/dctoon/builtin/NAME from that run (DIR: runs)
#   scripts/builtins.sh metrics [STYLE...]                python bench/fidelity.py (all built-ins, or those), then each
#                                                         card gets its numbers
#   scripts/builtins.sh avatar [STOP_AT] [DEVICE]         fine-tune the official handdrawn style on the AvatarHQ pairs
#                                                         twice (selfies' content weight 1 and 2, side by side, into
#                                                         runs/avatar-c1 and -c2), then average their best steps
#                                                         0.7/0.3 into runs/avatar/average.pt
#   scripts/builtins.sh avatar-export                     write src/dctoon/builtin/avatar (radius-4 flat fills) from
#                                                         runs/avatar/average.pt,
#                                                         with its bench/artist.py and held-out selfie numbers
# STYLE is an official DCT-Net style: anime 3d handdrawn sketch artstyle sd-design sd-illustration.
set -euo pipefail
cd "$(dirname "$0")/.."
S="$(realpath ../shared)"
FIDELITY="--faces 12 --every 3 --sets faces,sheet,frames"  # the held-out sets of bench/fidelity.py the cards quote
PY=.venv/bin/python
# the avatar recipe: weights chosen by short runs compared on the validation pairs and on training selfies
# (src/dctoon/train/README.md); the shipped model averages the best validation steps (400 of 500) of two runs
# of exactly these flags, with --w-content 1 and 2, weighted 0.7 and 0.3
AVATAR_FLAGS="--res 160 --batch 4 --lr 1e-4 --w-pixel 3 --w-gradient 3 --w-ink 3 --paper skip --anchor photo --lowpass-weight 0.25 --steps 500 --sample-every 100 --threads 1"
AVATAR_AVERAGE="runs/avatar-c1/best.pt runs/avatar-c2/best.pt --weights 0.7 0.3"
# each built-in's width: the Pareto table of bench/RESULTS.md ("Built-in students"); WIDTH=C tries another
width() { [ -n "${WIDTH:-}" ] && echo "$WIDTH" && return; case "$1" in anime|handdrawn|3d) echo 31;; *) echo 28;; esac; }
name() { case "$1" in sd-design) echo design;; sd-illustration) echo illustration;; *) echo "$1";; esac; }
describe() {
  case "$1" in
    anime) echo "Anime: big clean eyes, smooth pale skin, flat colour and drawn hair";;
    3d) echo "3D: the look of a 3D animated film, soft shading and large eyes";;
    handdrawn) echo "Hand-drawn: a coloured illustration with drawn outlines";;
    sketch) echo "Sketch: a monochrome pencil drawing";;
    artstyle) echo "Art style: a painterly portrait with bold colour";;
    sd-design) echo "Design: a stylised, poster-like illustration";;
    sd-illustration) echo "Illustration: a soft illustrated portrait";;
  esac
}

case "$1" in
  distill)
    # the first round cuts the teacher (dctoon.train.compress); a later one resumes from the shipped student
    style=$2; steps=${3:-1500}; threads=${4:-2}; device=${5:-cpu}; n=$(name "$style")
    # INIT=teacher cuts again (a new width, or more calibration inputs)
    init=teacher
    grep -qs '"trainer": "dctoon.train.distill' "src/dctoon/builtin/$n/style.json" && init="src/dctoon/builtin/$n"
    init=${INIT:-$init}
    .venv/bin/dctoon train distill --teacher "$S/models/official/dctnet_$style.tflite" \
      --photos "$S/data/face-photos" "$S/data/handdrawn-portraits-photos" --out "runs/distill-$style" \
      --pool "${POOL:-1500}" --steps "$steps" --channel "$(width "$style")" --blocks 4 --init "$init" --threads "$threads" \
      --lr "${LR:-2e-4}" --warmup "${WARMUP:-50}" --calib "${CALIB:-24}" ${CALIB_KINDS:+--calib-kinds $CALIB_KINDS} --sample-every 50 --device "$device" --resume ${STOP_AT:+--stop-at "$STOP_AT"} ;;
  export)
    style=$2; n=$(name "$style"); c=$(width "$style")
    $PY -c "from skimage import data; import cv2; cv2.imwrite('/tmp/dctoon-preview.png', data.astronaut()[16:272, 124:380, ::-1])"
    tmp=$(mktemp -d)
    .venv/bin/dctoon train export "${RUNS:-runs}/distill-$style/best.pt" --out "$tmp/$n" --name "$n" \
      --description "$(describe "$style"). Distilled from DCT-Net's official $style style." \
      --preview /tmp/dctoon-preview.png \
      --command "dctoon train distill --teacher dctnet_$style.tflite --photos face-photos handdrawn-portraits-photos --pool POOL --calib CALIB --channel $c --blocks 4 --init teacher|builtin (scripts/builtins.sh distill $style; the pool, calibration, steps and rounds in this card)"
    rm -rf "src/dctoon/builtin/$n" && mv "$tmp/$n" "src/dctoon/builtin/$n" && rmdir "$tmp" ;;
  metrics)
    shift; styles=${*:-anime 3d handdrawn sketch artstyle sd-design sd-illustration}
    # all: the contact sheet too; some: their numbers (the others' stay in bench/.cache/fidelity.json)
    if [ $# -gt 0 ]; then $PY bench/fidelity.py $FIDELITY --styles $styles; else $PY bench/fidelity.py --sheet $FIDELITY; fi
    for style in $styles; do
      n=$(name "$style"); [ -d "src/dctoon/builtin/$n" ] || continue
      $PY -c "
import json, sys
r = json.load(open('bench/.cache/fidelity.json'))['$style']
f = r['faces']
r['summary'] = (f\"{r['mean_psnr']:.1f} dB mean PSNR to the teacher through the compound pipeline; faces detected \"
                f\"{f['faces_student']:.1%} (teacher {f['faces_teacher']:.1%})\")
r['eval'] = 'bench/fidelity.py $FIDELITY: held-out face photos, the shared images and frames of the shared videos'
json.dump(r, open('/tmp/dctoon-metrics.json', 'w'))"
      .venv/bin/dctoon train export "src/dctoon/builtin/$n" --out "src/dctoon/builtin/$n" --name "$n" \
        --metrics /tmp/dctoon-metrics.json --preview /tmp/dctoon-preview.png
    done ;;
  avatar)
    for c in 1 2; do
      .venv/bin/dctoon train ttn --pairs "$S/data/handdrawn-portraits-photos" "$S/data/handdrawn-portraits" \
        --photos "$S/data/face-photos" --init "$S/models/official/dctnet_handdrawn.tflite" $AVATAR_FLAGS \
        --w-content "$c" --out "runs/avatar-c$c" --device "${3:-cpu}" --resume ${2:+--stop-at "$2"} &
    done
    wait
    mkdir -p runs/avatar
    .venv/bin/dctoon train average $AVATAR_AVERAGE --out runs/avatar/average.pt ;;
  avatar-export)
    $PY -c "from skimage import data; import cv2; cv2.imwrite('/tmp/dctoon-preview.png', data.astronaut()[16:272, 124:380, ::-1])"
    .venv/bin/dctoon train export runs/avatar/average.pt --out runs/avatar-style --name avatar --fill-radius 4
    $PY bench/artist.py --styles runs/avatar-style --json /tmp/dctoon-artist.json
    .venv/bin/dctoon train evaluate runs/avatar-style --photos "$S/data/face-photos" \
      --exemplars "$S/data/handdrawn-portraits" --out /tmp/dctoon-selfies.json
    $PY -c "
import json
a, f = json.load(open('/tmp/dctoon-artist.json')), json.load(open('/tmp/dctoon-selfies.json'))
json.dump({'against_the_artist': {'pairs': a['pairs'], 'eval': 'bench/artist.py: the 10% hash hold-out of the'
           ' AvatarHQ pairs, never trained on, compound pipeline, face ellipse of 256x256', **a['results']['runs/avatar-style']},
           'held_out_selfies': f['ours'] | {'n': f['n_eval']}}, open('/tmp/dctoon-metrics.json', 'w'))"
    .venv/bin/dctoon train export runs/avatar/average.pt --out src/dctoon/builtin/avatar --name avatar --fill-radius 4 \
      --description "Avatar: flat fills, crisp edges, clean features and dark strokes, as an artist draws over a portrait. DCT-Net's official handdrawn style fine-tuned on 145 AvatarHQ photo/drawing pairs (17 more for early stopping), two runs averaged, exported with flat fills (radius 4)" \
      --license "Weights: dctoon project, fine-tuned from DCT-Net's handdrawn style (Men et al., SIGGRAPH 2022, Alibaba DAMO Academy, Apache-2.0) on AvatarHQ drawings (CC BY-NC-SA 4.0) and selfie2anime photos (research use): non-commercial, share-alike." \
      --source "dctoon train ttn --pairs (this repository; scripts/builtins.sh avatar)" \
      --metrics /tmp/dctoon-metrics.json --preview /tmp/dctoon-preview.png \
      --command "scripts/builtins.sh avatar: dctoon train ttn --pairs handdrawn-portraits-photos handdrawn-portraits --photos face-photos --init dctnet_handdrawn.tflite $AVATAR_FLAGS --w-content C --out runs/avatar-cC, for C in 1 2; dctoon train average $AVATAR_AVERAGE" ;;
  *) echo "usage: $0 distill STYLE [STEPS] [THREADS] [DEVICE] | export STYLE | metrics | avatar [STOP_AT] [DEVICE] | avatar-export" >&2; exit 2 ;;
esac
