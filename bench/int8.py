"""Static int8 quantization of a style's network (ONNX Runtime QDQ, per-channel, u8 activations,
s8 weights: VNNI kernels) against its fp32 graph: speed, and fidelity on the shared images and
video frames (the guard: >= 35 dB PSNR to fp32 before int8 could be a default).

    python bench/int8.py                               # the official anime style from ../shared
    python bench/int8.py --style anime --calib 32      # a built-in style

Calibration: aligned 288x288 face crops from ../shared/data/face-photos and video frames (1 per
second of the shared videos, long side 512), never the evaluation inputs. Evaluation: the 7 shared
images (long side 720) and 1 frame per second of the shared videos (short side capped at 720), the
background network on the whole picture: what the pipeline runs on every frame. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import IMAGES, OFFICIAL, SHARED, VIDEOS  # noqa: E402


def frames(step: float = 1.0, side: int | None = None, short: int | None = None) -> list[np.ndarray]:
    import av

    out = []
    for v in sorted(VIDEOS.glob("*.mp4")):
        with av.open(str(v)) as c:
            due = 0.0
            for f in c.decode(video=0):
                t = float(f.pts * f.time_base)
                if t >= due:
                    out.append(fit(f.to_ndarray(format="bgr24"), side, short))
                    due += step
    return out


def fit(bgr: np.ndarray, side: int | None = None, short: int | None = None) -> np.ndarray:
    h, w = bgr.shape[:2]
    s = min(1.0, (side / max(h, w)) if side else 1.0, (short / min(h, w)) if short else 1.0)
    if s < 1:
        bgr = cv2.resize(bgr, (round(w * s) // 4 * 4, round(h * s) // 4 * 4), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[: bgr.shape[0] // 4 * 4, : bgr.shape[1] // 4 * 4])


def calibration(n: int) -> list[np.ndarray]:
    from dctoon.face import FaceDetector, align

    det, crops = FaceDetector(), []
    for p in sorted((SHARED / "data" / "face-photos").glob("*"))[: 3 * n]:
        bgr = cv2.imread(str(p))
        if bgr is None:
            continue
        faces = det.detect(np.ascontiguousarray(bgr[..., ::-1]))
        if faces:
            crops.append(align(bgr, faces[0].landmarks, 288)[0])
        if len(crops) >= n:
            break
    return crops + frames(2.0, side=512)[: n // 2]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def main(argv=None) -> int:
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from dctoon import styles
    from dctoon.importers import read_any
    from dctoon.network import INPUT_NAME, OUTPUT_NAME

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--style", default=str(OFFICIAL / "dctnet_anime.tflite"))
    ap.add_argument("--calib", type=int, default=24, help="face crops (and half as many frames) to calibrate on")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args(argv)

    path = Path(args.style) if Path(args.style).exists() else styles.resolve(args.style).head
    work = Path(tempfile.mkdtemp(prefix="dctoon-int8-"))
    fp32 = work / "fp32.onnx"
    fp32.write_bytes(read_any(path).onnx().SerializeToString())

    class Reader(CalibrationDataReader):
        def __init__(self, images):
            self.it = iter([{INPUT_NAME: im[None].astype(np.float32)} for im in images])

        def get_next(self):
            return next(self.it, None)

    t = time.perf_counter()
    int8 = work / "int8.onnx"
    quantize_static(str(fp32), str(int8), Reader(calibration(args.calib)), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["Conv"])
    t_quant = time.perf_counter() - t

    def session(p):
        o = ort.SessionOptions()
        o.intra_op_num_threads = args.threads
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(p), o, providers=["CPUExecutionProvider"])

    s32, s8 = session(fp32), session(int8)
    run = (lambda s, x: s.run([OUTPUT_NAME], {INPUT_NAME: x[None].astype(np.float32)})[0][0])
    images = [fit(cv2.imread(str(p)), side=720) for p in sorted(IMAGES.glob("*.jpg"))]
    video = frames(1.0, short=720)
    rows = []
    for label, data in (("shared images", images), ("video frames, 1/s", video)):
        values = [psnr(run(s32, x), run(s8, x)) for x in data]
        rows.append((label, len(data), np.mean(values), np.min(values)))
    x = fit(video[0], short=720)
    timing = {}
    for name, s in (("fp32", s32), ("int8", s8)):
        run(s, x)  # warm-up
        timing[name] = min(_time(s, x, run) for _ in range(3))
    print(f"# {platform.node()}, {os.cpu_count()} CPU cores, {args.threads} threads, load {os.getloadavg()[0]:.1f}; "
          f"{path.name}; calibrated on {args.calib} face crops + {args.calib // 2} frames in {t_quant:.0f} s\n")
    print("| inputs | n | mean PSNR int8 vs fp32 | worst |")
    print("|---|---:|---:|---:|")
    for label, n, mean, worst in rows:
        print(f"| {label} | {n} | {mean:.2f} dB | {worst:.2f} dB |")
    h, w = x.shape[:2]
    print(f"\n| {w}x{h} frame | fp32 | int8 | speed-up |\n|---|---:|---:|---:|\n"
          f"| ms (best of 3) | {timing['fp32'] * 1e3:.0f} | {timing['int8'] * 1e3:.0f} | "
          f"{timing['fp32'] / timing['int8']:.2f}x |")
    return 0


def _time(s, x, run) -> float:
    t = time.perf_counter()
    run(s, x)
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
