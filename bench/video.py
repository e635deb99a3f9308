"""End-to-end video speed and peak memory: our streaming pipeline vs the seed's naive loop.

    python bench/video.py --style ../shared/models/reference/whitebox_cartoon_gan_fp16.tflite \
        [--seconds N] [VIDEO ...]

Each shared video at its native size, the same weights for both:

* seed: imageio reader -> ``Cartoonizer.stylize`` on every RGB frame (the compound image
  pipeline: detection, heads, background) -> imageio H.264 writer; no audio, no temporal work.
* ours: ``Cartoonizer.stylize_video`` (PyAV decode / stylize / encode threads, face tracking,
  landmark smoothing, temporal blending, audio copied).

Every (video, path) runs in a fresh subprocess so its peak RSS (``ru_maxrss``) is its own;
frames/s counts the wall time from opening the input to the closed output (model loading
excluded). Needs ``imageio`` and ``imageio-ffmpeg`` for the seed loop.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "media" / "videos"
FP16 = ROOT.parent / "shared" / "models" / "reference" / "whitebox_cartoon_gan_fp16.tflite"


def seed_loop(cartoonizer, src: Path, dst: Path, seconds: float | None) -> int:
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(src), format="FFMPEG")
    fps = reader.get_meta_data()["fps"]
    writer = imageio.get_writer(str(dst), format="FFMPEG", fps=fps, codec="libx264", quality=8,
                                macro_block_size=1)
    n = 0
    try:
        for frame in reader:
            if seconds and n >= round(seconds * fps):
                break
            writer.append_data(cartoonizer.stylize(frame))
            n += 1
    finally:
        writer.close()
        reader.close()
    return n


def worker(which: str, src: Path, style: str, seconds: float | None) -> dict:
    sys.path.insert(0, str(ROOT / "src"))
    from dctoon.pipeline import load

    cartoonizer = load(style)
    cartoonizer.detector  # noqa: B018 - load the face detector before timing
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "out.mp4"
        t0 = time.perf_counter()
        if which == "seed":
            frames = seed_loop(cartoonizer, src, dst, seconds)
        else:
            frames = cartoonizer.stylize_video(src, dst, end=seconds, bar=False).frames
        wall = time.perf_counter() - t0
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"frames": frames, "wall": wall, "fps": frames / wall, "rss_mib": rss_kib / 1024}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("videos", nargs="*", type=Path, help="default: all of ../shared/media/videos")
    ap.add_argument("--style", default=str(FP16))
    ap.add_argument("--seconds", type=float, help="only the first N seconds of each video (default: all)")
    ap.add_argument("--worker", choices=["seed", "ours"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.videos[0], args.style, args.seconds)))
        return 0
    videos = args.videos or sorted(VIDEOS.glob("*.mp4"))
    cpu = os.cpu_count()
    load = os.getloadavg()[0]
    print(f"# {platform.node()} {platform.machine()}, {cpu} CPU cores, no GPU, load average {load:.1f} "
          f"at start (shared machine); style {Path(args.style).name}; seconds={args.seconds or 'all'}")
    head = (f"| {'video':<28} | {'size':>9} | {'frames':>6} | {'seed fps':>8} | {'ours fps':>8} | "
            f"{'speed-up':>8} | {'seed peak RSS':>13} | {'ours peak RSS':>13} |")
    print(head)
    print("|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|")
    import av

    for path in videos:
        with av.open(str(path)) as c:
            v = c.streams.video[0]
            size = f"{v.codec_context.width}x{v.codec_context.height}"
        res = {}
        for which in ("seed", "ours"):
            cmd = [sys.executable, __file__, "--worker", which, "--style", args.style, str(path)]
            if args.seconds:
                cmd += ["--seconds", str(args.seconds)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                print(f"# {path.name} {which} failed: {proc.stderr.strip().splitlines()[-1:]}")
                res[which] = None
                continue
            res[which] = json.loads(proc.stdout.strip().splitlines()[-1])
        s, o = res["seed"], res["ours"]
        if not (s and o):
            continue
        print(f"| {path.name:<28} | {size:>9} | {o['frames']:>6} | {s['fps']:>8.2f} | {o['fps']:>8.2f} | "
              f"{o['fps'] / s['fps']:>7.2f}x | {s['rss_mib']:>9.0f} MiB | {o['rss_mib']:>9.0f} MiB |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
