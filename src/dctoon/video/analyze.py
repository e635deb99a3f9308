"""Auto-crop's first pass over a video: decode the span once (rotation applied, frames downscaled
for detection only), run the face detector every few frames, on scene cuts and wherever a face
moved fast, then hand the :class:`~dctoon.camera.Sightings` to :func:`dctoon.camera.plan`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..camera import Sightings, motion_stats, plan_path, refine_needed
from ..errors import InputError, exhausted
from ..face import Face
from ..track import SceneCuts
from .reader import open_span, short_error, span_frames, upright

__all__ = ["PlanInfo", "analyze", "plan_video"]

_LUMA_FIRST = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p",
               "yuv411p", "yuva420p", "nv12", "nv21", "gray"}


def _thumbnail(frame) -> np.ndarray:
    """The scene-cut thumbnail of a decoded frame, from the luma plane where there is one (swscale
    to a tiny size costs more than decoding)."""
    if frame.format.name in _LUMA_FIRST:
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, :frame.width]
        return SceneCuts.thumbnail(luma)
    w, h = SceneCuts.SIZE
    return frame.to_ndarray(width=w, height=h, format="gray").astype(np.float32)


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
) -> Sightings:
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
        shots = SceneCuts(cut_threshold)
        pending: list = []  # (index, frame) since the last scheduled detection, for refinement

        def detect(frame) -> list[Face]:
            rgb = frame.to_ndarray(width=small[0], height=small[1], format="rgb24", interpolation="AREA")
            rgb = np.ascontiguousarray(upright(rgb, frame.rotation))
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
                cut = shots(_thumbnail(frame)) or i == 0
                if cut:
                    cuts.append(i)
                times.append(t)
                if i % every == 0 or cut:
                    found = detect(frame)
                    if pending and not cut and refine_needed(faces[-1], found, refine):
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
            raise exhausted(e) or InputError(f"{path}: corrupt or truncated video at frame {len(times)} "
                                             f"({short_error(e)})") from None
    finally:
        container.close()
    if not times:
        where = f" between {start or 0:g} s and {end:g} s" if start or end else ""
        raise InputError(f"{path}: no video frames{where}")
    return Sightings(frame_hw, rate, np.asarray(times), np.asarray(detected, np.int64), faces,
                 np.asarray(cuts, np.int64), int(every), time.perf_counter() - began, refine)


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
    track: Sightings


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
    windows, subject = plan_path(track, frame_hw, aspect, track.fps, **settings)
    planned = time.perf_counter() - began
    hw = tuple(int(v) for v in (frame_hw or track.frame_hw))
    return windows, PlanInfo(hw, (int(windows[0, 2]), int(windows[0, 3])), track.fps, track.n_frames,
                             int(subject.sum()), track.seconds, planned, motion_stats(windows), track)
