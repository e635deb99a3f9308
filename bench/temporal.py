"""Temporal stability: our video path vs the per-frame path, on the shared videos.

    python bench/temporal.py --style ../shared/models/reference/whitebox_cartoon_gan_fp16.tflite \
        [--seconds N] [--max-side PX] [VIDEO ...]
    python bench/temporal.py --max-side 512 --sheet docs/contact-sheets/video.png

Both paths use the same weights and the same ``Cartoonizer.stylize_bgr``; the per-frame path
detects faces on every frame and uses them as they are (no tracking, smoothing, fading or
temporal blending), ours is ``dctoon.video.FrameStylizer(temporal=True)``. The background
model's output is identical for both (same input frame), so it is computed once and shared.

Metrics (lower is steadier):

* warp error: Farneback flow on the input frames t-1 -> t (a different estimator from the DIS
  flow our blender uses), the previous output warped onto frame t, mean absolute difference
  (0-255 scale, averaged over channels) with the current output over pixels where forward and
  backward flow agree (not occluded); averaged over all frame pairs.
* jitter: the main face's aligned crop as its four corners in the frame; the mean absolute
  second difference of those corners over consecutive frames (px at the processed size):
  zero for a crop that stands still or moves at constant speed, large for one that shakes.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dctoon.pipeline import load  # noqa: E402
from dctoon.track import crop_corners, warp_error  # noqa: E402
from dctoon.video import FrameStylizer  # noqa: E402
from dctoon.video.reader import fit, upright  # noqa: E402

VIDEOS = ROOT.parent / "shared" / "media" / "videos"
FP16 = ROOT.parent / "shared" / "models" / "reference" / "whitebox_cartoon_gan_fp16.tflite"


class SharedBackground:
    """The background model, run once per distinct frame and shared by both paths."""

    def __init__(self, model):
        self.model, self.key, self.value = model, None, None

    def __call__(self, bgr):
        key = hashlib.blake2b(bgr.tobytes(), digest_size=16).digest()
        if key != self.key:
            self.key, self.value = key, self.model(bgr)
        return self.value.copy()


def frames(path: Path, seconds: float | None, max_side: int | None):
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            t = float(f.pts * f.time_base)
            if seconds and t >= seconds:
                break
            yield fit(upright(f.to_ndarray(format="bgr24"), f.rotation), max_side), t


def main_face(faces):
    return max(faces, key=lambda f: f.size) if faces else None


def measure(cartoonizer, path: Path, seconds, max_side, detect_every=3):
    paths = {"per-frame": FrameStylizer(cartoonizer, temporal=False),
             "ours": FrameStylizer(cartoonizer, temporal=True, detect_every=detect_every)}
    prev_in = None
    prev_out: dict = {}
    errors = {k: [] for k in paths}
    corners = {k: [] for k in paths}
    n = 0
    for bgr, t in frames(path, seconds, max_side):
        for name, run in paths.items():
            out = run(bgr, t)
            face = main_face(run.last_faces)
            corners[name].append(crop_corners(face.landmarks) if face is not None else None)
            if prev_in is not None:
                errors[name].append(warp_error(prev_in, bgr, prev_out[name], out))
            prev_out[name] = out
        prev_in = bgr
        n += 1
    result = {"frames": n, "size": prev_in.shape[1::-1]}
    for name in paths:
        c = corners[name]
        second = [np.abs(c[i] - 2 * c[i - 1] + c[i - 2]).mean()
                  for i in range(2, len(c)) if c[i] is not None and c[i - 1] is not None and c[i - 2] is not None]
        result[name] = (float(np.mean(errors[name])), float(np.mean(second)) if second else float("nan"),
                        sum(x is not None for x in c))
    return result


def sheet(cartoonizer, videos, dst: Path, window: float = 0.3, height: int = 200) -> None:
    """docs/contact-sheets/video.png: frames at 0, 25, 50, 75% of each video, input | ours.

    Each sampled frame is the temporal path's output after running it over the preceding
    ``window`` seconds (blending and smoothing settle within a few frames), not a still.
    """
    rows = []
    for path in videos:
        with av.open(str(path)) as c:
            v = c.streams.video[0]
            duration = float(v.duration * v.time_base)
        cells = []
        for q in (0.0, 0.25, 0.5, 0.75):
            t_q = q * duration
            run = FrameStylizer(cartoonizer, temporal=True)
            last = None
            with av.open(str(path)) as c:
                for f in c.decode(video=0):
                    t = float(f.pts * f.time_base)
                    if t < t_q - window:
                        continue
                    bgr = fit(upright(f.to_ndarray(format="bgr24"), f.rotation), cartoonizer.settings.max_side)
                    last = (bgr, run(bgr, t), t)
                    if t >= t_q:
                        break
            bgr, out, t = last
            for img, name in ((bgr, f"{path.stem[:18]} {t:.1f}s in"), (out, "ours")):
                scaled = cv2.resize(img, (round(img.shape[1] * height / img.shape[0]), height),
                                    interpolation=cv2.INTER_AREA)
                bar = np.full((22, scaled.shape[1], 3), 255, np.uint8)
                cv2.putText(bar, name, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
                cells.append(np.pad(np.vstack([bar, scaled]), ((0, 4), (0, 4), (0, 0)), constant_values=255))
        rows.append(np.hstack(cells))
        print(f"sheet: {path.name}", flush=True)
    width = max(r.shape[1] for r in rows)
    img = np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    dst.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(dst), img)
    print(f"wrote {dst}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("videos", nargs="*", type=Path, help="default: all of ../shared/media/videos")
    ap.add_argument("--style", default=str(FP16))
    ap.add_argument("--seconds", type=float, help="only the first N seconds of each video")
    ap.add_argument("--max-side", type=int, help="downscale frames to at most PX (default: native)")
    ap.add_argument("--device", default="auto", help="where the style models run (auto, cpu, openvino, ...)")
    ap.add_argument("--detect-every", type=int, default=3, metavar="K", help="ours: detect every K frames")
    ap.add_argument("--sheet", type=Path, metavar="PNG",
                    help="instead of the table, render the contact sheet (docs/contact-sheets/video.png)")
    args = ap.parse_args(argv)
    videos = args.videos or sorted(VIDEOS.glob("*.mp4"))
    cartoonizer = load(args.style, max_side=args.max_side, device=args.device)
    if args.sheet:
        sheet(cartoonizer, videos, args.sheet)
        return 0
    cartoonizer.background = SharedBackground(cartoonizer.background)
    print(f"# {platform.node()} {platform.machine()} {platform.processor() or ''}; style {Path(args.style).name}; "
          f"seconds={args.seconds or 'all'} max_side={args.max_side or 'native'} detect_every={args.detect_every}")
    head = (f"| {'video':<28} | {'size':>9} | {'frames':>6} | {'warp err per-frame':>18} | {'warp err ours':>13} | "
            f"{'change':>7} | {'jitter per-frame':>16} | {'jitter ours':>11} | {'change':>7} |")
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    worst = -float("inf")
    for path in videos:
        t0 = time.time()
        r = measure(cartoonizer, path, args.seconds, args.max_side, args.detect_every)
        (e0, j0, _), (e1, j1, faces) = r["per-frame"], r["ours"]
        de, dj = (e1 - e0) / e0 * 100, (j1 - j0) / j0 * 100 if j0 == j0 and j0 > 0 else float("nan")
        worst = max(worst, de, dj if dj == dj else -100)
        size = "x".join(map(str, r["size"]))
        print(f"| {path.name:<28} | {size:>9} | {r['frames']:>6} | {e0:>18.2f} | {e1:>13.2f} | {de:>+6.0f}% | "
              f"{j0:>16.2f} | {j1:>11.2f} | {dj:>+6.0f}% |  ({time.time() - t0:.0f} s, face in {faces} frames)",
              flush=True)
    print(f"# worst change: {worst:+.0f}% (target: -30% or better on every video)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
