"""Reading videos: open, probe, trim, decode a span, and the frame geometry every pass shares
(upright, fitted, even). Used by the stylizer and by auto-crop's analysis pass alike, so frame
``i`` of a span is the same frame for both."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, exhausted
from ..images import check_input


VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".3gp")


def open_video(path: Path):
    """A PyAV container with a real video stream, or a one-line InputError."""
    import av

    path = check_input(path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as e:
        raise exhausted(e) or InputError(f"{path}: not a readable video ({short_error(e)})") from None
    if video_stream(container) is None:
        container.close()
        kind = "an audio-only file" if container.streams.audio else "a file without a video stream"
        raise InputError(f"{path}: {kind}; nothing to stylize")
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):  # a JPEG, PNG, ...
        container.close()
        raise InputError(f"{path}: a still image, not a video: use `dctoon image`")
    return container


def video_stream(container):
    """The first real video stream: cover art in audio files is a one-picture 'video' stream."""
    import av

    art = av.stream.Disposition.attached_pic | av.stream.Disposition.still_image
    return next((s for s in container.streams.video if not (s.disposition & art)), None)


def short_error(e: Exception) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return str(text).splitlines()[0] if text else type(e).__name__


def probe(path: Path) -> dict:
    """Basic facts about a video: width, height (as displayed), fps, frames (estimate), duration, audio."""
    c = open_video(path)
    try:
        v = video_stream(c)
        rate = v.average_rate or v.guessed_rate or Fraction(25)
        duration = float(v.duration * v.time_base) if v.duration else (c.duration or 0) / 1e6
        frames = v.frames or round(duration * float(rate))
        a = c.streams.audio[0].codec_context.name if c.streams.audio else None
        return dict(width=v.codec_context.width, height=v.codec_context.height, fps=float(rate),
                    frames=frames, duration=duration, audio=a)
    finally:
        c.close()


def check_span(start: float | None, end: float | None, duration: float | None = None) -> None:
    """A trim the user asked for: finite, in order, and (when the length is known) starting inside."""
    for name, v in (("start", start), ("end", end)):
        if v is not None and not math.isfinite(v):
            raise InputError(f"{name} must be a number of seconds, got {v}")
    if start is not None and start < 0:
        raise InputError(f"start must be 0 or more seconds, got {start:g}")
    if end is not None and end <= (start or 0):
        raise InputError(f"end ({end:g} s) must be after start ({start or 0:g} s)")
    if duration and start and start >= duration:
        raise InputError(f"start ({start:g} s) is past the end of the video ({duration:.1f} s)")


def open_span(path: Path, start: float | None, end: float | None):
    """Open a video for decoding the span [start, end) seconds: (container, video stream, frame
    rate, estimated frame count), already sought to just before ``start``."""
    import av

    container = open_video(path)
    vs = video_stream(container)
    vs.thread_type = "AUTO"
    tb = vs.time_base
    rate = vs.average_rate or vs.guessed_rate or Fraction(25)
    duration = float(vs.duration * tb) if vs.duration else (container.duration or 0) / 1e6
    try:
        check_span(start, end, duration)
    except InputError:
        container.close()
        raise
    span_end = min(end, duration) if end is not None and duration else (end or duration)
    total = max(1, round((span_end - (start or 0)) * float(rate))) if span_end else (vs.frames or 0)
    if start:
        try:
            container.seek(int(start / tb), stream=vs, backward=True)
        except av.FFmpegError:
            pass  # not seekable: decode from the beginning and drop frames
    return container, vs, rate, total


def span_frames(container, vs, start: float | None, end: float | None):
    """The decoded frames of the span [start, end) with their time in seconds (frame ``i`` here is
    frame ``i`` for every pass over the same span: auto-crop's analysis and the stylizer)."""
    tb = vs.time_base
    for frame in container.decode(vs):
        if frame.pts is None:
            continue
        t = float(frame.pts * tb)
        if start is not None and t < start - 1e-6:
            continue
        if end is not None and t >= end - 1e-6:
            return
        yield frame, t


def upright(bgr: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display-matrix rotation (degrees counter-clockwise, as FFmpeg reports it)."""
    k = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(bgr, k)) if k else bgr


def fit(bgr: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = bgr.shape[:2]
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        bgr = cv2.resize(bgr, (max(2, round(w * s)), max(2, round(h * s))), interpolation=cv2.INTER_AREA)
    return bgr


def even(bgr: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: an odd one is rounded up by replicating the last row/column."""
    h, w = bgr.shape[:2]
    if h % 2 or w % 2:
        bgr = cv2.copyMakeBorder(bgr, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
    return bgr


def measured_duration(path: Path, until: float) -> float:
    """The video's length from its packets (nothing is decoded), read only up to ``until`` seconds:
    for a stream whose container does not say (a live-written Matroska), so a cap cannot be escaped."""
    container = open_video(path)
    try:
        vs = video_stream(container)
        last = 0.0
        for p in container.demux(vs):
            if p.pts is not None:
                last = max(last, float((p.pts + (p.duration or 0)) * vs.time_base))
                if last > until:
                    break
        return last
    finally:
        container.close()


def keyframes(path: Path) -> list[float]:
    """The input times (seconds) of the video's keyframes, from the packets alone (nothing is
    decoded): where it can be cut into pieces that decode on their own."""
    container = open_video(path)
    try:
        vs = video_stream(container)
        return sorted(float(p.pts * vs.time_base) for p in container.demux(vs)
                      if p.is_keyframe and p.pts is not None)
    finally:
        container.close()
