"""The official DCT-Net video loop, as the speed baseline: a TF1 graph in a session, fed the same weights.

    python bench/reference.py WEIGHTS.tflite VIDEO OUT.mp4 [--seconds N]

What the official pipeline does per frame, minus its face detection and landmarks (so this is a
lower bound of its cost): imageio reads the frame, the short side is capped at 720, the background
graph stylizes the whole frame, the head graph stylizes one 288x288 crop (here the centre square,
which stands in for the aligned face), the crop is pasted back, and imageio's libx264 writes the
frame. The graphs are the official frozen layout (``input_image`` -> ``output_image``, TF "SAME"
convolutions, legacy bilinear upsampling, guided filter) built by ``tests/tf_graphs.py`` from the
weights dctoon's importer reads out of the ``.tflite``. Needs the test extra (tensorflow-cpu,
imageio, imageio-ffmpeg); ``bench/video.py`` runs it beside dctoon in one interleaved table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


class OfficialGraphs:
    """The head and background frozen graphs, imported side by side into one TF1 session."""

    def __init__(self, weights_path: Path):
        import tensorflow as tf

        from dctoon.importers import read_any
        from tf_graphs import write_official_pb

        tf1 = tf.compat.v1
        imported = read_any(Path(weights_path))
        graph = tf.Graph()
        with tempfile.TemporaryDirectory() as tmp:
            pb = write_official_pb(imported.weights, Path(tmp) / "cartoon.pb", radius=imported.radius,
                                   eps=imported.eps)
            gdef = tf1.GraphDef()
            gdef.ParseFromString(pb.read_bytes())
        with graph.as_default():
            for scope in ("model_head", "model_bg"):
                tf1.import_graph_def(gdef, name=scope)
        self.session = tf1.Session(graph=graph)
        self.run("model_bg", np.zeros((64, 64, 3), np.uint8))  # build the kernels before any timing

    def run(self, scope: str, bgr: np.ndarray) -> np.ndarray:
        return self.session.run(f"{scope}/output_image:0", {f"{scope}/input_image:0": bgr.astype(np.float32)})


def cap_720(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    if min(h, w) <= 720:
        return rgb
    s = 720 / min(h, w)
    return cv2.resize(rgb, (round(w * s) // 2 * 2, round(h * s) // 2 * 2), interpolation=cv2.INTER_AREA)


def stylize_frame(graphs: OfficialGraphs, rgb: np.ndarray) -> np.ndarray:
    bgr = np.ascontiguousarray(cap_720(rgb)[..., ::-1])
    out = graphs.run("model_bg", bgr)
    h, w = bgr.shape[:2]
    side = min(h, w) // 2
    y, x = (h - side) // 2, (w - side) // 2
    head = graphs.run("model_head", cv2.resize(bgr[y:y + side, x:x + side], (288, 288), interpolation=cv2.INTER_AREA))
    out[y:y + side, x:x + side] = cv2.resize(head, (side, side), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(out[..., ::-1])


def reference_loop(graphs: OfficialGraphs, src: Path, dst: Path, seconds: float | None = None) -> int:
    """Stylize ``src`` into ``dst`` the official way; returns the frames written."""
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(src), format="FFMPEG")
    fps = reader.get_meta_data()["fps"]
    writer = imageio.get_writer(str(dst), format="FFMPEG", fps=fps, codec="libx264", quality=8, macro_block_size=1)
    n = 0
    try:
        for frame in reader:
            if seconds and n >= round(seconds * fps):
                break
            writer.append_data(stylize_frame(graphs, frame))
            n += 1
    finally:
        writer.close()
        reader.close()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("video", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seconds", type=float)
    args = ap.parse_args()
    graphs = OfficialGraphs(args.weights)
    t = time.perf_counter()
    n = reference_loop(graphs, args.video, args.out, args.seconds)
    wall = time.perf_counter() - t
    print(f"{n} frames in {wall:.1f} s: {n / wall:.2f} frames/s")


if __name__ == "__main__":
    main()
