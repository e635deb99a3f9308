"""Render docs/contact-sheets/segmentation.png: the person modes, backdrops and auto-crop.

    python bench/modes_sheet.py [--style STYLE]   (default: the reference White-box weights in ../shared)

One row per shared photo and per frame of two shared videos: input, person mask, everything
stylized, person only, background only, person over a blurred backdrop, over a colour, and the
auto-crop to 9:16.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import cv2
import numpy as np

import dctoon
from PIL import Image
from dctoon.images import to_rgb8
from contact_sheet import ROOT, SHARED, grid

PHOTOS = ["portrait-color.jpg", "portrait-512.jpg", "painting-full-body.jpg", "small-face-in-photo.jpg",
          "portrait-bw.jpg"]
FRAMES = [("upper-body-720p-audio.mp4", 90), ("vertical-720x1280.mp4", 120), ("boy-fullbody-720p.mp4", 60)]


def frame(path: Path, index: int) -> np.ndarray:
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == index:
                return f.to_ndarray(format="rgb24")
    raise ValueError(f"{path} has fewer than {index + 1} frames")


def overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    tint = np.array([255, 60, 60], np.float32)
    m = mask[..., None] * 0.55
    return np.clip(rgb * (1 - m) + tint * m, 0, 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--style", default=str(SHARED / "models/reference/whitebox_cartoon_gan_fp16.tflite"))
    ap.add_argument("--max-side", type=int, default=768)
    ap.add_argument("-o", "--output", default=str(ROOT / "docs/contact-sheets/segmentation.png"))
    args = ap.parse_args()
    base = dctoon.load(args.style, max_side=args.max_side)
    variants = [base.configure(part="person"), base.configure(part="background"),
                base.configure(backdrop="blur"), base.configure(backdrop="#3c8dde"), base.configure(crop="9:16")]
    inputs = [(name, dctoon.read_image(SHARED / "media/images" / name, max_side=args.max_side)) for name in PHOTOS]
    inputs += [(f"{name}#{i}", to_rgb8(Image.fromarray(frame(SHARED / "media/videos" / name, i)), args.max_side))
               for name, i in FRAMES]
    rows = []
    for name, rgb in inputs:
        mask = base.segmenter(rgb)
        rows.append([rgb, overlay(rgb, mask), base.stylize(rgb), *(v.stylize(rgb) for v in variants)])
        print(name, rgb.shape, f"person {mask.mean():.2f}")
    sheet = grid(rows, ["input", "person mask", "all (default)", "--part person", "--part background",
                        "--backdrop blur", "--backdrop #3c8dde", "--crop 9:16"], height=200)
    cv2.imwrite(args.output, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print("wrote", args.output, sheet.shape)


if __name__ == "__main__":
    main()
