"""Per-image time: dctoon (onnxruntime) vs the same weights in the TFLite interpreter and in numpy.

    python bench/image.py [--repeat 3]

Needs ../shared (reference weights, photos) and ai-edge-litert (the `test` extra). Prints two
tables: the network alone at the TFLite files' fixed sizes (ratios measured in this run), and
the whole compound pipeline per shared image at its native resolution.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np

import dctoon
from dctoon import network
from dctoon.importers import read_tflite
from dctoon.model import TTN

SHARED = Path(__file__).resolve().parents[2] / "shared"
REF = SHARED / "models/reference"


def best(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def tflite_runner(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=os.cpu_count())
    it.allocate_tensors()
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

    def run(bgr):
        it.set_tensor(inp, (bgr.astype(np.float32) / 127.5 - 1)[None])
        it.invoke()
        return np.clip((it.get_tensor(out)[0] + 1) * 127.5, 0, 255).astype(np.uint8)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; best of {args.repeat}")
    photo = cv2.imread(str(SHARED / "media/images/portrait-512.jpg"))

    print("\nnetwork only (generator + guided filter), same weights")
    print(f"| {'model file':<34} | {'size':>7} | {'dctoon ORT':>10} | {'TFLite':>9} | {'numpy ref':>9} | {'TFLite/ORT':>10} | {'numpy/ORT':>9} |")
    print("|" + "|".join("-" * (w + 2) for w in (34, 7, 10, 9, 9, 10, 9)) + "|")
    for name, size in [("whitebox_cartoon_gan_fp16.tflite", 224), ("whitebox_cartoon_gan_dr.tflite", 512),
                       ("whitebox_cartoon_gan_int8.tflite", 512)]:
        img = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
        ours = TTN(REF / name)
        t_ort = best(lambda: ours.run_batch(img[None]), args.repeat)
        run = tflite_runner(REF / name)
        t_tfl = best(lambda: run(img), args.repeat)
        w = read_tflite(REF / name).weights
        t_np = best(lambda: network.reference_forward(w, img[None]), 1)
        print(f"| {name:<34} | {size:>3}x{size:<3} | {t_ort * 1e3:>7.1f} ms | {t_tfl * 1e3:>6.1f} ms | "
              f"{t_np * 1e3:>6.0f} ms | {t_tfl / t_ort:>9.2f}x | {t_np / t_ort:>8.1f}x |")

    print("\nwhole compound pipeline (detect, align, head + background models, compose), native size")
    print(f"| {'image':<26} | {'size':>9} | {'faces':>5} | {'dctoon':>9} | {'per MP':>9} |")
    print("|" + "|".join("-" * (w + 2) for w in (26, 9, 5, 9, 9)) + "|")
    c = dctoon.load(str(REF / "whitebox_cartoon_gan_fp16.tflite"))
    for path in sorted((SHARED / "media/images").glob("*.jpg")):
        img = dctoon.read_image(path)
        t = best(lambda: c.stylize(img), 1)
        mp = img.shape[0] * img.shape[1] / 1e6
        print(f"| {path.name:<26} | {img.shape[1]:>4}x{img.shape[0]:<4} | {len(c.detector.detect(img)):>5} | "
              f"{t:>7.2f} s | {t / mp:>7.2f} s |")


if __name__ == "__main__":
    main()
