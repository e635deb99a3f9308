"""docs/contact-sheets/strength.png: style strength 0, 0.25, 0.5, 0.75, 1 for three styles, and a
row of style mixing (anime+3d at 0, 0.25, 0.5, 0.75, 1 of 3d), on a shared portrait.

    python bench/strength_sheet.py [--photo PATH] [--out PNG]

The official styles are read from ../shared/models/official (verification only: they are not
installed by dctoon); the built-in one is dctoon's own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import IMAGES, OFFICIAL  # noqa: E402


def main(argv=None) -> int:
    import dctoon
    from dctoon.gallery import grid

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", default=str(IMAGES / "portrait-512.jpg"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "contact-sheets" / "strength.png"))
    args = ap.parse_args(argv)
    photo = dctoon.read_image(args.photo, max_side=512)[..., :3]
    anime, d3 = str(OFFICIAL / "dctnet_anime.tflite"), str(OFFICIAL / "dctnet_3d.tflite")
    levels = [0.0, 0.25, 0.5, 0.75, 1.0]
    rows = []
    for label, style in [("official anime", anime), ("official 3d", d3), ("built-in anime", "anime")]:
        c = dctoon.load(style)
        rows.append(grid([(f"{label} {s:g}", c.configure(strength=s).stylize(photo)) for s in levels], 256, 5))
    mixes = [anime] + [f"{anime}+{d3}:{w:g}" for w in levels[1:-1]] + [d3]
    rows.append(grid([(f"anime+3d:{w:g}", dctoon.load(m).stylize(photo)) for w, m in zip(levels, mixes)], 256, 5))
    dctoon.write_image(Path(args.out), np.concatenate(rows))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
