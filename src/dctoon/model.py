"""One TTN network in an ONNX Runtime session: padding, batching and tiling around the graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import network
from .importers import read_any
from .runtime import session


class TTN:
    """A texture translation network: BGR uint8 images in, stylized BGR uint8 images out.

    Inputs of any size are reflect-padded to a multiple of 4 (the U-Net's two stride-2 stages);
    images larger than ``tile`` on a side are processed in overlapping tiles blended with linear
    ramps, so memory stays bounded whatever the resolution.
    """

    def __init__(self, path: Path, threads: int = 0, tile: int = 1536, overlap: int = 96, device: str = "cpu"):
        path = Path(path)
        # Every format (ours, .tflite, frozen .pb) is read into weights and rebuilt as our own graph:
        # one parse per file, and the session always runs the graph this version of dctoon writes.
        self.imported = imported = read_any(path)  # the weights and filter, for whoever needs them (distillation)
        model_bytes = imported.onnx().SerializeToString()
        self.path = path
        self.session = session(model_bytes, threads, device=device)
        self.tile, self.overlap = tile, overlap

    def run_batch(self, bgr: np.ndarray) -> np.ndarray:
        """[N,H,W,3] uint8 -> [N,H,W,3] uint8, whole images in one call."""
        n, h, w, _ = bgr.shape
        ph, pw = -h % 4, -w % 4
        x = bgr.astype(np.float32)
        if ph or pw:
            mode = "reflect" if min(h, w) > max(ph, pw) else "edge"
            x = np.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode=mode)
        out = self.session.run([network.OUTPUT_NAME], {network.INPUT_NAME: x})[0]
        return out[:, :h, :w]

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        """One HxWx3 uint8 image, tiled when large."""
        h, w = bgr.shape[:2]
        if max(h, w) <= self.tile:
            return self.run_batch(bgr[None])[0]
        acc = np.zeros((h, w, 3), np.float32)
        weight = np.zeros((h, w, 1), np.float32)
        for y0, y1, x0, x1 in _tiles(h, w, self.tile, self.overlap):
            out = self.run_batch(bgr[None, y0:y1, x0:x1])[0].astype(np.float32)
            ramp = np.outer(_ramp(y0, y1, h, self.overlap), _ramp(x0, x1, w, self.overlap))[..., None]
            acc[y0:y1, x0:x1] += out * ramp
            weight[y0:y1, x0:x1] += ramp
        return np.clip(acc / weight + 0.5, 0, 255).astype(np.uint8)


def _tiles(h: int, w: int, tile: int, overlap: int):
    """Overlapping windows covering the image, starting on multiples of 4 so that the
    network's stride-2 stages sample each tile in phase with the whole image.

    As few tiles as ``tile`` allows, each only as long as needed for ``overlap`` px of overlap
    with its neighbour (not a full ``tile``): same seams, about half the work of full tiles at 4K.
    """
    def spans(size: int) -> list[tuple[int, int]]:
        if size <= tile:
            return [(0, size)]
        n = -(-(size - overlap) // (tile - overlap))
        length = int(min(-(-((size + (n - 1) * overlap) / n + 4) // 4) * 4, tile))
        step = (size - length) / (n - 1)
        starts = [int(i * step) // 4 * 4 for i in range(n)]
        return [(a, size if i == n - 1 else a + length) for i, a in enumerate(starts)]

    for y0, y1 in spans(h):
        for x0, x1 in spans(w):
            yield y0, y1, x0, x1


def _ramp(a: int, b: int, size: int, overlap: int) -> np.ndarray:
    """Blend weights along one axis: rising over the overlap except at the image border."""
    r = np.ones(b - a, np.float32)
    t = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
    if a > 0:
        r[:overlap] = np.minimum(r[:overlap], t[: b - a])
    if b < size:
        r[-overlap:] = np.minimum(r[-overlap:], t[::-1][-(b - a):])
    return r


class Mix:
    """Several styles' networks used as one: their outputs averaged with weights that sum to 1.

    Each output is its generator's refined by the guided filter with the photo as guide, and the
    filter is linear in what it filters: this is mixing the styles before the filter, so edges
    still come from the photo. (Averaging the weights instead would need networks trained from
    one start; the official styles are not.)"""

    def __init__(self, parts: list[tuple[TTN, float]]):
        self.parts = parts
        self.imported = parts[0][0].imported  # the guided filter's settings, for strength

    def _mix(self, outputs) -> np.ndarray:
        acc = sum(w * o.astype(np.float32) for o, (_, w) in zip(outputs, self.parts))
        return np.clip(acc + 0.5, 0, 255).astype(np.uint8)

    def run_batch(self, bgr: np.ndarray) -> np.ndarray:
        return self._mix([t.run_batch(bgr) for t, _ in self.parts])

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        return self._mix([t(bgr) for t, _ in self.parts])
