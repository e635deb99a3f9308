"""Auto-crop geometry for social formats: aspect ratios, crop windows and the composed crop of a photo.

Photos (:func:`photo_crop`): the largest window of the requested aspect that fits the frame,
placed so every face that can fit is inside with a margin, the eyes sit near the upper third
line and the group is centred horizontally. The window is never shrunk around small faces:
social platforms rescale uploads to their display size, so a tighter crop only throws away
resolution and context (and a tight crop around a misdetection would be a disaster); the
user asked for a shape, not a zoom. Videos get a moving window from :mod:`dctoon.camera`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from .errors import InputError
from .face import Face

__all__ = ["ASPECTS", "Window", "crop_window", "parse_aspect", "photo_crop", "window_size"]

ASPECTS = {"9:16": 9 / 16, "1:1": 1.0, "4:5": 4 / 5, "16:9": 16 / 9, "1.91:1": 1.91}
_ACCEPTED = "W:H such as 9:16, 1:1, 4:5, 16:9 or 1.91:1 (also W/H, WxH or a ratio like 0.5625), or 'original'"
_MIN_ASPECT, _MAX_ASPECT = 0.1, 10.0

# Composition: the eye line on the upper third, a face margin (fraction of the face size) that
# shrinks only when the window cannot give it, and a face counts in the group's centring when
# it is at least this fraction of the biggest face.
EYE_LINE = 1.0 / 3.0
_MARGIN = 0.15
PROMINENT = 0.5
# MTCNN scores real faces ~0.99+; its false positives (a shoulder, a patterned shirt) pass the
# 0.8 O-Net threshold at 0.8-0.92. Unsure faces are ignored when a sure one is present.
SURE = 0.95
_SLACK = 4.0  # see axis_range


# --- aspect and window --------------------------------------------------------------------------

def parse_aspect(text: str) -> float | None:
    """Width / height from ``"9:16"``, ``"4:5"``, ``"1.91:1"``, ``"9/16"``, ``"9x16"``, ``"0.5625"``.

    ``"original"`` (or ``"none"``, ``"off"``, ``""``) gives None: no crop. Anything else, or a ratio
    outside 1:10 .. 10:1, raises a one-line :class:`InputError` naming the accepted forms.
    """
    s = str(text).strip().lower()
    if s in ("", "original", "none", "off", "source"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*[:/x]\s*(\d+(?:\.\d+)?)", s)
    try:
        if m:
            w, h = float(m.group(1)), float(m.group(2))
            ratio = w / h if h > 0 else math.nan
        elif re.fullmatch(r"\d+(?:\.\d+)?", s):
            ratio = float(s)
        else:
            ratio = math.nan
    except (ValueError, OverflowError):
        ratio = math.nan
    if not (math.isfinite(ratio) and _MIN_ASPECT <= ratio <= _MAX_ASPECT):
        shown = str(text).replace("\n", " ")[:40]
        raise InputError(f"bad crop aspect {shown!r}: use {_ACCEPTED}")
    return ratio


def window_size(frame_hw: tuple[int, int], aspect: float) -> tuple[int, int]:
    """The largest even-sided ``(w, h)`` of ``aspect`` (w/h) inside a ``frame_hw`` frame.

    Even sides because the cropped video is encoded as yuv420p; the aspect is exact to within
    one pixel of rounding.
    """
    fh, fw = int(frame_hw[0]), int(frame_hw[1])
    if fh < 2 or fw < 2:
        raise InputError(f"frame {fw}x{fh} is too small to crop")
    if not aspect > 0:
        raise ValueError(f"aspect must be > 0, got {aspect}")
    ew, eh = fw - fw % 2, fh - fh % 2  # the largest even sides available
    if ew / eh >= aspect:  # the frame is wider than the target: full height
        h = eh
        w = min(ew, max(2, 2 * round(h * aspect / 2)))
    else:
        w = ew
        h = min(eh, max(2, 2 * round(w / aspect / 2)))
    return w, h


@dataclass(frozen=True)
class Window:
    """A crop rectangle in pixels: ``x, y`` top-left, ``w, h`` even sizes."""

    x: int
    y: int
    w: int
    h: int

    def __post_init__(self) -> None:
        for name in ("x", "y", "w", "h"):
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.w <= 0 or self.h <= 0 or self.w % 2 or self.h % 2:
            raise ValueError(f"window sizes must be even and positive, got {self.w}x{self.h}")
        if self.x < 0 or self.y < 0:
            raise ValueError(f"window origin must be inside the frame, got ({self.x}, {self.y})")

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(x1, y1, x2, y2)``, exclusive right/bottom edges."""
        return self.x, self.y, self.x + self.w, self.y + self.h

    @property
    def aspect(self) -> float:
        return self.w / self.h

    def inside(self, frame_hw: tuple[int, int]) -> bool:
        return self.x + self.w <= frame_hw[1] and self.y + self.h <= frame_hw[0]

    def contains(self, box: Sequence[float], tolerance: float = 0.0) -> bool:
        """Whether a face box ``(x1, y1, x2, y2)`` lies inside, allowing ``tolerance`` pixels."""
        x1, y1, x2, y2 = (float(v) for v in box[:4])
        return (x1 >= self.x - tolerance and y1 >= self.y - tolerance
                and x2 <= self.x + self.w + tolerance and y2 <= self.y + self.h + tolerance)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The cropped view of an ``HxW[xC]`` image (a view, not a copy)."""
        if not self.inside(image.shape[:2]):
            raise ValueError(f"window {self} does not fit a {image.shape[1]}x{image.shape[0]} image")
        return image[self.y:self.y + self.h, self.x:self.x + self.w]

    def scaled(self, from_hw: tuple[int, int], to_hw: tuple[int, int]) -> "Window":
        """The same window for a resized copy of the frame (sizes kept even and inside)."""
        sy, sx = to_hw[0] / from_hw[0], to_hw[1] / from_hw[1]
        w = min(max(2, 2 * round(self.w * sx / 2)), to_hw[1] - to_hw[1] % 2)
        h = min(max(2, 2 * round(self.h * sy / 2)), to_hw[0] - to_hw[0] % 2)
        cx, cy = (self.x + self.w / 2) * sx, (self.y + self.h / 2) * sy
        x = int(np.clip(round(cx - w / 2), 0, to_hw[1] - w))
        y = int(np.clip(round(cy - h / 2), 0, to_hw[0] - h))
        return Window(x, y, w, h)


def crop_window(frame: np.ndarray, row: Sequence[float]) -> np.ndarray:
    """Crop one frame with a row ``(x, y, w, h)`` of :func:`plan`'s output.

    Integer rows are a plain slice (a view); fractional positions (``plan(..., subpixel=True)``)
    are resampled bilinearly, which keeps very slow pans from stepping a whole pixel at a time.
    """
    x, y, w, h = (float(v) for v in row)
    w, h = int(round(w)), int(round(h))
    if x == int(x) and y == int(y):
        return Window(int(x), int(y), w, h).apply(frame)
    m = np.float32([[1, 0, -x], [0, 1, -y]])
    return cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# --- composition (shared by photos and videos) --------------------------------------------------

def axis_range(a1, a2, size: int, frame: int, margin) -> tuple[np.ndarray, np.ndarray]:
    """Window origins on one axis that keep ``[a1, a2]`` inside with ``margin`` (vectorised).

    Where the window is tight the margin shrinks to a quarter of the slack, so half of the
    slack stays free: a zero-width corridor would make the camera copy every wobble of the
    box. A box larger than the window cannot be inside: the window stays within a tenth of its
    size of the box's centre. The result is clamped to the frame, so ``lo <= hi`` always holds.
    """
    a1, a2 = np.asarray(a1, np.float64), np.asarray(a2, np.float64)
    span = a2 - a1
    m = np.minimum(np.asarray(margin, np.float64), np.maximum(0.0, (size - span) / _SLACK))
    lo, hi = a2 + m - size, a1 - m
    over = span > size
    mid = (a1 + a2) / 2 - size / 2
    lo, hi = np.where(over, mid - 0.1 * size, lo), np.where(over, mid + 0.1 * size, hi)
    top = max(frame - size, 0)
    return np.clip(lo, 0, top), np.clip(hi, 0, top)


def union(boxes: np.ndarray) -> np.ndarray:
    return np.concatenate([boxes[:, :2].min(0), boxes[:, 2:].max(0)])


def clip_box(box: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    h, w = frame_hw
    return np.clip(np.asarray(box, np.float64), 0, [w, h, w, h])


def eye_y(face: Face) -> float:
    return float(face.landmarks[:2, 1].mean())


def photo_crop(frame_hw: tuple[int, int], faces: list[Face], aspect: float) -> Window:
    """The largest ``aspect`` window in the frame, composed around the faces.

    Faces are taken biggest first; each joins the group if the group's box still fits the
    window (so when not all fit, the biggest face and as many others as fit are kept). Every
    kept face is inside with a margin of up to 15% of the biggest face's size; within that
    freedom the window centres the prominent faces (at least half the biggest's size, so a
    small face in the background does not pull the framing) horizontally and puts their eye
    line on the upper third. Faces the detector is unsure of (score < 0.95, where its false
    positives sit) are ignored when a sure one is present. No faces: a centre crop. Deterministic.
    """
    fh, fw = int(frame_hw[0]), int(frame_hw[1])
    w, h = window_size((fh, fw), aspect)
    if not faces:
        return Window((fw - w) // 2, (fh - h) // 2, w, h)
    faces = sorted([f for f in faces if f.score >= SURE] or faces, key=lambda f: f.size, reverse=True)
    boxes = [clip_box(f.box, (fh, fw)) for f in faces]
    kept = [0]
    for i in range(1, len(faces)):
        u = union(np.array([boxes[j] for j in kept + [i]]))
        if u[2] - u[0] <= w and u[3] - u[1] <= h:
            kept.append(i)
    group = union(np.array([boxes[i] for i in kept]))
    main = faces[0].size
    prominent = [i for i in kept if faces[i].size >= PROMINENT * main]
    core = union(np.array([boxes[i] for i in prominent]))
    weights = np.array([faces[i].size for i in prominent])
    eye = float(np.dot(weights, [eye_y(faces[i]) for i in prominent]) / weights.sum())

    margin = _MARGIN * main
    xlo, xhi = axis_range(group[0], group[2], w, fw, margin)
    ylo, yhi = axis_range(group[1], group[3], h, fh, margin)
    x = np.clip((core[0] + core[2]) / 2 - w / 2, xlo, xhi)
    y = np.clip(eye - EYE_LINE * h, ylo, yhi)
    return Window(int(np.clip(round(float(x)), 0, fw - w)), int(np.clip(round(float(y)), 0, fh - h)), w, h)
