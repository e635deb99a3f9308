"""The web app's live camera, end to end: `dctoon serve`, Debian's chromium with a fake camera
playing a shared clip, the Live tab recording for a while at each size.

    python bench/live.py [--style anime] [--seconds 20] [--sides 256 384 512] [--frame] [--device openvino]

Per size: frames per second that reached the page (stylized images shown), the server's own
stylization time per frame (median), and the latency from a frame leaving the browser to its
result on the page. Gradio's webcam sends a frame only when the previous result is back, so a
frame's round trip is the time between two results, less up to one capture tick (50 ms): the
latency column is that interval, an upper bound. Chromium (its camera, encoding and page) runs on
the same machine and shares its cores with the server, as on a laptop.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import OBSERVE_LIVE_FRAMES, VIDEOS, start_server, stop_server  # noqa: E402
from media import fake_camera  # noqa: E402


def record(pg, side: int, seconds: float) -> tuple[float, float, str]:
    """(page frames/s, median ms between results, the server's status line) for one size."""
    import numpy as np

    pg.locator("#dctoon-live-size").get_by_text(str(side), exact=True).click()
    pg.locator("#dctoon-camera button", has_text="Record").click()
    time.sleep(3)  # the first frames: models warm, tracks start
    pg.evaluate("window.dctoonFrames.length = 0")
    time.sleep(seconds)
    arrivals = pg.evaluate("window.dctoonFrames")
    status = pg.locator("#dctoon-live-info textarea").input_value()
    pg.locator("#dctoon-camera button", has_text="Stop").click()
    time.sleep(1)
    gaps = np.diff(arrivals)
    fps = (len(arrivals) - 1) / ((arrivals[-1] - arrivals[0]) / 1000) if len(arrivals) > 1 else 0.0
    return fps, float(np.median(gaps)) if len(gaps) else float("nan"), status


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--style", default="anime")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--sides", type=int, nargs="+", default=[256, 384, 512])
    ap.add_argument("--frame", action="store_true", help="Faces: whole frame only (one network pass per frame)")
    ap.add_argument("--threads", type=int, default=0, help="the server's onnxruntime threads (0: every core)")
    ap.add_argument("--device", default="auto", help="the server's --device (auto, cpu, openvino, ...)")
    ap.add_argument("--clip", default=str(VIDEOS / "talking-head-512-audio.mp4"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cam = fake_camera(Path(args.clip), tmp / "cam.y4m", side=640)
        env = dict(os.environ, DCTOON_HOME=str(tmp / "home"), TMPDIR=str(tmp))
        proc, url, log = start_server(tmp, ["--style", args.style, "--threads", str(args.threads),
                                                "--device", args.device], env)
        rows = []
        try:
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                    "--headless", "--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream",
                    "--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={cam}"])
                pg = b.new_page(viewport={"width": 1280, "height": 1000})
                pg.goto(url)
                pg.get_by_role("tab", name="Live / 实时").click()
                pg.get_by_text("Click to Access Webcam").click()
                pg.locator("#dctoon-camera button", has_text="Record").wait_for(timeout=30_000)
                if args.frame:
                    pg.locator("#dctoon-faces").get_by_text("Whole frame only", exact=False).click()
                pg.evaluate(OBSERVE_LIVE_FRAMES)
                for side in args.sides:
                    fps, gap, status = record(pg, side, args.seconds)
                    ms = re.search(r"(\d+) ms per frame", status)
                    rows.append((side, fps, ms.group(1) if ms else "-", gap))
                b.close()
        finally:
            stop_server(proc, log)
    faces = "whole frame" if args.frame else "portrait"
    print(f"style {args.style}, faces {faces}, server threads {args.threads or 'all'}, device {args.device}, "
          f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"{args.seconds:g} s per size, camera 640 px ({Path(args.clip).name})\n")
    print("| size (longest side) | frames/s at the page | server ms per frame | latency (ms, upper bound) |")
    print("|---:|---:|---:|---:|")
    for side, fps, ms, gap in rows:
        print(f"| {side} | {fps:.2f} | {ms} | {gap:.0f} |")


if __name__ == "__main__":
    main()
