"""The student sizes' cost: MAC per pixel and ms per 720p frame of the TTN graph, per device.

    python bench/students.py [--repeat 5] [--threads 0] [--device cpu,openvino] [--sizes 32/4,28/4,24/4]

Each size is the same ONNX graph dctoon runs (guided filter included), with random weights (the
time does not depend on the values), on one 1280x720 frame, best of ``--repeat`` after a warm-up.
The PSNR column of the Pareto table in bench/RESULTS.md comes from bench/fidelity.py.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dctoon import network
from dctoon.model import TTN
from machine import cpu_line  # bench/ is the script's folder

SIZES = "32/4,28/4,24/4,16/4,16/2"  # the first is the base of the ratios


def random_weights(channel: int, blocks: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"{s.name}.{p}": (rng.normal(0, (2 / (s.cin * s.k * s.k)) ** 0.5, (s.cout, s.cin, s.k, s.k))
                              if p == "weight" else np.zeros(s.cout)).astype(np.float32)
            for s in network.conv_specs(channel, blocks) for p in ("weight", "bias")}


def time_graph(channel: int, blocks: int, threads: int, repeat: int, tmp, device: str = "cpu") -> float:
    path = tmp / f"c{channel}b{blocks}.onnx"
    path.write_bytes(network.build_onnx(random_weights(channel, blocks), eps=1e-2).SerializeToString())
    model = TTN(path, threads=threads, tile=4096, device=device)
    frame = np.random.default_rng(1).integers(0, 256, (720, 1280, 3)).astype(np.uint8)
    model(frame)
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        model(frame)
        best = min(best, time.perf_counter() - t)
    return best * 1000


def main() -> None:
    import tempfile
    from pathlib import Path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="comma-separated, a column pair each: cpu (onnxruntime fp32), "
                    "openvino")
    ap.add_argument("--sizes", default=SIZES, help="comma-separated WIDTH/BLOCKS; the first is the ratios' base")
    args = ap.parse_args()
    devices = args.device.split(",")
    print(f"{cpu_line()}; 1280x720, best of {args.repeat}\n")
    heads = (f"{d}: ms per 720p frame | {d}: vs c=32/4" for d in devices)
    print("| width / blocks | MAC per pixel | " + " | ".join(heads) + " |")
    print("|---|---|" + "---|---|" * len(devices))
    with tempfile.TemporaryDirectory() as d:
        base: dict[str, float] = {}
        for c, b in ((int(v) for v in size.split("/")) for size in args.sizes.split(",")):
            cells = []
            for device in devices:
                ms = time_graph(c, b, args.threads, args.repeat, Path(d), device)
                base.setdefault(device, ms)
                cells += [f"{ms:.0f}", f"{base[device] / ms:.2f}x"]
            print(f"| c={c} / {b} | {network.mac_per_pixel(c, b):,} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
