"""``dctoon batch`` throughput on Ray: images/s and video frames/s for 1, 2 and 4 workers on this
machine, then on a simulated cluster of two local Ray nodes (``ray start`` twice on 127.0.0.1,
1 CPU each) reached with ``--address``.

    python bench/batch.py                       # the default built-in style, 21 photos, 2 clips
    python bench/batch.py --copies 1 --seconds 3  # quicker

Each row is one ``dctoon.batch.run`` into a fresh folder, timed from the call to its return: the
actors load their models inside the clock, Ray's own start-up is outside it (it is up before).
Inputs: the shared photos (``--copies`` of each) at ``--max-side``, and the talking-head clip
re-encoded with a keyframe every second (the shared files have one every 6-10 s) so that a clip is
cut into pieces, at ``--video-side``. Prints a markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from conftest import IMAGES, VIDEOS, free_port  # noqa: E402
from media import short_gop_clip  # noqa: E402


def inputs(work: Path, copies: int, seconds: float) -> tuple[Path, Path, int, int]:
    """A folder of photos and a folder of clips; their counts (images, video frames)."""
    photos, clips = work / "photos", work / "clips"
    photos.mkdir()
    clips.mkdir()
    for k in range(copies):
        for p in sorted(IMAGES.glob("*.jpg")):
            shutil.copy(p, photos / f"{p.stem}-{k}.jpg")
    clip = short_gop_clip(VIDEOS / "talking-head-512-audio.mp4", clips / "talk-0.mp4", seconds)
    shutil.copy(clip, clips / "talk-1.mp4")
    from dctoon.video import probe

    return photos, clips, len(list(photos.iterdir())), 2 * probe(clip)["frames"]


def timed(folder: Path, work: Path, options) -> tuple[float, int]:
    from dctoon import batch

    out = Path(tempfile.mkdtemp(dir=work))
    t = time.perf_counter()
    report = batch.run([str(folder)], out, options, bar=False, log=lambda line, err=False: None)
    wall = time.perf_counter() - t
    assert report.failed == 0, report.items
    return wall, report.done


def measure(label: str, photos: Path, clips: Path, n_img: int, n_frames: int, work: Path, args,
            address: str | None = None, workers_list=(1, 2, 4)) -> list[str]:
    import dctoon
    from dctoon import batch

    rows = []
    for workers in workers_list:
        o = dict(style=args.style, workers=workers, address=address, segment=args.segment, warmup=args.warmup)
        wi, _ = timed(photos, work, batch.BatchOptions(settings=dctoon.Settings(max_side=args.max_side), **o))
        wv, _ = timed(clips, work, batch.BatchOptions(settings=dctoon.Settings(max_side=args.video_side), **o))
        rows.append(f"| {label:<26} | {workers:>7} | {n_img / wi:>8.2f} | {wi:>6.1f} | {n_frames / wv:>10.2f} | "
                    f"{wv:>6.1f} |")
        print(rows[-1], flush=True)
    return rows


def ray_cli(*args, env) -> None:
    subprocess.run([str(Path(sys.executable).with_name("ray")), *map(str, args)], env=env, check=True,
                   capture_output=True, text=True, timeout=300)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--style", default=None, help="style name or model path (default: the first built-in)")
    ap.add_argument("--copies", type=int, default=3, help="copies of each shared photo (7 photos)")
    ap.add_argument("--seconds", type=float, default=7.0, help="seconds of the clip (two copies)")
    ap.add_argument("--segment", type=float, default=2.0, help="seconds per piece (dctoon batch --segment)")
    ap.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds per piece (--warmup)")
    ap.add_argument("--max-side", type=int, default=512, help="photos' longest side")
    ap.add_argument("--video-side", type=int, default=256, help="video frames' longest side")
    ap.add_argument("--no-cluster", action="store_true", help="skip the two-node cluster")
    ap.add_argument("--no-local", action="store_true", help="only the two-node cluster")
    ap.add_argument("--address", help=argparse.SUPPRESS)  # the cluster rows, in a fresh interpreter
    args = ap.parse_args(argv)

    import ray

    from dctoon import batch

    work = Path(tempfile.mkdtemp(prefix="dctoon-bench-batch-"))
    try:
        photos, clips, n_img, n_frames = inputs(work, args.copies, args.seconds)
        if args.address:  # Ray reads its cluster mode when imported: this process never ran a local one
            batch._ray(args.address)
            measure("2 local nodes x 1 CPU", photos, clips, n_img, n_frames, work, args, address=args.address,
                    workers_list=(2,))
            return 0
        print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} CPU cores, no GPU, load average "
              f"{os.getloadavg()[0]:.1f} at start; {n_img} photos at {args.max_side} px, 2 clips of "
              f"{n_frames // 2} frames at {args.video_side} px (pieces of {args.segment:g} s, "
              f"warm-up {args.warmup:g} s)\n")
        print("| cluster                    | workers | images/s | wall s | video fps | wall s |")
        print("|---|---:|---:|---:|---:|---:|", flush=True)
        if not args.no_local:
            batch._ray(None)  # the local Ray is up before the clock starts
            measure(f"local, {os.cpu_count()} CPUs", photos, clips, n_img, n_frames, work, args)
            ray.shutdown()
        if not args.no_cluster:
            cluster(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def cluster(args, work: Path) -> None:
    """Two Ray nodes of 1 CPU on 127.0.0.1 (token authentication, as a real cluster has), measured
    by this script in a fresh interpreter with --address."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN_PATH": str(work / "token")}
    (work / "token").write_text(os.urandom(32).hex())
    port = free_port()
    ray_cli("start", "--head", "--node-ip-address", "127.0.0.1", "--port", port, "--num-cpus", 1,
            "--include-dashboard", "false", "--disable-usage-stats", env=env)
    try:
        low = free_port() + 200
        ray_cli("start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1", "--num-cpus", 1,
                "--node-manager-port", free_port(), "--object-manager-port", free_port(),
                "--metrics-export-port", free_port(), "--min-worker-port", low, "--max-worker-port", low + 100,
                "--disable-usage-stats", env=env)
        own = ["--style", args.style] if args.style else []
        subprocess.run([sys.executable, __file__, "--address", f"127.0.0.1:{port}", "--copies", str(args.copies),
                        "--seconds", str(args.seconds), "--max-side", str(args.max_side), "--video-side",
                        str(args.video_side), "--segment", str(args.segment), "--warmup", str(args.warmup), *own],
                       env=env, check=True)
    finally:
        ray_cli("stop", "--force", env=env)


if __name__ == "__main__":
    sys.exit(main())
