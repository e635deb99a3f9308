"""End-to-end video speed and peak memory: our streaming pipeline vs a baseline, interleaved.

    python bench/video.py --style ../shared/models/official/dctnet_anime.tflite \
        [--against reference|seed] [--rounds 2] [--seconds N] [--device cpu,openvino] [VIDEO ...]

Each shared video, the same weights for all, run baseline, ours, baseline, ours (``--rounds``);
with several ``--device`` values, ours runs once per device in each round (baseline, ours on the
first device, ours on the second, ...), so every ratio comes from the same interleaved run:

* reference (default): the official DCT-Net loop (``bench/reference.py``: TF1 session, short side
  capped at 720, background graph on the frame, head graph on one 288 crop, imageio in and out).
* seed: imageio reader -> ``Cartoonizer.stylize`` on every RGB frame (the compound image
  pipeline: detection, heads, background) -> imageio H.264 writer; no audio, no temporal work.
* ours: ``Cartoonizer.stylize_video`` (PyAV decode / stylize / encode threads, face tracking,
  landmark smoothing, temporal blending, audio copied).

Every (video, path) runs in a fresh subprocess so its peak RSS (``ru_maxrss``) is its own;
frames/s counts the wall time from opening the input to the closed output (model loading
excluded). The baselines need the test extra (tensorflow-cpu, imageio, imageio-ffmpeg).
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


def worker(which: str, src: Path, style: str, seconds: float | None, device: str = "auto") -> dict:
    """One timed run in this process: models loaded first, then the clock runs until the output is closed."""
    sys.path.insert(0, str(ROOT / "src"))
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "out.mp4"
        if which == "reference":  # only TensorFlow in this process: its peak memory is its own
            from reference import OfficialGraphs, reference_loop

            graphs = OfficialGraphs(Path(style))
            t0 = time.perf_counter()
            frames = reference_loop(graphs, src, dst, seconds)
        else:
            from dctoon.pipeline import load

            cartoonizer = load(style, device=device)
            cartoonizer.detector  # noqa: B018 - load the face detector before timing
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
    ap.add_argument("--against", choices=["reference", "seed"], default="reference")
    ap.add_argument("--rounds", type=int, default=2, help="baseline/ours pairs per video, interleaved")
    ap.add_argument("--device", default="auto", help="where ours runs its style models, comma-separated for one "
                    "column each (cpu,openvino): cpu, openvino, cuda, tensorrt, auto")
    ap.add_argument("--worker", choices=["seed", "reference", "ours"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.videos[0], args.style, args.seconds, args.device)))
        return 0
    videos = args.videos or sorted(VIDEOS.glob("*.mp4"))
    base, devices = args.against, args.device.split(",")
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} CPU cores, ours on --device "
          f"{' / '.join(devices)}, load average {os.getloadavg()[0]:.1f} at start (shared machine); "
          f"style {Path(args.style).name}; seconds={args.seconds or 'all'}")
    cols = ["video", "size", "frames", f"{base} fps"] + [c for d in devices for c in (f"{d} fps", f"{d}/{base}")] \
        + [f"{k} peak RSS" for k in [base, *devices]]
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    import av

    for path in videos:
        with av.open(str(path)) as c:
            v = c.streams.video[0]
            size = f"{v.codec_context.width}x{v.codec_context.height}"
        runs = [(base, base, "cpu")] + [(d, "ours", d) for d in devices]
        res: dict[str, list] = {key: [] for key, _, _ in runs}
        for _ in range(args.rounds):
            for key, which, device in runs:
                cmd = [sys.executable, __file__, "--worker", which, "--style", args.style, "--device", device,
                       str(path)]
                if args.seconds:
                    cmd += ["--seconds", str(args.seconds)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode:
                    print(f"# {path.name} {key} failed: {proc.stderr.strip().splitlines()[-1:]}")
                    continue
                res[key].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        if not all(res.values()):
            continue
        fps = {k: sum(r["fps"] for r in v) / len(v) for k, v in res.items()}
        rss = {k: max(r["rss_mib"] for r in v) for k, v in res.items()}
        cells = [path.name, size, str(res[devices[0]][0]["frames"]), f"{fps[base]:.2f}"]
        cells += [c for d in devices for c in (f"{fps[d]:.2f}", f"{fps[d] / fps[base]:.2f}x")]
        cells += [f"{rss[k]:.0f} MiB" for k in [base, *devices]]
        print("| " + " | ".join(cells) + " |", flush=True)
    return 0

if __name__ == "__main__":
    sys.exit(main())
