"""Per-video state around :meth:`Cartoonizer.stylize_bgr`: face tracks, temporal blending and the
person mask smoothed over time."""

from __future__ import annotations

import numpy as np

from ..matte import blend as matte_blend


class FrameStylizer:
    """One frame at a time, with what the frames before it left: tracked faces (detected every
    ``detect_every`` frames, followed in between), the background blended with the previous output
    where it is the same surface, and the person mask smoothed where the picture is still.

    ``temporal=False`` is the per-frame path (detection on every frame, no smoothing, fading or
    blending): the same models and code otherwise, used as the baseline by ``bench/temporal.py``.
    """

    def __init__(self, cartoonizer, temporal: bool = True, detect_every: int = 3, blend: float = 0.8):
        from ..track import FaceTracker, TemporalBlender

        self.cartoonizer = cartoonizer
        self.temporal = temporal
        self.tracker = FaceTracker(cartoonizer.detector.detect, detect_every) if cartoonizer.heads and temporal \
            else None
        self.blender = TemporalBlender(blend) if temporal and blend > 0 else None
        self.smoother = None
        if cartoonizer.segmented and temporal:
            from ..segment import MaskSmoother

            self.smoother = MaskSmoother()
        self.last_faces: list = []

    def __call__(self, bgr: np.ndarray, t: float) -> np.ndarray:
        c = self.cartoonizer
        if not c.heads:
            faces, weights = [], []
        elif self.tracker is not None:
            faces, weights, _ = self.tracker.update(bgr, t)
        else:
            faces = c.detector.detect(np.ascontiguousarray(bgr[..., ::-1]))
            weights = [1.0] * len(faces)
        # stylize_bgr drops faces below min_face; drop them here so the weights stay aligned.
        keep = [i for i, f in enumerate(faces) if f.size >= c.settings.min_face]
        faces, weights = [faces[i] for i in keep], [weights[i] for i in keep]
        self.last_faces = faces
        out = c.stylize_bgr(bgr, faces, weights) if faces else c.stylize_bgr(bgr, [])
        out = self.blender(bgr, out) if self.blender is not None else out
        if c.segmented:  # matte after blending: the stylized layer is smoothed, the photo is not
            rgb = np.ascontiguousarray(bgr[..., ::-1])
            mask = c.segmenter(rgb)
            mask = self.smoother(rgb, mask) if self.smoother is not None else mask
            out = matte_blend(bgr, out, mask, c.settings.mode, c.backdrop)
        return out
