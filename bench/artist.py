"""Styles against the artist: each style's compound-pipeline output beside the drawing an artist
made over the same photo, on the held-out 10% of the AvatarHQ pairs (never trained on).

    python bench/artist.py [--styles avatar anime ...] [--sheet PNG] [--json FILE]

Numbers inside the central face ellipse of the 256x256 pair (dctoon.train.evaluate): Lab L1 (lower
is better), grey SSIM and dark-stroke F1 (DoG sigma 1.0/1.6, -3 levels, 1 px tolerance; higher is
better), and the share of flat pixels (grey Sobel magnitude under 8; the drawings' own share is the
aim). Rows: the styles given (default: the built-ins), every official DCT-Net style found in
../shared/models/official (verification only), and the photo itself. The sheet shows photo |
drawing | each style given | the best official (by mean rank over the three numbers).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import OFFICIAL, SHARED  # noqa: E402

DATA = SHARED / "data"


def main(argv=None) -> int:
    import dctoon
    from dctoon.styles import builtin
    from dctoon.train.evaluate import PAIR_SIZE, artist_metrics, contact_sheet, held_out_pairs, stylize_pairs

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--styles", nargs="+", default=sorted(builtin()),
                    help="styles to compare (names or paths)")
    ap.add_argument("--photos", default=str(DATA / "handdrawn-portraits-photos"))
    ap.add_argument("--drawings", default=str(DATA / "handdrawn-portraits"))
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--sheet", default=None,
                    help="contact sheet PNG (photo | drawing | each of --styles | best official)")
    ap.add_argument("--json", default=None, help="write the table as JSON")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    photos, drawings = held_out_pairs(Path(args.photos), Path(args.drawings), args.holdout)
    candidates = [(s, s) for s in args.styles]
    candidates += [(f"official {p.stem.removeprefix('dctnet_')}", str(p)) for p in sorted(OFFICIAL.glob("*.tflite"))]
    results, outputs = {}, {}
    t0 = time.time()
    for label, style in candidates:
        outputs[label] = stylize_pairs(dctoon.load(style, threads=args.threads), photos)
        results[label] = artist_metrics(outputs[label], drawings)
    results["photo (unstylized)"] = artist_metrics(photos, drawings)
    results["the drawings themselves"] = artist_metrics(drawings, drawings)
    print(f"{len(photos)} held-out pairs ({args.holdout:.0%} hash hold-out of {Path(args.photos).name}), "
          f"inside the face ellipse of {PAIR_SIZE}x{PAIR_SIZE}; {time.time() - t0:.0f} s\n")
    print("| model | Lab L1 (lower better) | grey SSIM | stroke F1 | flat share (drawings': last row) |\n"
          "|---|---|---|---|---|")
    for label, r in results.items():
        print(f"| {label} | {r['lab_l1']:.2f} | {r['ssim']:.4f} | {r['stroke_f1']:.4f} | {r['flat_share']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"pairs": len(photos), "results": results}, indent=2) + "\n")
    if args.sheet:
        officials = [k for k in results if k.startswith("official ")]
        if officials:
            ranks = {k: 0 for k in officials}
            for key, sign in (("lab_l1", 1), ("ssim", -1), ("stroke_f1", -1)):
                for i, k in enumerate(sorted(officials, key=lambda k: sign * results[k][key])):
                    ranks[k] += i
            best = min(officials, key=ranks.get)
        columns = [("photo", photos), ("artist", drawings)] + [(Path(s).name, outputs[s]) for s in args.styles]
        if officials:
            columns.append((f"best: {best}", outputs[best]))
        contact_sheet(Path(args.sheet), columns, rows=6, groups=2, cell=192)
        print(f"\nsheet: {args.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
