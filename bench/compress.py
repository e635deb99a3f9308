"""What a cut keeps of its teacher before any training, per width and method.

    python bench/compress.py [--style anime] [--sizes 30/4,28/4,24/4] [--calib 24] [--test 16] [--threads 2]

The official STYLE network (../shared/models/official) is cut to each size three ways
(:mod:`dctoon.train.compress`): the channels chosen by activation spread with nothing folded, with
the dropped channels' means folded into their consumers' biases, and that plus the least-squares
refit of every layer. Calibration: ``--calib`` training face photos; test: ``--test`` held-out face
photos (data/face-photos' 10% hash hold-out), 256 px. PSNR of the final image (generator and guided
filter) against the teacher's. Prints a markdown table with the CPU's flags; the seconds are the
cut's (statistics shared by the three rows of a size are timed once, in the first).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dctoon.importers import read_any
from dctoon.network import build_onnx, config_of, mac_per_pixel, reference_forward
from dctoon.train._util import dataset_files, psnr, read_bgr
from dctoon.train.compress import activation_stats, cut, refit

from machine import cpu_line  # bench/ is the script's folder

SHARED = Path(__file__).resolve().parents[2] / "shared"


def fidelity(student: dict, teacher_out: np.ndarray, x: np.ndarray, radius: int, eps: float) -> float:
    out = reference_forward(student, x.astype(np.float32), radius, eps)
    return float(np.mean([psnr(a, b) for a, b in zip(out, teacher_out)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--style", default="anime")
    ap.add_argument("--sizes", default="31/4,30/4,28/4,24/4,20/4,16/4,28/3")
    ap.add_argument("--calib", type=int, default=24)
    ap.add_argument("--test", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    teacher = read_any(SHARED / "models" / "official" / f"dctnet_{a.style}.tflite")
    photos = SHARED / "data" / "face-photos"
    calib = np.stack([read_bgr(p, 256) for p in dataset_files(photos, "train", 0.1)[: a.calib]])
    test = np.stack([read_bgr(p, 256) for p in dataset_files(photos, "eval", 0.1)[: a.test]])
    ref = reference_forward(teacher.weights, test.astype(np.float32), teacher.radius, teacher.eps)
    score = lambda w: fidelity(w, ref, test, teacher.radius, teacher.eps)  # noqa: E731
    t = time.perf_counter()
    stats = activation_stats(teacher.weights, calib)
    t_stats = time.perf_counter() - t
    print(f"{a.style}: teacher c={config_of(teacher.weights)}, calibration {len(calib)}, test {len(test)} photos;"
          f" {cpu_line()}\n")
    print("| size | MAC/px | fp16 file | choice only | + mean compensation | + least-squares refit | s (cut, refit) |")
    print("|---|---|---|---|---|---|---|")
    for size in a.sizes.split(","):
        c, b = (int(v) for v in size.split("/"))
        plain, _ = cut(teacher.weights, calib, c, b, stats=stats, compensate=False)
        t = time.perf_counter()
        folded, plan = cut(teacher.weights, calib, c, b, stats=stats)
        t_cut = time.perf_counter() - t + t_stats
        t = time.perf_counter()
        refitted = refit(folded, teacher.weights, plan, calib)
        t_refit = time.perf_counter() - t
        kb = len(build_onnx(refitted, half=True).SerializeToString()) / 1e3
        print(f"| c={c}/{b} | {mac_per_pixel(c, b):,} | {kb:,.0f} KB | {score(plain):.2f} dB | {score(folded):.2f} dB"
              f" | {score(refitted):.2f} dB | {t_cut:.0f}, {t_refit:.0f} |", flush=True)


if __name__ == "__main__":
    main()
