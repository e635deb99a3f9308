"""Per-video state around :meth:`Cartoonizer.stylize_bgr`: face tracks, temporal blending and the
person mask smoothed over time."""

from __future__ import annotations

import cv2
import numpy as np

from ..matte import blend as matte_blend
from ..track import SceneCuts


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
            out = matte_blend(bgr, out, mask, c.settings.part, c.backdrop)
        return out


class MaskSmoother:
    """Temporal smoothing of a video's masks, so that edges do not shimmer from frame to frame.

    An exponential moving average whose weight on the new mask is ``1 - keep`` where the picture
    is still and rises to 1 where the frame itself changed by ``motion`` or more (grey levels in
    [0, 1], on a blurred thumbnail of ``thumb`` px): a moving person is followed at once instead
    of ghosting, while the model's frame-to-frame jitter on a still edge is averaged out. A frame
    that starts a new shot (:class:`dctoon.track.SceneCuts`, ``cut`` on its 0-255 scale) resets the
    average. Defaults chosen on the shared videos (tests/test_segment.py has the numbers): stronger averaging
    lagged behind fast head turns, a finer thumbnail kept more still edge pixels still.
    """

    def __init__(self, keep: float = 0.8, motion: float = 0.08, cut: float = 40.0, thumb: int = 320):
        if not 0.0 <= keep < 1.0:
            raise ValueError(f"keep must be in [0, 1), got {keep}")
        self.keep, self.motion, self.thumb = float(keep), float(motion), int(thumb)
        self.cuts = SceneCuts(cut)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next mask is returned as is."""
        self._mask: np.ndarray | None = None
        self._thumb: np.ndarray | None = None
        self.cuts.reset()

    def _thumbnail(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        s = min(1.0, self.thumb / max(h, w))
        small = cv2.resize(np.ascontiguousarray(frame), (max(1, round(w * s)), max(1, round(h * s))),
                           interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY) if small.ndim == 3 else small
        return cv2.GaussianBlur(grey.astype(np.float32) * np.float32(1 / 255), (5, 5), 0)

    def __call__(self, frame_rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The smoothed mask for this frame (float32, the shape of ``mask``)."""
        mask = np.asarray(mask, dtype=np.float32)
        if frame_rgb.shape[:2] != mask.shape:
            raise ValueError(f"frame {frame_rgb.shape[:2]} and mask {mask.shape} differ in size")
        thumb = self._thumbnail(frame_rgb)
        prev, prev_thumb = self._mask, self._thumb
        self._thumb = thumb
        cut = self.cuts(SceneCuts.thumbnail(thumb * np.float32(255)))  # from the small thumbnail, not the frame
        if prev is None or prev.shape != mask.shape or prev_thumb.shape != thumb.shape or cut:
            self._mask = mask.copy()
            return mask.copy()
        change = cv2.dilate(np.abs(thumb - prev_thumb), np.ones((3, 3), np.uint8))
        follow = np.clip(change / self.motion, 0.0, 1.0)
        weight = (1.0 - self.keep) + self.keep * follow  # weight of the new mask
        weight = cv2.resize(weight, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_LINEAR)
        out = prev + weight * (mask - prev)
        self._mask = out
        return out.copy()
