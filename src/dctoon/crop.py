"""Auto-crop for social formats: a composed crop of a photo, a virtual camera for a video.

Photos (:func:`photo_crop`): the largest window of the requested aspect that fits the frame,
placed so every face that can fit is inside with a margin, the eyes sit near the upper third
line and the group is centred horizontally. The window is never shrunk around small faces:
social platforms rescale uploads to their display size, so a tighter crop only throws away
resolution and context (and a tight crop around a misdetection would be a disaster); the
user asked for a shape, not a zoom.

Videos use two passes, like the auto-reframe tools that work well (an online follower must
either lag or jitter; offline, the camera can anticipate):

1. :func:`analyze` decodes the video once (rotation applied, frames downscaled for detection
   only) and runs the face detector every ``every`` frames and on scene cuts, and on the frames
   in between wherever a face moved fast (dense detections only where interpolation would guess).
2. :func:`plan` turns those detections into one window per frame. The window size is fixed
   (no zoom pumping). Detections are linked into per-person tracklets, one subject is chosen
   per shot (the most prominent person over time, joined by faces close enough to share the
   frame) and kept until it disappears, so the camera never hops between people. The
   composition target is cut into "holds" (the camera stays still while the subject moves
   less than a dead zone), smoothed by a quadratic path optimisation (penalising velocity and
   acceleration), and a constrained re-solve pins the path wherever a subject face box would
   leave the window, so every face box lies inside on every frame while the path stays smooth.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from .errors import InputError
from .face import Face

__all__ = [
    "ASPECTS",
    "PlanInfo",
    "Track",
    "Window",
    "analyze",
    "crop_window",
    "motion_stats",
    "parse_aspect",
    "photo_crop",
    "plan",
    "plan_video",
    "window_size",
]

# Named social formats; any W:H is accepted too.
ASPECTS = {"9:16": 9 / 16, "1:1": 1.0, "4:5": 4 / 5, "16:9": 16 / 9, "1.91:1": 1.91}
_ACCEPTED = "W:H such as 9:16, 1:1, 4:5, 16:9 or 1.91:1 (also W/H, WxH or a ratio like 0.5625), or 'original'"
_MIN_ASPECT, _MAX_ASPECT = 0.1, 10.0

# Composition: the eye line on the upper third, a face margin (fraction of the face size) that
# shrinks only when the window cannot give it, and a face counts in the group's centring when
# it is at least this fraction of the biggest face.
_EYE_LINE = 1.0 / 3.0
_MARGIN = 0.15
_PROMINENT = 0.5
# MTCNN scores real faces ~0.99+; its false positives (a shoulder, a patterned shirt) pass the
# 0.8 O-Net threshold at 0.8-0.92. Unsure faces are ignored when a sure one is present.
_SURE = 0.95
_SLACK = 4.0  # see _axis_range


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

def _axis_range(a1, a2, size: int, frame: int, margin) -> tuple[np.ndarray, np.ndarray]:
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


def _union(boxes: np.ndarray) -> np.ndarray:
    return np.concatenate([boxes[:, :2].min(0), boxes[:, 2:].max(0)])


def _clip_box(box: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    h, w = frame_hw
    return np.clip(np.asarray(box, np.float64), 0, [w, h, w, h])


def _eye_y(face: Face) -> float:
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
    faces = sorted([f for f in faces if f.score >= _SURE] or faces, key=lambda f: f.size, reverse=True)
    boxes = [_clip_box(f.box, (fh, fw)) for f in faces]
    kept = [0]
    for i in range(1, len(faces)):
        u = _union(np.array([boxes[j] for j in kept + [i]]))
        if u[2] - u[0] <= w and u[3] - u[1] <= h:
            kept.append(i)
    group = _union(np.array([boxes[i] for i in kept]))
    main = faces[0].size
    prominent = [i for i in kept if faces[i].size >= _PROMINENT * main]
    core = _union(np.array([boxes[i] for i in prominent]))
    weights = np.array([faces[i].size for i in prominent])
    eye = float(np.dot(weights, [_eye_y(faces[i]) for i in prominent]) / weights.sum())

    margin = _MARGIN * main
    xlo, xhi = _axis_range(group[0], group[2], w, fw, margin)
    ylo, yhi = _axis_range(group[1], group[3], h, fh, margin)
    x = np.clip((core[0] + core[2]) / 2 - w / 2, xlo, xhi)
    y = np.clip(eye - _EYE_LINE * h, ylo, yhi)
    return Window(int(np.clip(round(float(x)), 0, fw - w)), int(np.clip(round(float(y)), 0, fh - h)), w, h)


# --- pass 1: analysis -------------------------------------------------------------------------

@dataclass
class Track:
    """What :func:`analyze` saw: faces on the detection frames, in full-resolution pixels.

    ``frame_hw`` is the upright (rotation applied) size of the decoded frames; ``times`` has one
    timestamp per decoded frame (seconds, the stream's pts); ``detected`` the indices of the
    frames the detector ran on and ``faces`` what it found there (largest first); ``cuts`` the
    first frame of every shot (0 included).
    """

    frame_hw: tuple[int, int]
    fps: float
    times: np.ndarray
    detected: np.ndarray
    faces: list[list[Face]]
    cuts: np.ndarray
    every: int
    seconds: float = 0.0
    refine: float | None = 0.1

    @property
    def n_frames(self) -> int:
        return len(self.times)

    def thinned(self, every: int) -> "Track":
        """The track :func:`analyze` would have returned with ``every`` (and this ``refine``),
        from a track analysed with ``every=1``.

        Detection is deterministic, so this equals a second analysis without decoding twice
        (used to measure a detection rate against every-frame ground truth).
        """
        if self.every != 1 or len(self.detected) != self.n_frames:
            raise ValueError("thinned() needs a track analysed with every=1")
        cuts = set(int(c) for c in self.cuts)
        keep: list[int] = []
        prev = None
        for i in range(self.n_frames):
            if i % every and i not in cuts:
                continue
            if prev is not None and i not in cuts and _refine_needed(self.faces[prev], self.faces[i], self.refine):
                keep.extend(range(prev + 1, i))
            keep.append(i)
            prev = i
        return Track(self.frame_hw, self.fps, self.times, self.detected[keep],
                     [self.faces[k] for k in keep], self.cuts, every, self.seconds, self.refine)


def _refine_needed(before: list[Face], after: list[Face], threshold: float | None) -> bool:
    """Whether the frames between two scheduled detections need detecting too: a (sure) face
    came or went, or one moved by more than ``threshold`` of its size (a box corner's displacement).
    Interpolating such a gap would guess; detecting it costs only where the motion is."""
    if threshold is None:
        return False
    before = [f for f in before if f.score >= _SURE] or before
    after = [f for f in after if f.score >= _SURE] or after
    if len(before) != len(after):
        return True
    for f in after:
        centre = (f.box[:2] + f.box[2:]) / 2
        g = min(before, key=lambda g: float(np.linalg.norm((g.box[:2] + g.box[2:]) / 2 - centre)))
        if float(np.abs(f.box - g.box).max()) > threshold * max(f.size, 1.0):
            return True
    return False


# 8-bit pixel formats whose first plane is the luma at full size.
_LUMA_FIRST = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p",
               "yuv411p", "yuva420p", "nv12", "nv21", "gray"}


def _thumbnail(frame) -> np.ndarray:
    """A 48x48 grey thumbnail for scene-cut detection, from the luma plane where there is one
    (swscale to a tiny size costs more than decoding)."""
    if frame.format.name in _LUMA_FIRST:
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, :frame.width]
        return cv2.resize(luma, (48, 48), interpolation=cv2.INTER_AREA).astype(np.float32)
    return frame.to_ndarray(width=48, height=48, format="gray").astype(np.float32)


def analyze(
    path: str | Path,
    detector,
    every: int = 3,
    max_side: int = 640,
    progress: Callable[[int, int], None] | None = None,
    *,
    start: float | None = None,
    end: float | None = None,
    refine: float | None = 0.1,
    cut_threshold: float = 40.0,
) -> Track:
    """Decode ``path`` once and detect faces every ``every`` frames and on every scene cut.

    ``detector`` is anything with ``detect(rgb) -> list[Face]`` (e.g. :class:`FaceDetector`).
    Frames are made upright (display-matrix rotation, as :mod:`dctoon.video` does) and
    downscaled so the long side is at most ``max_side`` for detection only: a portrait's face
    stays far above the detector's minimum there, and detection cost grows with the area.
    Boxes and landmarks are mapped back to full-resolution coordinates. ``start``/``end`` trim
    (seconds) the same way :func:`dctoon.video.stylize_video` does, so frame ``i`` here is
    frame ``i`` there. ``progress(done, total)`` is called after every frame.

    Where a face moved by more than ``refine`` of its size between two scheduled detections
    (or faces came or went), the frames in between are detected too (they are kept, small,
    until the next scheduled detection): fast motion gets dense detections, a still subject
    costs one detection in ``every``. ``refine=None`` turns that off.
    """
    import av

    from .video import _short, _upright, open_span, span_frames

    if every < 1:
        raise InputError(f"detect every must be >= 1 frame, got {every}")
    if max_side < 64:
        raise InputError(f"analysis max_side must be >= 64, got {max_side}")
    began = time.perf_counter()
    path = Path(path)
    container, vs, rate, total = open_span(path, start, end)
    rate = float(rate)
    try:
        times: list[float] = []
        detected: list[int] = []
        faces: list[list[Face]] = []
        cuts: list[int] = []
        frame_hw = None
        small = scale = None
        prev_thumb = None
        pending: list = []  # (index, frame) since the last scheduled detection, for refinement

        def detect(frame) -> list[Face]:
            rgb = frame.to_ndarray(width=small[0], height=small[1], format="rgb24", interpolation="AREA")
            rgb = np.ascontiguousarray(_upright(rgb, frame.rotation))
            return [Face(f.box * np.tile(scale, 2), f.score, f.landmarks * scale) for f in detector.detect(rgb)]

        try:
            for frame, t in span_frames(container, vs, start, end):
                i = len(times)
                rotation = frame.rotation
                quarter = round(rotation / 90) % 2
                if frame_hw is None:
                    sw, sh = frame.width, frame.height
                    fw, fh = (sh, sw) if quarter else (sw, sh)
                    frame_hw = (fh, fw)
                    s = min(1.0, max_side / max(fw, fh))
                    small = (max(16, round(sw * s)), max(16, round(sh * s)))  # stored orientation
                    up_w, up_h = (small[1], small[0]) if quarter else small
                    scale = np.float32([fw / up_w, fh / up_h])
                thumb = _thumbnail(frame)
                cut = i == 0 or (prev_thumb is not None and float(np.abs(thumb - prev_thumb).mean()) > cut_threshold)
                prev_thumb = thumb
                if cut:
                    cuts.append(i)
                times.append(t)
                if i % every == 0 or cut:
                    found = detect(frame)
                    if pending and not cut and _refine_needed(faces[-1], found, refine):
                        for j, between in pending:
                            detected.append(j)
                            faces.append(detect(between))
                    pending = []
                    detected.append(i)
                    faces.append(found)
                elif refine is not None:
                    pending.append((i, frame))
                if progress is not None:
                    progress(i + 1, max(total, i + 1))
        except (av.FFmpegError, ValueError, IndexError, EOFError) as e:
            raise InputError(f"{path}: corrupt or truncated video at frame {len(times)} ({_short(e)})") from None
    finally:
        container.close()
    if not times:
        where = f" between {start or 0:g} s and {end:g} s" if start or end else ""
        raise InputError(f"{path}: no video frames{where}")
    return Track(frame_hw, rate, np.asarray(times), np.asarray(detected, np.int64), faces,
                 np.asarray(cuts, np.int64), int(every), time.perf_counter() - began, refine)


# --- pass 2: planning -------------------------------------------------------------------------

@dataclass
class _Tracklet:
    """One person's face across detection frames (linked by position and size)."""

    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    eyes: list[float] = field(default_factory=list)
    sizes: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    _suffix: np.ndarray | None = field(default=None, repr=False)

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    def remaining(self, frame: int) -> float:
        """Prominence still ahead: face size summed over the detections from ``frame`` on."""
        if self._suffix is None or len(self._suffix) != len(self.sizes) + 1:
            self._suffix = np.concatenate([np.cumsum(np.asarray(self.sizes)[::-1])[::-1], [0.0]])
        return float(self._suffix[np.searchsorted(np.asarray(self.frames), frame, side="left")])


def _link(detected: np.ndarray, faces: list[list[Face]], frame_hw, gap: int) -> list[_Tracklet]:
    """Greedy frame-to-frame linking: a face continues the nearest live tracklet of similar size."""
    tracks: list[_Tracklet] = []
    for i, found in zip(detected, faces):
        i = int(i)
        live = [t for t in tracks if i - t.last <= gap]
        pairs = []
        for a, t in enumerate(live):
            b0 = t.boxes[-1]
            c0, s0 = (b0[:2] + b0[2:]) / 2, t.sizes[-1]
            for b, f in enumerate(found):
                ratio = f.size / max(s0, 1e-6)
                dist = float(np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - c0)) / max(s0, f.size, 1.0)
                if 0.6 <= ratio <= 1.67 and dist < 0.75:
                    pairs.append((dist, a, b))
        used_t, used_f = set(), set()
        for _, a, b in sorted(pairs):
            if a in used_t or b in used_f:
                continue
            used_t.add(a)
            used_f.add(b)
            t, f = live[a], found[b]
            t.frames.append(i), t.boxes.append(_clip_box(f.box, frame_hw))
            t.eyes.append(_eye_y(f)), t.sizes.append(f.size), t.scores.append(f.score)
        for b, f in enumerate(found):
            if b not in used_f:
                tracks.append(_Tracklet([i], [_clip_box(f.box, frame_hw)], [_eye_y(f)], [f.size], [f.score]))
    return tracks


def _interpolate(t: _Tracklet, n: int, ext: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame geometry of a tracklet over its detections, extended ``ext`` frames beyond its
    ends (the frames before the next detection could have seen it); NaN elsewhere.

    Returns the linearly interpolated box (n, 4) and eye height (n,), for composition, and an
    envelope box (n, 4): the union of the detections around each frame (the one before and the
    one after, and both neighbours on a detection frame). A face between two detections is
    almost always inside their union, whatever it did in between; the face-inside constraint
    uses the envelope, so it holds on the frames the detector did not see as well.
    """
    boxes = np.full((n, 4), np.nan)
    envelope = np.full((n, 4), np.nan)
    eyes = np.full(n, np.nan)
    lo, hi = max(0, t.first - ext), min(n - 1, t.last + ext)
    frames = np.arange(lo, hi + 1)
    src = np.asarray(t.frames, np.int64)
    b = np.asarray(t.boxes)
    for k in range(4):
        boxes[lo:hi + 1, k] = np.interp(frames, src, b[:, k])
    eyes[lo:hi + 1] = np.interp(frames, src, np.asarray(t.eyes))
    last = len(src) - 1
    before = np.searchsorted(src, frames, side="right") - 1          # last detection <= frame
    after = np.searchsorted(src, frames, side="left")                 # first detection >= frame
    on = (before >= 0) & (src[np.clip(before, 0, last)] == frames)
    a = np.clip(before - on, 0, last)
    c = np.clip(after + on, 0, last)
    mid = (a + c) // 2
    stack = np.stack([b[a], b[mid], b[c]])
    envelope[lo:hi + 1] = np.concatenate([stack[..., :2].min(0), stack[..., 2:].max(0)], axis=1)
    return boxes, eyes, envelope


def _fits(box: np.ndarray, w: int, h: int, slack: float = 1.0) -> bool:
    return box[2] - box[0] <= w * slack and box[3] - box[1] <= h * slack


def _subject(detected: np.ndarray, faces: list[list[Face]], lo: int, hi: int, frame_hw: tuple[int, int],
             win: tuple[int, int], fps: float, every: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame subject of the shot ``[lo, hi)``: face-inside box, centring box, eye line, size.

    Rows are NaN where there is no subject. The main person is the most prominent tracklet
    (face size summed over its remaining life) among those present; it is kept until it
    disappears, or until another has become far more prominent and the current one has been
    followed for at least two seconds, so the camera does not hop between people. Tracklets
    seen once, and unsure ones (score < 0.95) when sure ones exist, are ignored. Other faces
    join the subject as a group when they are prominent (half the main face's size or more),
    last a second or more, and fit the window together with it most of the time.
    """
    n = hi - lo
    w, h = win
    sel = [(int(i) - lo, f) for i, f in zip(detected, faces) if lo <= i < hi]
    gap = max(round(1.0 * fps), 2 * every)  # a face missed for up to a second is the same person
    tracks = _link(np.array([i for i, _ in sel], np.int64), [f for _, f in sel], frame_hw, gap)
    # Candidates: seen at least twice (a one-off detection is noise), and sure faces if any.
    candidates = [t for t in tracks if len(t.frames) >= 2] or tracks
    candidates = [t for t in candidates if float(np.median(t.scores)) >= _SURE] or candidates
    keep_box = np.full((n, 4), np.nan)
    core_box = np.full((n, 4), np.nan)
    eye = np.full(n, np.nan)
    size = np.full(n, np.nan)
    if not candidates:
        return keep_box, core_box, eye, size

    # Who leads, frame by frame (decided on detection frames, held in between).
    main_of = np.full(n, -1)
    current, since = None, 0
    det_frames = sorted({f for t in candidates for f in t.frames})
    for k, f in enumerate(det_frames):
        alive = [c for c in range(len(candidates)) if candidates[c].first <= f <= candidates[c].last]
        if current is not None and f > candidates[current].last:
            current = None
        if alive and current is None:
            current, since = max(alive, key=lambda c: candidates[c].remaining(f)), f
        elif alive and f - since >= 2.0 * fps:
            best = max(alive, key=lambda c: candidates[c].remaining(f))
            if candidates[best].remaining(f) > 2.0 * candidates[current].remaining(f):
                current, since = best, f
        end = det_frames[k + 1] if k + 1 < len(det_frames) else n
        if current is not None:
            main_of[f:end] = current

    ext = max(every - 1, 1)
    per = [_interpolate(t, n, ext) for t in candidates]
    sizes = [np.sqrt(np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)) for b, _, _ in per]
    for c in sorted(set(main_of[main_of >= 0].tolist())):
        frames = np.nonzero(main_of == c)[0]
        mb = per[c][0]
        frames = frames[~np.isnan(mb[frames, 0])]
        if not len(frames):
            continue
        # Group members: prominent faces that share the window with the main one most of the time.
        members = []
        for o in range(len(candidates)):
            if o == c:
                continue
            ob = per[o][0]
            both = frames[~np.isnan(ob[frames, 0])]
            if not len(both):
                continue
            ratio = float(np.median(sizes[o][both] / np.maximum(sizes[c][both], 1e-6)))
            fit = np.mean([_fits(_union(np.stack([mb[i], ob[i]])), w, h, 0.9) for i in both])
            lasting = candidates[o].last - candidates[o].first >= fps  # a passer-by does not pull the camera
            if ratio >= _PROMINENT and fit >= 0.8 and lasting:
                members.append(o)
        members.sort(key=lambda o: -float(np.nanmedian(sizes[o])))
        for i in frames:
            group = [c]
            for o in members:
                if not np.isnan(per[o][0][i, 0]) and _fits(_union(np.stack([per[g][0][i] for g in group + [o]])), w, h):
                    group.append(o)
            core_box[i] = _union(np.stack([per[g][0][i] for g in group]))
            keep_box[i] = _union(np.stack([per[g][2][i] for g in group]))
            weights = np.array([sizes[g][i] for g in group])
            eye[i] = float(np.dot(weights, [per[g][1][i] for g in group]) / weights.sum())
            size[i] = sizes[c][i]
    return keep_box, core_box, eye, size


def _fill(values: np.ndarray, valid: np.ndarray, centre: float, hold: int) -> np.ndarray:
    """Fill a target where there is no subject: hold the last value; before the first one, take
    it if it comes within ``hold`` frames (the face was probably there, just not detected yet),
    else the centre."""
    out = values.copy()
    idx = np.nonzero(valid)[0]
    if not len(idx):
        return np.full(len(values), centre)
    first = idx[0]
    out[:first] = values[first] if first <= hold else centre
    last = values[first]
    for i in range(first, len(values)):
        if valid[i]:
            last = values[i]
        else:
            out[i] = last
    return out


def _running_median(values: np.ndarray, radius: int) -> np.ndarray:
    if radius < 1 or len(values) < 3:
        return values
    padded = np.pad(values, radius, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1)
    return np.median(windows, axis=1)


def _holds(target: np.ndarray, lo: np.ndarray, hi: np.ndarray, dead: float) -> np.ndarray:
    """Cut the target into maximal stretches where it varies by at most ``2 * dead`` and one
    position satisfies every frame's bounds; each stretch is held still at its mid-range
    (moved into the bounds). A camera operator's dead zone: no motion for small movements."""
    out = np.empty_like(target)
    start = 0
    tlo = thi = target[0]
    blo, bhi = lo[0], hi[0]

    def close(end: int) -> None:
        out[start:end] = min(max((tlo + thi) / 2, blo), bhi)

    for i in range(1, len(target)):
        v = target[i]
        ntlo, nthi, nblo, nbhi = min(tlo, v), max(thi, v), max(blo, lo[i]), min(bhi, hi[i])
        if nthi - ntlo > 2 * dead or nblo > nbhi:
            close(i)
            start, tlo, thi, blo, bhi = i, v, v, lo[i], hi[i]
        else:
            tlo, thi, blo, bhi = ntlo, nthi, nblo, nbhi
    close(len(target))
    return out


def _solve_penta(a0: np.ndarray, a1: np.ndarray, a2: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve a symmetric positive-definite pentadiagonal system (LDL^T, O(n)).

    ``a0`` is the diagonal, ``a1``/``a2`` the first/second super-diagonals.
    """
    n = len(a0)
    d = [0.0] * n
    l1 = [0.0] * n
    l2 = [0.0] * n
    a0, a1, a2, b = a0.tolist(), a1.tolist() + [0.0, 0.0], a2.tolist() + [0.0, 0.0], b.tolist()
    for i in range(n):
        di = a0[i]
        if i >= 1:
            di -= l1[i - 1] * l1[i - 1] * d[i - 1]
        if i >= 2:
            di -= l2[i - 2] * l2[i - 2] * d[i - 2]
        d[i] = di
        off = a1[i] - (l2[i - 1] * l1[i - 1] * d[i - 1] if i >= 1 else 0.0)
        l1[i] = off / di
        l2[i] = a2[i] / di
    y = [0.0] * n
    for i in range(n):
        v = b[i]
        if i >= 1:
            v -= l1[i - 1] * y[i - 1]
        if i >= 2:
            v -= l2[i - 2] * y[i - 2]
        y[i] = v
    x = [0.0] * n
    for i in range(n - 1, -1, -1):
        v = y[i] / d[i]
        if i + 1 < n:
            v -= l1[i] * x[i + 1]
        if i + 2 < n:
            v -= l2[i] * x[i + 2]
        x[i] = v
    return np.asarray(x)


def _smooth_path(target: np.ndarray, lo: np.ndarray, hi: np.ndarray, lam1: float, lam2: float) -> np.ndarray:
    """Minimise sum (p - target)^2 + lam1 sum (dp)^2 + lam2 sum (d2p)^2 subject to lo <= p <= hi.

    A primal active-set method: frames outside their bounds are pinned to the bound they
    crossed and the system is solved again (the path bends smoothly around the pins); pins
    whose constraint force points the wrong way (the optimum would leave the bound there) are
    released. Releasing matters: without it the path hugs a noisy bound over whole stretches
    and inherits the detector's jitter, instead of touching it only where it must.
    """
    n = len(target)
    if n < 3:
        return np.clip(target, lo, hi)
    d1 = np.full(n, 2.0)
    d1[[0, -1]] = 1.0
    d2 = np.full(n, 6.0)
    if n == 3:
        d2[:] = [1.0, 4.0, 1.0]
    else:
        d2[[0, -1]] = 1.0
        d2[[1, -2]] = 5.0
    o1 = np.full(n - 1, -4.0)
    o1[[0, -1]] = -2.0
    base0 = 1.0 + lam1 * d1 + lam2 * d2
    base1 = -lam1 + lam2 * o1
    base2 = np.full(n - 2, lam2)

    def gradient(p: np.ndarray) -> np.ndarray:  # (A p - target) with the unpinned matrix
        g = base0 * p - target
        g[:-1] += base1 * p[1:]
        g[1:] += base1 * p[:-1]
        g[:-2] += base2 * p[2:]
        g[2:] += base2 * p[:-2]
        return g

    big = 1e7 * (1.0 + lam1 + lam2)
    low = np.zeros(n, bool)
    high = np.zeros(n, bool)
    tol = 1e-6 * (1.0 + lam2)
    p = target
    for _ in range(200):
        pinned = low | high
        pin_to = np.where(low, lo, hi)
        p = _solve_penta(base0 + big * pinned, base1, base2, target + big * pinned * pin_to)
        g = gradient(p)
        release = (low & (g < -tol)) | (high & (g > tol))
        below = ~pinned & (p < lo - 0.05)
        above = ~pinned & (p > hi + 0.05)
        if not (release.any() or below.any() or above.any()):
            break
        low = (low & ~release) | below
        high = (high & ~release) | above
    return np.clip(p, lo, hi)


def motion_stats(windows: np.ndarray) -> dict[str, float]:
    """Camera motion of a window path: max/mean per-frame movement (px/frame) and max/mean
    acceleration (px/frame^2) of the window's origin (Euclidean over x and y)."""
    p = np.asarray(windows, np.float64)[:, :2]
    if len(p) < 3:
        return dict(max_speed=0.0, mean_speed=0.0, max_accel=0.0, mean_accel=0.0)
    v = np.linalg.norm(np.diff(p, axis=0), axis=1)
    a = np.linalg.norm(np.diff(p, 2, axis=0), axis=1)
    return dict(max_speed=float(v.max()), mean_speed=float(v.mean()),
                max_accel=float(a.max()), mean_accel=float(a.mean()))


def plan(
    track: Track,
    frame_hw: tuple[int, int] | None,
    aspect: float,
    fps: float | None = None,
    *,
    smooth: float = 0.5,
    dead_zone: float = 0.04,
    margin: float = 0.1,
    subpixel: bool = False,
) -> np.ndarray:
    """One window per frame, ``[n_frames, 4]`` of ``(x, y, w, h)``, a smooth virtual camera.

    ``frame_hw`` is the size of the frames the windows will cut (None: the track's own size;
    a downscaled size maps the detections accordingly). ``fps`` defaults to the track's.
    The window size is fixed: the largest of ``aspect`` that fits. Per shot, the centre follows
    the subject (see :func:`_subject`): horizontally centred on it, the eye line on the upper
    third. ``dead_zone`` (fraction of the window side) is how far the subject may drift before
    the camera moves; ``smooth`` (seconds) is the time scale of camera moves; ``margin``
    (fraction of the face size) is kept around faces where the window allows (where it is tight,
    a quarter of the spare room on each side). The constraint is the union of the detections
    around each frame, so subject faces stay inside on the frames between detections too (to
    within the detector's own wobble where the face nearly fills the window). Scene cuts start
    a new shot: the camera cuts with it. Frames without a subject hold the last position
    (before the first face of a shot: the centre, unless the face arrives within a second).
    ``subpixel=True`` returns float positions for :func:`crop_window`; otherwise int64.
    """
    return _plan(track, frame_hw, aspect, fps, smooth, dead_zone, margin, subpixel)[0]


def _plan(track: Track, frame_hw, aspect: float, fps, smooth: float, dead_zone: float, margin: float,
          subpixel: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`plan`, plus a per-frame mask of the frames that had a subject."""
    fh, fw = (int(v) for v in (frame_hw or track.frame_hw))
    fps = float(fps or track.fps or 25.0)
    w, h = window_size((fh, fw), aspect)
    n = track.n_frames
    out = np.zeros((n, 4), np.float64)
    subject = np.zeros(n, bool)
    out[:, 2], out[:, 3] = w, h
    sx, sy = fw / track.frame_hw[1], fh / track.frame_hw[0]
    scale = np.float32([sx, sy])
    faces = [[Face(f.box * np.tile(scale, 2), f.score, f.landmarks * scale) for f in found] for found in track.faces]

    tau = max(smooth * fps, 1.0)
    lam2, lam1 = tau ** 4 / 16.0, tau ** 2 / 4.0
    hold = round(fps)
    cuts = sorted(set(int(c) for c in track.cuts) | {0})
    bounds = cuts[1:] + [n]
    for lo_f, hi_f in zip(cuts, bounds):
        if hi_f <= lo_f:
            continue
        keep, core, eye, size = _subject(track.detected, faces, lo_f, hi_f, (fh, fw), (w, h), fps, track.every)
        valid = ~np.isnan(keep[:, 0])
        subject[lo_f:hi_f] = valid
        m = margin * np.nan_to_num(size, nan=0.0)
        for axis, (win, frame) in enumerate(((w, fw), (h, fh))):
            top = frame - win
            if top <= 0:
                continue  # the window spans this axis: nothing to plan
            lo = np.zeros(hi_f - lo_f)
            hi = np.full(hi_f - lo_f, float(top))
            target = np.full(hi_f - lo_f, np.nan)
            if valid.any():
                # The envelope where it fits the window, else the interpolated box itself.
                a1, a2 = keep[valid, axis], keep[valid, axis + 2]
                tight = a2 - a1 > win
                a1 = np.where(tight, core[valid, axis], a1)
                a2 = np.where(tight, core[valid, axis + 2], a2)
                lo[valid], hi[valid] = _axis_range(a1, a2, win, frame, m[valid])
                if axis == 0:
                    want = (core[valid, 0] + core[valid, 2]) / 2 - win / 2
                else:
                    want = eye[valid] - _EYE_LINE * win
                target[valid] = np.clip(want, lo[valid], hi[valid])
            target = _fill(target, valid, top / 2, hold)
            target = _running_median(target, max(1, round(0.15 * fps)))
            target = _holds(target, lo, hi, dead_zone * win)
            path = _smooth_path(target, lo, hi, lam1, lam2)
            out[lo_f:hi_f, axis] = path
    if not subpixel:
        out[:, 0] = np.clip(np.round(out[:, 0]), 0, fw - w)
        out[:, 1] = np.clip(np.round(out[:, 1]), 0, fh - h)
        return out.astype(np.int64), subject
    return out, subject


@dataclass
class PlanInfo:
    """What :func:`plan_video` did: sizes, timing and the camera's motion."""

    frame_hw: tuple[int, int]
    window: tuple[int, int]          # w, h
    fps: float
    n_frames: int
    subject_frames: int              # frames with a subject face tracked
    analysis_seconds: float
    plan_seconds: float
    motion: dict[str, float]
    track: Track


def plan_video(
    path: str | Path,
    aspect: float,
    detector,
    *,
    every: int = 3,
    max_side: int = 640,
    frame_hw: tuple[int, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    start: float | None = None,
    end: float | None = None,
    **options,
) -> tuple[np.ndarray, PlanInfo]:
    """:func:`analyze` then :func:`plan`: windows for every frame of ``path`` and a summary.

    ``options`` go to :func:`plan` (``smooth``, ``dead_zone``, ``margin``, ``subpixel``).
    """
    track = analyze(path, detector, every, max_side, progress, start=start, end=end)
    began = time.perf_counter()
    settings = dict(smooth=0.5, dead_zone=0.04, margin=0.1, subpixel=False)
    unknown = set(options) - set(settings)
    if unknown:
        raise TypeError(f"plan_video() got unexpected options: {', '.join(sorted(unknown))}")
    settings.update(options)
    windows, subject = _plan(track, frame_hw, aspect, track.fps, **settings)
    planned = time.perf_counter() - began
    hw = tuple(int(v) for v in (frame_hw or track.frame_hw))
    return windows, PlanInfo(hw, (int(windows[0, 2]), int(windows[0, 3])), track.fps, track.n_frames,
                             int(subject.sum()), track.seconds, planned, motion_stats(windows), track)
