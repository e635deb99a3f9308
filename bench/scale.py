"""What the background model keeps when it runs at a lower scale: the network on the frame shrunk by
S, brought back to full size by guided upsampling with the full-size photo as guide
(``resolution.guided_upsample``: He's fast guided filter, A and b fitted at the small scale), against
the network on the full frame. A frame at 0.5 costs the network a quarter of its time; the speed
issue (#35) asks 35 dB of the look from any speed change.

    python bench/scale.py [--style anime] [--scales 0.5 0.707] [--every 50] [--per-video 3] [VIDEOS...]

Prints the PSNR of each scale's output against the full-scale one, per frame and on average.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import VIDEOS  # noqa: E402
from resolution import guided_upsample  # noqa: E402


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255 ** 2 / np.mean((a.astype(np.float64) - b) ** 2)))


def main(argv=None) -> int:
    import av

    import dctoon

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", nargs="*", default=[str(VIDEOS / "upper-body-720p-audio.mp4"),
                                                  str(VIDEOS / "boy-fullbody-720p.mp4")])
    ap.add_argument("--style", default="anime")
    ap.add_argument("--scales", type=float, nargs="+", default=[0.5, 0.707])
    ap.add_argument("--every", type=int, default=50, help="one frame of every N")
    ap.add_argument("--per-video", type=int, default=3)
    ap.add_argument("--gf-radius", type=int, default=1)
    ap.add_argument("--gf-eps", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    ttn = dctoon.load(args.style, threads=args.threads).background

    print(f"| frame | {' | '.join(f'scale {s:g}' for s in args.scales)} |\n|---|{'---|' * len(args.scales)}")
    scores: dict[float, list[float]] = {s: [] for s in args.scales}
    for video in args.videos:
        with av.open(video) as c:
            frames = [(i, f.to_ndarray(format="bgr24")) for i, f in enumerate(c.decode(video=0)) if i % args.every == 0]
        for i, frame in frames[: args.per_video]:
            full = ttn.run_batch(frame[None])[0]
            for s in args.scales:
                scores[s].append(psnr(guided_upsample(ttn, frame, s, args.gf_radius, args.gf_eps), full))
            print(f"| {Path(video).name}, frame {i} | {' | '.join(f'{scores[s][-1]:.2f} dB' for s in args.scales)} |",
                  flush=True)
    print(f"| mean of {len(scores[args.scales[0]])} | {' | '.join(f'{np.mean(v):.2f} dB' for v in scores.values())} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
