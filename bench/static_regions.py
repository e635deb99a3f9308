"""How much of each frame a video's background model could skip: the upper bound of "static-region
skipping" (rerun the network only where the picture changed, keep the previous output elsewhere).

    python bench/static_regions.py [VIDEOS...] [--frames N]

A 16 px block changed when its lightly blurred input (3x3 box: codec noise is not motion) moved by
more than T grey levels since the previous frame. The output can differ within the network's reach
of a change (measured: 42 px from a 4 px patch; 64 px is the safe radius), so the pixels to redo
are the changed blocks dilated by 64 px, and computing them needs 64 px more of context around each
part. Printed: the changed blocks, the pixels to redo, and the pixels the network would have to run
on with one crop around all of them (bounding box + context). No network is run: this is decoding
and differencing only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import VIDEOS  # noqa: E402

BLOCK, RADIUS = 16, 64


def fractions(path: Path, frames: int, threshold: float) -> tuple[float, float, float]:
    import av
    import cv2

    reach = 2 * (RADIUS // BLOCK) + 1
    prev, rows = None, []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i > frames:
                break
            cur = cv2.blur(f.to_ndarray(format="bgr24"), (3, 3))
            if prev is not None:
                d = cv2.absdiff(cur, prev).max(axis=2)
                h, w = d.shape
                hb, wb = -(-h // BLOCK), -(-w // BLOCK)
                padded = np.zeros((hb * BLOCK, wb * BLOCK), d.dtype)
                padded[:h, :w] = d
                changed = padded.reshape(hb, BLOCK, wb, BLOCK).max(axis=(1, 3)) > threshold
                redo = cv2.dilate(changed.astype(np.uint8), np.ones((reach, reach), np.uint8)).astype(bool)
                if redo.any():
                    ys, xs = np.nonzero(redo)
                    y0, y1 = max(0, ys.min() * BLOCK - RADIUS), min(h, (ys.max() + 1) * BLOCK + RADIUS)
                    x0, x1 = max(0, xs.min() * BLOCK - RADIUS), min(w, (xs.max() + 1) * BLOCK + RADIUS)
                    box = (y1 - y0) * (x1 - x0) / (h * w)
                else:
                    box = 0.0
                rows.append((changed.mean(), redo.mean(), box))
            prev = cur
    return tuple(np.mean(rows, axis=0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", nargs="*", type=Path, help="default: all of ../shared/media/videos")
    ap.add_argument("--frames", type=int, default=60, help="frame pairs per video (default: 60)")
    args = ap.parse_args(argv)
    print("| video | T (levels) | blocks changed | pixels to redo | one crop to run (with context) |")
    print("|---|---|---|---|---|")
    for path in args.videos or sorted(VIDEOS.glob("*.mp4")):
        for t in (6, 10, 16):
            changed, redo, box = fractions(path, args.frames, t)
            print(f"| {path.name} | {t} | {changed:.1%} | {redo:.1%} | {box:.1%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
