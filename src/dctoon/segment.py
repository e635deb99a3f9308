"""Portrait (person) segmentation: MediaPipe's selfie segmentation model on onnxruntime.

:class:`Segmenter` turns an RGB image into a person probability mask at the image's resolution,
with edges snapped to the picture by a guided filter. The model is fetched and converted by
:mod:`dctoon.helper_models`; :class:`dctoon.video.temporal.MaskSmoother` steadies successive
masks of a video.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .errors import ModelError
from .helper_models import DEFAULT_MODEL, MODELS, ensure_model
from .runtime import session

__all__ = ["Segmenter", "guided_filter"]


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, p: np.ndarray, radius: int, eps: float) -> tuple[list[np.ndarray], np.ndarray]:
    """He et al.'s colour guided filter: the linear coefficients ``(a, b)`` with ``q = a . I + b``.

    Returned rather than ``q`` so that they can be computed on a small image and applied to the
    full-resolution guide (the fast guided filter): edges then follow the full-resolution picture.
    ``guide``: float32 HxWx3 in [0, 1]; ``p``: float32 HxW; ``a`` is one HxW array per channel.
    Works on contiguous 2-D planes: OpenCV's box filter is several times faster on those.
    """
    p = np.ascontiguousarray(p, dtype=np.float32)
    ch = [np.ascontiguousarray(guide[..., i], dtype=np.float32) for i in range(3)]
    r, g_, b_ = ch
    mr, mg, mb = (_box(c, radius) for c in ch)
    mp = _box(p, radius)
    c0, c1, c2 = (_box(c * p, radius) - m * mp for c, m in ((r, mr), (g_, mg), (b_, mb)))
    rr = _box(r * r, radius) - mr * mr + eps
    rg = _box(r * g_, radius) - mr * mg
    rb = _box(r * b_, radius) - mr * mb
    gg = _box(g_ * g_, radius) - mg * mg + eps
    gb = _box(g_ * b_, radius) - mg * mb
    bb = _box(b_ * b_, radius) - mb * mb + eps
    # inverse of the symmetric 3x3 covariance (+ eps I) by cofactors
    i_rr, i_rg, i_rb = gg * bb - gb * gb, gb * rb - rg * bb, rg * gb - gg * rb
    i_gg, i_gb, i_bb = rr * bb - rb * rb, rb * rg - rr * gb, rr * gg - rg * rg
    inv_det = 1.0 / (rr * i_rr + rg * i_rg + rb * i_rb)
    a0 = (i_rr * c0 + i_rg * c1 + i_rb * c2) * inv_det
    a1 = (i_rg * c0 + i_gg * c1 + i_gb * c2) * inv_det
    a2 = (i_rb * c0 + i_gb * c1 + i_bb * c2) * inv_det
    b = mp - a0 * mr - a1 * mg - a2 * mb
    return [_box(a, radius) for a in (a0, a1, a2)], _box(b, radius)


class Segmenter:
    """Person probability masks for RGB images: one onnxruntime session, reused for every call.

    ``threads``: onnxruntime's intra-op thread count (0: its default). ``model``: a name from
    :data:`dctoon.helper_models.MODELS` (downloaded and converted on first use) or a path to a converted ``.onnx``.
    ``refine``: snap the mask's edges to the image with a guided filter (``radius`` and ``eps``
    at a working resolution of ``work_side`` pixels on the long side).
    """

    def __init__(self, threads: int = 0, model: str | os.PathLike = DEFAULT_MODEL, *, refine: bool = True,
                 radius: int = 6, eps: float = 2e-3, work_side: int = 512, progress: bool | None = None):
        if threads < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        path = ensure_model(model, progress) if isinstance(model, str) and model in MODELS else Path(model)
        if not Path(path).is_file():
            raise ModelError(f"{path}: segmentation model not found; known names: {', '.join(MODELS)}")
        self._session = session(path, threads, helper=True,
                                what=f"the segmentation model {path} (delete it to have it converted again)")
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        self.height, self.width = int(inp.shape[1]), int(inp.shape[2])
        self.refine, self.radius, self.eps, self.work_side = refine, int(radius), float(eps), int(work_side)

    def _prepare(self, rgb: np.ndarray) -> np.ndarray:
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected a uint8 HxWx3 RGB image, got {getattr(rgb, 'dtype', type(rgb))} "
                             f"{getattr(rgb, 'shape', '')}")
        if min(rgb.shape[:2]) == 0:
            raise ValueError("empty image")
        h, w = rgb.shape[:2]
        # Stretched to the model's input, no letterbox, as MediaPipe's graph does; area averaging
        # when shrinking so that a large photo is not aliased.
        shrink = h > self.height or w > self.width
        x = cv2.resize(np.ascontiguousarray(rgb), (self.width, self.height),
                       interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return x.astype(np.float32) * np.float32(1 / 255)

    def raw(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """The model's own output for a batch of images: float32 Nx(model H)x(model W) in [0, 1]."""
        batch = np.stack([self._prepare(im) for im in images])
        return self._session.run(None, {self._input: batch})[0][..., 0]

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """Person probability of every pixel of a uint8 HxWx3 RGB image: float32 HxW in [0, 1]."""
        return self._finish(rgb, self.raw([rgb])[0])

    def batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`__call__` for several images with one inference run."""
        return [self._finish(im, m) for im, m in zip(images, self.raw(images))] if len(images) else []

    def _finish(self, rgb: np.ndarray, low: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        if not self.refine:
            return np.clip(cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
        # Fast guided filter: coefficients on a copy of at most work_side px, applied at full size.
        scale = min(1.0, self.work_side / max(h, w))
        ws = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = rgb if ws == (w, h) else cv2.resize(rgb, ws, interpolation=cv2.INTER_AREA)
        small = small.astype(np.float32) * np.float32(1 / 255)
        p = cv2.resize(low, ws, interpolation=cv2.INTER_LINEAR)
        a, b = guided_filter(small, p, max(1, round(self.radius * max(ws) / 512)), self.eps)
        guide = small
        if ws != (w, h):
            a = [cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR) for x in a]
            b = cv2.resize(b, (w, h), interpolation=cv2.INTER_LINEAR)
            guide = rgb.astype(np.float32) * np.float32(1 / 255)
        q = b
        for i in range(3):
            q += a[i] * guide[..., i]
        return np.clip(q, 0.0, 1.0, out=q)
