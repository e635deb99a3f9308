"""Render docs/contact-sheets/images.png: input | compound pipeline | whole-image only.

    python bench/contact_sheet.py [--style PATH]   (default: the reference White-box weights in ../shared)

Each shared image is one row, scaled to a common row height, with labels on top.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

import dctoon

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def label(img: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((28, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, img])


def grid(rows: list[list[np.ndarray]], names: list[str], height: int = 360) -> np.ndarray:
    """Rows of RGB images scaled to one height, each cell labelled, stacked into one sheet."""
    out = []
    for row in rows:
        cells = [label(cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height),
                                  interpolation=cv2.INTER_AREA), n) for im, n in zip(row, names)]
        out.append(np.hstack([np.pad(c, ((0, 4), (0, 4), (0, 0)), constant_values=255) for c in cells]))
    width = max(r.shape[1] for r in out)
    return np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in out])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--style", default=str(SHARED / "models/reference/whitebox_cartoon_gan_fp16.tflite"))
    ap.add_argument("-o", "--output", default=str(ROOT / "docs/contact-sheets/images.png"))
    args = ap.parse_args()
    compound = dctoon.load(args.style)
    whole = dctoon.load(args.style, faces=False)
    rows = []
    for path in sorted((SHARED / "media/images").glob("*.jpg")):
        img = dctoon.read_image(path)
        rows.append([img, compound.stylize(img), whole.stylize(img)])
        print(path.name, img.shape, len(compound.detector.detect(img)), "faces")
    sheet = grid(rows, ["input", "dctoon compound (faces: head model)", "whole image only"])
    dctoon.write_image(Path(args.output), sheet)
    print("wrote", args.output, sheet.shape)


if __name__ == "__main__":
    main()
