"""What the flat fills cost: a style's network with and without them (``--fill-radius``), per frame size.

    python bench/fills.py [--style avatar] [--radius 4] [--repeat 5] [--threads 2]

The same weights are built twice into ONNX graphs, one ending in the fills (guided filter, line
keep, fade, shock filter), one not, and each is run on random frames of a few sizes; the table gives
the median time of each and their ratio, measured in this run, with the CPU line.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from machine import cpu_line  # bench/ is the script's folder
from dctoon.importers import read_any
from dctoon.runtime import session
from dctoon.styles import resolve

SIZES = ((288, 288), (720, 1280), (1080, 1920))


def median_time(sess, frame: np.ndarray, repeat: int) -> float:
    name = sess.get_inputs()[0].name
    sess.run(None, {name: frame})  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        sess.run(None, {name: frame})
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--style", default="avatar", help="a style name or folder (its head model is timed)")
    ap.add_argument("--radius", type=int, default=4, help="fill radius of the version with fills")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    model = read_any(resolve(args.style).head)
    plain, filled = (session(dataclasses.replace(model, fill_radius=r).onnx().SerializeToString(), args.threads)
                     for r in (0, args.radius))
    print(f"{cpu_line()}; {args.threads} threads; style {args.style}, fill radius {args.radius}\n")
    print("| frame | network only | with the fills | ratio |\n|---|---|---|---|")
    rng = np.random.default_rng(0)
    for h, w in SIZES:
        frame = rng.integers(0, 256, (1, h, w, 3)).astype(np.float32)
        a, b = median_time(plain, frame, args.repeat), median_time(filled, frame, args.repeat)
        print(f"| {w}x{h} | {a:.3f} s | {b:.3f} s | {b / a:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
