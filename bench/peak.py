"""How close the network runs to this CPU's fp32 peak, and what a still portrait and a native 1080p
frame cost.

    python bench/peak.py [--repeat 3]

Rows (best of ``--repeat`` after a warm-up, fp32, every core):
- the peak reference: numpy's matmul of two 4096x4096 fp32 matrices (2 * 4096^3 FLOP);
- the official anime network (from ../shared, verification only) as dctoon runs it in ONNX Runtime
  (``--device cpu``) and in OpenVINO (``--device openvino``, when installed), and as the reference
  runs it in TensorFlow, on a 1280x720 and a 1920x1080 frame: GFLOP/s counts 2 FLOP per
  multiply-accumulate of the convolutions (``network.mac_per_pixel``), guided filter aside;
- the still-image latency of a 1 MP portrait (the shared colour portrait at 1000x1000) through the
  whole pipeline (face detection, the aligned head, the background, the paste), with the default
  built-in style and with the official anime file, on each device; model loading timed apart.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from conftest import IMAGES, OFFICIAL  # noqa: E402
from runtimes import best_ms  # noqa: E402


def best_s(fn, repeat: int) -> float:
    return best_ms(fn, repeat) / 1000


def main() -> None:
    import cv2

    import dctoon
    from dctoon.importers import read_any
    from dctoon.network import INPUT_NAME, config_of, mac_per_pixel
    from dctoon.runtime import has_openvino, session
    from reference import OfficialGraphs

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows: list[tuple[str, float, float | None]] = []

    a = np.random.default_rng(0).standard_normal((4096, 4096), dtype=np.float32)
    t = best_s(lambda: a @ a, args.repeat)
    rows.append(("numpy matmul 4096^3 fp32 (the peak reference)", t, 2 * 4096 ** 3 / t / 1e9))

    path = OFFICIAL / "dctnet_anime.tflite"
    imported = read_any(path)
    mac = mac_per_pixel(*config_of(imported.weights))
    devices = {"cpu": "ONNX Runtime", **({"openvino": "OpenVINO"} if has_openvino() else {})}
    ours = {d: session(imported.onnx().SerializeToString(), device=d) for d in devices}
    tf = OfficialGraphs(path)
    for w, h in ((1280, 720), (1920, 1080)):
        x = np.random.default_rng(1).uniform(0, 255, (1, h, w, 3)).astype(np.float32)
        flop = 2 * mac * w * h
        for d, runtime in devices.items():
            t = best_s(lambda x=x, d=d: ours[d].run(None, {INPUT_NAME: x}), args.repeat)
            rows.append((f"network {w}x{h}, {runtime} (dctoon --device {d})", t, flop / t / 1e9))
        t = best_s(lambda x=x: tf.run("model_bg", x[0]), args.repeat)
        rows.append((f"network {w}x{h}, TensorFlow (the reference)", t, flop / t / 1e9))

    rgb = cv2.resize(dctoon.read_image(IMAGES / "portrait-color.jpg")[..., :3], (1000, 1000),
                     interpolation=cv2.INTER_AREA)
    for d in devices:
        for label, style in (("default built-in", None), ("official anime", str(path))):
            began = time.perf_counter()
            c = dctoon.load(style, device=d)
            what = f"1 MP portrait, {label}, --device {d}"
            rows.append((f"{what}: load", time.perf_counter() - began, None))
            rows.append((f"{what}: whole pipeline", best_s(lambda c=c: c.stylize(rgb), args.repeat), None))

    print(f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, best of {args.repeat}\n")
    print("| what | ms | GFLOP/s |\n|---|---:|---:|")
    for label, t, gflops in rows:
        print(f"| {label} | {1000 * t:.0f} | {'' if gflops is None else f'{gflops:.0f}'} |")


if __name__ == "__main__":
    main()
