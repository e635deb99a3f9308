"""Video: a streaming decode -> track -> stylize -> encode pipeline on PyAV.

Three stages run concurrently: a decoder thread, the stylizer (the calling thread; onnxruntime
releases the GIL while it computes) and an encoder/muxer thread, joined by small bounded
queues (:mod:`.stages`), so memory does not grow with the video's length.

What comes out (:mod:`.writer`):

* H.264 (yuv420p, ``crf`` quality) in MP4/MOV/M4V, or Matroska for ``.mkv``.
* Every frame keeps its input timestamp (variable frame rate too), shifted so the output starts
  at 0; the duration equals the input's (or the trimmed span's) within one frame.
* Rotation metadata (display matrix) is applied: frames are stylized and written upright, with
  no rotation flag left in the output, so every player shows them the same way.
* Odd sizes: yuv420p needs even sides, so an odd width or height is rounded *up* to the next
  even number by replicating the last column/row (375x500 -> 376x500); even sizes are kept.
* The first audio stream is stream-copied when the output container can hold its codec (AAC
  into MP4), else re-encoded to AAC; with ``start``/``end`` it is cut to the same span (to the
  nearest audio packet, about 23 ms for AAC).
* The file is written under a hidden temporary name beside the target and renamed at the end:
  an interruption leaves nothing under the final name, unless ``keep_partial`` asks for the
  frames done so far, finalised as a playable file.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError, Interrupted, check_range
from .animation import ANIMATION_FORMATS, animate
from .reader import check_span, keyframes, open_span, probe
from .stages import END, Decoder, Encoder
from .temporal import FrameStylizer
from .writer import OUTPUT_FORMATS, PRESETS, VideoWriter, output_format, remove_stale_partials

__all__ = ["ANIMATION_FORMATS", "OUTPUT_FORMATS", "FrameStylizer", "VideoResult", "check_encoding", "check_span",
           "join_pieces",
           "keyframes", "probe", "remove_stale_partials", "stylize_video"]


@dataclass
class VideoResult:
    """What :func:`stylize_video` wrote."""

    path: Path
    frames: int
    duration: float            # seconds, from the first frame's start to the last frame's end
    size: tuple[int, int]      # output width, height
    audio: str | None          # "copied", "re-encoded" or None
    partial: bool = False      # an interrupted run kept with keep_partial
    origin: float = 0.0        # the input time of the first frame written (seconds)

    def describe(self) -> str:
        w, h = self.size
        audio = {None: "no audio", "copied": "audio copied", "re-encoded": "audio re-encoded"}[self.audio]
        what = "partial video (interrupted)" if self.partial else "video"
        return f"wrote {what} {self.path}: {self.frames} frames, {self.duration:.2f} s, {w}x{h}, {audio}"


def stylize_video(
    cartoonizer,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    start: float | None = None,
    end: float | None = None,
    crf: int = 20,
    preset: str = "veryfast",
    keep_partial: bool = False,
    progress: Callable[[int, int], None] | None = None,
    bar: bool | None = None,
    temporal: bool = True,
    detect_every: int = 3,
    blend: float = 0.8,
    warmup: float = 0.0,
    audio: bool = True,
    side_by_side: bool = False,
) -> VideoResult:
    """Stylize the video ``src`` into ``dst`` (see the module docstring for what is kept).

    ``start``/``end`` trim, in seconds of the input. ``progress(done, total)`` is called after
    every frame (``total`` is an estimate from the container; raising from it, e.g.
    ``KeyboardInterrupt``, interrupts cleanly). ``bar`` shows a tqdm bar on stderr (default:
    when stderr is a terminal; elsewhere a line every few seconds, :mod:`dctoon.progress`; ``False``:
    none). ``temporal=False`` stylizes every frame independently. Ctrl-C
    raises :class:`dctoon.errors.Interrupted` (a ``KeyboardInterrupt``) carrying what was kept.
    ``warmup`` seconds before ``start`` are stylized but not written, so tracking and blending are
    settled at the first frame (a piece of a longer video, :func:`join_pieces`); ``audio=False``
    writes the picture only; ``side_by_side`` writes input | output. A ``.gif`` or ``.webp`` ``dst``
    is a short animation (:mod:`.animation`: size-capped, no audio).
    """
    from ..progress import progress_bar

    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() in ANIMATION_FORMATS:
        return animate(lambda mp4, until: stylize_video(
            cartoonizer, src, mp4, start=start, end=until, crf=min(crf, 16), preset=preset, progress=progress,
            bar=bar, temporal=temporal, detect_every=detect_every, blend=blend, audio=False,
            side_by_side=side_by_side), src, dst, start, end)
    _check_options(cartoonizer, src, dst, start, end, crf, preset, detect_every, blend)
    if not (warmup >= 0 and math.isfinite(warmup)):
        raise InputError(f"warmup must be 0 or more seconds, got {warmup}")
    lead = max(0.0, start - warmup) if start and warmup else start
    # 1. the input span (with the warm-up), and auto-crop's camera path (a first pass over the same span)
    container, stream, rate, total = open_span(src, lead, end)
    stop = threading.Event()
    try:
        process = FrameStylizer(cartoonizer, temporal=temporal, detect_every=detect_every, blend=blend)
        windows = _plan_crop(cartoonizer, src, lead, end, bar)
        # 2. the decoder thread; the first frame after the warm-up fixes the output's size and time origin
        decoder = Decoder(container, stream, src, lead, end, windows, cartoonizer.settings.max_side, stop)
        decoder.start()
        first = _settle(decoder, process, start, end)
        # 3. the writer (with the audio) and the encoder thread feeding it
        w, h = first[0].shape[1::-1]
        writer = VideoWriter(src, dst, size=(2 * w if side_by_side else w, h), rate=rate, time_base=stream.time_base,
                             origin=(first[1], first[3]), crf=crf, preset=preset, start=start, end=end, audio=audio)
    except BaseException:
        stop.set()
        container.close()
        raise
    encoder = Encoder(writer, stop)
    encoder.start()
    # 4. the loop: stylize each frame as it is decoded
    interrupted = error = None
    done, item = 0, first
    with progress_bar(bar, total=total or None, desc=src.name[:30]) as pbar:
        try:
            while item is not END:
                bgr, pts, dur, t = item
                out = process(bgr, t)
                encoder.put((np.hstack([bgr, out]) if side_by_side else out, pts, dur, t))
                done += 1
                pbar.update(1)
                if progress is not None:
                    progress(done, max(total, done))
                item = decoder.get()
            decoder.check()
        except KeyboardInterrupt as e:
            interrupted = e
        except BaseException as e:  # noqa: BLE001 - re-raised below after cleanup
            error = e
    # 5. drain and finish (or throw away), then release the input
    try:
        result = _finish(writer, encoder, error, interrupted, keep_partial)
    finally:
        stop.set()
        decoder.join(timeout=5)
        container.close()
    if interrupted is not None:
        raise Interrupted(result) from interrupted
    return result


def _settle(decoder: Decoder, process: FrameStylizer, start: float | None, end: float | None):
    """The first frame to write: warm-up frames before ``start`` go through ``process`` only."""
    item = decoder.first()
    while item is not END and start and item[3] < start - 1e-6:
        process(item[0], item[3])
        item = decoder.get()
    if item is END:
        decoder.check()
        raise InputError(f"{decoder.src}: no video frames between {start:g} s and {end or 0:g} s")
    return item


def _finish(writer: VideoWriter, encoder: Encoder, error, interrupted, keep_partial: bool) -> VideoResult | None:
    """The output renamed into place (a partial one when interrupted with ``keep_partial``), or
    deleted and the error raised; None when an interruption leaves nothing to keep."""
    if error is None and (interrupted is None or keep_partial):
        try:
            encoder.drain()
        except KeyboardInterrupt:  # a second Ctrl-C while finalising: give up on the file
            writer.abort()
            return None
        except BaseException:
            writer.abort()
            raise
        if writer.written:
            path = writer.finish(cut_audio=interrupted is not None)
            return VideoResult(path, writer.written, writer.last_end, writer.size,
                               writer.audio, partial=interrupted is not None, origin=writer.origin_t)
    else:
        encoder.stop.set()
        encoder.join(timeout=10)
    writer.abort()
    if error is not None:
        raise writer.user_error(error) from None
    if interrupted is None:
        raise RuntimeError("video encoding failed")
    return None


def join_pieces(src: str | os.PathLike, pieces: list[VideoResult], dst: str | os.PathLike, *,
                start: float | None = None, end: float | None = None) -> VideoResult:
    """One video from stylized pieces of ``src`` (written in order with ``audio=False``, each
    starting at a keyframe it was cut at), by stream copy: no frame is encoded twice. The source's
    audio of [start, end) is muxed once, as :func:`stylize_video` would have."""
    import av

    src, dst = Path(src), Path(dst)
    output_format(dst)
    origin = pieces[0].origin
    with av.open(str(pieces[0].path)) as first:
        vs = first.streams.video[0]
        tb = vs.time_base
        writer = VideoWriter(src, dst, size=(vs.codec_context.width, vs.codec_context.height),
                             rate=vs.average_rate, time_base=tb, origin=(0, origin), crf=0, preset="",
                             start=start, end=end, template=vs)
    try:
        last_dts = None
        for piece in pieces:
            with av.open(str(piece.path)) as c:
                s = c.streams.video[0]
                if s.time_base != tb:
                    raise InputError(f"{piece.path}: time base {s.time_base} differs from the first piece's {tb}")
                shift = round((piece.origin - origin) / tb)
                for p in c.demux(s):
                    if p.pts is None:
                        continue
                    p.pts += shift
                    p.dts = p.pts if p.dts is None else p.dts + shift
                    if last_dts is not None and p.dts <= last_dts:  # a decoding delay that differs at a seam
                        p.dts = min(last_dts + 1, p.pts)
                    last_dts = p.dts
                    writer.copy(p, float(p.dts * tb), float((p.pts + (p.duration or 0)) * tb))
    except BaseException:
        writer.abort()
        raise
    path = writer.finish(cut_audio=False)
    return VideoResult(path, writer.written, writer.last_end, writer.size, writer.audio, origin=origin)


def check_encoding(crf: int, preset: str, detect_every: int = 1, blend: float = 0.0) -> None:
    """The video options that need no input: checked by the CLI before any model loads."""
    check_range("--crf", crf, 0, 51)
    if preset not in PRESETS:
        raise InputError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    check_range("--detect-every", detect_every, 1)
    check_range("--blend", blend, 0.0, 0.99)


def _check_options(cartoonizer, src: Path, dst: Path, start, end, crf: int, preset: str, detect_every: int,
                   blend: float) -> None:
    output_format(dst)
    if dst.exists() and dst.resolve() == src.resolve():
        raise InputError(f"{dst}: refusing to overwrite the input")
    check_encoding(crf, preset, detect_every, blend)
    check_span(start, end)
    if cartoonizer.backdrop is not None and cartoonizer.backdrop.kind == "transparent":
        raise InputError("a transparent background needs an image output (PNG); for video choose blur, "
                         "a colour or an image")


def _plan_crop(cartoonizer, src: Path, start, end, bar: bool | None):
    """Auto-crop's first pass: the whole span analysed for faces, a smooth camera path planned."""
    if cartoonizer.aspect is None:
        return None
    from ..progress import progress_bar
    from .analyze import plan_video

    with progress_bar(bar, desc="framing") as pbar:
        def report(done: int, total: int) -> None:
            pbar.total = max(total, done)
            pbar.update(done - pbar.n)

        windows, _ = plan_video(src, cartoonizer.aspect, cartoonizer.detector, start=start, end=end,
                                progress=report)
    return windows
