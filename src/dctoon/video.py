"""Video: a streaming decode -> track -> stylize -> encode pipeline on PyAV.

Three stages run concurrently: a decoder thread, the stylizer (the calling thread; onnxruntime
releases the GIL while it computes) and an encoder/muxer thread, joined by small bounded
queues, so memory does not grow with the video's length.

What comes out:

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

import errno
import math
import os
import queue
import sys
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .errors import InputError
from .crop import crop_window
from .images import check_input, publish, temp_beside, write_error
from .matte import blend as matte_blend

__all__ = ["VideoResult", "FrameStylizer", "stylize_video", "probe"]

OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# Audio codecs each output container takes as-is; anything else is re-encoded to AAC.
_COPYABLE = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    "mov": {"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le"},
    "matroska": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac", "vorbis", "pcm_s16le", "pcm_s24le"},
}
_QUEUE = 4  # frames in flight between stages (each way)
_END = object()


@dataclass
class VideoResult:
    """What :func:`stylize_video` wrote."""

    path: Path
    frames: int
    duration: float            # seconds, from the first frame's start to the last frame's end
    size: tuple[int, int]      # output width, height
    audio: str | None          # "copied", "re-encoded" or None
    partial: bool = False      # an interrupted run kept with keep_partial

    def describe(self) -> str:
        w, h = self.size
        audio = {None: "no audio", "copied": "audio copied", "re-encoded": "audio re-encoded"}[self.audio]
        what = "partial video (interrupted)" if self.partial else "video"
        return f"wrote {what} {self.path}: {self.frames} frames, {self.duration:.2f} s, {w}x{h}, {audio}"


def _open(path: Path):
    import av

    path = check_input(path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as e:
        raise InputError(f"{path}: not a readable video ({_short(e)})") from None
    if _video_stream(container) is None:
        container.close()
        kind = "an audio-only file" if container.streams.audio else "a file without a video stream"
        raise InputError(f"{path}: {kind}; nothing to stylize")
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):  # a JPEG, PNG, ...
        container.close()
        raise InputError(f"{path}: a still image, not a video: use `dctoon image`")
    return container


def _lock(fd: int, wait: bool = True) -> bool:
    """An exclusive advisory lock on an open file (POSIX; elsewhere always granted)."""
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return True
    except OSError:
        return False


def remove_stale_partials(folder: Path) -> list[Path]:
    """Delete the hidden ``.NAME.*.partial.EXT`` files that killed runs left in ``folder`` (a running
    one holds a lock on its own file, so it is left alone)."""
    removed = []
    for p in Path(folder).glob(".*.partial.*"):
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            if _lock(fd, wait=False):
                p.unlink(missing_ok=True)
                removed.append(p)
        finally:
            os.close(fd)
    return removed


def _video_stream(container):
    """The first real video stream: cover art in audio files is a one-picture 'video' stream."""
    import av

    art = av.stream.Disposition.attached_pic | av.stream.Disposition.still_image
    return next((s for s in container.streams.video if not (s.disposition & art)), None)


def _short(e: Exception) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return str(text).splitlines()[0] if text else type(e).__name__


def probe(path: Path) -> dict:
    """Basic facts about a video: width, height (as displayed), fps, frames (estimate), duration, audio."""
    c = _open(path)
    try:
        v = _video_stream(c)
        rate = v.average_rate or v.guessed_rate or Fraction(25)
        duration = float(v.duration * v.time_base) if v.duration else (c.duration or 0) / 1e6
        frames = v.frames or round(duration * float(rate))
        a = c.streams.audio[0].codec_context.name if c.streams.audio else None
        return dict(width=v.codec_context.width, height=v.codec_context.height, fps=float(rate),
                    frames=frames, duration=duration, audio=a)
    finally:
        c.close()


class FrameStylizer:
    """Per-video state around :meth:`Cartoonizer.stylize_bgr`: face tracks and temporal blending.

    ``temporal=False`` is the per-frame path (detection on every frame, no smoothing, fading or
    blending): the same models and code otherwise, used as the baseline by ``bench/temporal.py``.
    """

    def __init__(self, cartoonizer, temporal: bool = True, detect_every: int = 3, blend: float = 0.8):
        from .track import FaceTracker, TemporalBlender

        self.cartoonizer = cartoonizer
        self.temporal = temporal
        self.tracker = FaceTracker(cartoonizer.detector.detect, detect_every) if cartoonizer.heads and temporal \
            else None
        self.blender = TemporalBlender(blend) if temporal and blend > 0 else None
        self.smoother = None
        if cartoonizer.segmented and temporal:
            from .segment import MaskSmoother

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

    container = _open(path)
    vs = _video_stream(container)
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


def _upright(bgr: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display-matrix rotation (degrees counter-clockwise, as FFmpeg reports it)."""
    k = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(bgr, k)) if k else bgr


def _fit(bgr: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = bgr.shape[:2]
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        bgr = cv2.resize(bgr, (max(2, round(w * s)), max(2, round(h * s))), interpolation=cv2.INTER_AREA)
    return bgr


def _even(bgr: np.ndarray) -> np.ndarray:
    h, w = bgr.shape[:2]
    if h % 2 or w % 2:
        bgr = cv2.copyMakeBorder(bgr, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
    return bgr


def _plan_crop(cartoonizer, src: Path, start, end, show: bool) -> np.ndarray | None:
    """Auto-crop's first pass: the whole span analysed for faces, a smooth camera path planned."""
    if cartoonizer.aspect is None:
        return None
    from tqdm import tqdm

    from .crop import plan_video

    with tqdm(unit="frame", disable=not show, file=sys.stderr, desc="framing", dynamic_ncols=True) as pbar:
        def report(done: int, total: int) -> None:
            pbar.total = max(total, done)
            pbar.update(done - pbar.n)

        windows, _ = plan_video(src, cartoonizer.aspect, cartoonizer.detector, start=start, end=end,
                                progress=report)
    return windows


class _Worker(threading.Thread):
    """A daemon thread that records its exception for the main thread to re-raise."""

    def __init__(self, target, name):
        super().__init__(target=self._run, name=name, daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None

    def _run(self):
        try:
            self._target_fn()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self.error = e


def _put(q: queue.Queue, item, stop: threading.Event, alive=lambda: True) -> bool:
    """Put unless ``stop`` is set or the consumer died (``alive()`` false); False if not put."""
    while not stop.is_set() and alive():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event, worker: _Worker):
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if worker.error is not None:
                raise worker.error
            if stop.is_set() or not worker.is_alive():
                return _END


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
) -> VideoResult:
    """Stylize the video ``src`` into ``dst`` (see the module docstring for what is kept).

    ``start``/``end`` trim, in seconds of the input. ``progress(done, total)`` is called after
    every frame (``total`` is an estimate from the container; raising from it, e.g.
    ``KeyboardInterrupt``, interrupts cleanly). ``bar`` shows a tqdm bar on stderr (default:
    when stderr is a terminal). ``temporal=False`` stylizes every frame independently.
    """
    import av

    src, dst = Path(src), Path(dst)
    fmt = OUTPUT_FORMATS.get(dst.suffix.lower())
    if fmt is None:
        raise InputError(f"{dst}: unknown video format '{dst.suffix}' (use one of {', '.join(OUTPUT_FORMATS)})")
    if dst.exists() and dst.resolve() == src.resolve():
        raise InputError(f"{dst}: refusing to overwrite the input")
    if not 0 <= crf <= 51:
        raise InputError(f"crf must be between 0 and 51, got {crf}")
    if detect_every < 1:
        raise InputError(f"detect_every must be >= 1, got {detect_every}")
    if not 0 <= blend < 1:
        raise InputError(f"blend must be in [0, 1), got {blend}")
    check_span(start, end)
    if cartoonizer.backdrop is not None and cartoonizer.backdrop.kind == "transparent":
        raise InputError("a transparent background needs an image output (PNG); for video choose blur, "
                         "a colour or an image")

    vin, vs, rate, total = open_span(src, start, end)
    tb_v = vs.time_base

    windows = _plan_crop(cartoonizer, src, start, end, sys.stderr.isatty() if bar is None else bar)

    # --- decoder thread: upright, cropped, resized, even-sized BGR frames with their timestamps
    stop = threading.Event()
    frames_q: queue.Queue = queue.Queue(_QUEUE)
    max_side = cartoonizer.settings.max_side
    info: dict = {}

    def decode():
        count = 0
        try:
            for frame, t in span_frames(vin, vs, start, end):
                if stop.is_set():
                    return
                bgr = _upright(frame.to_ndarray(format="bgr24"), frame.rotation)
                if windows is not None:  # the virtual camera's window for this frame, at full resolution
                    bgr = np.ascontiguousarray(crop_window(bgr, windows[min(count, len(windows) - 1)]))
                bgr = _even(_fit(bgr, max_side))
                dur = frame.duration if frame.duration else None
                count += 1
                if not _put(frames_q, (bgr, frame.pts, dur, t), stop):
                    return
        except av.FFmpegError as e:
            info["error"] = f"{src}: corrupt or truncated video at frame {count} ({_short(e)})"
        except (ValueError, IndexError, EOFError) as e:
            info["error"] = f"{src}: corrupt or truncated video at frame {count} ({_short(e)})"
        finally:
            info["decoded"] = count
            _put(frames_q, _END, stop)

    decoder = _Worker(decode, "dctoon-decode")
    decoder.start()

    # The first frame fixes the output geometry and the time origin.
    try:
        first = _get(frames_q, stop, decoder)
    except BaseException:
        stop.set()
        vin.close()
        raise
    if first is _END:
        stop.set()
        decoder.join()
        vin.close()
        if info.get("error"):
            raise InputError(info["error"])
        where = f" between {start or 0:g} s and {end:g} s" if start or end else ""
        raise InputError(f"{src}: no video frames{where}")
    height, width = first[0].shape[:2]
    origin_pts = first[1]
    origin_t = first[3]

    fd, tmp_name = temp_beside(dst, f".partial{dst.suffix}")
    _lock(fd)  # held while this run writes: a later run removes the file only once no process holds it
    tmp = Path(tmp_name)

    out = av.open(str(tmp), "w", format=fmt)
    audio_mode = None
    try:
        ovs = out.add_stream("libx264", rate=rate)
        ovs.width, ovs.height, ovs.pix_fmt = width, height, "yuv420p"
        ovs.time_base = tb_v
        ovs.codec_context.time_base = tb_v
        ovs.options = {"crf": str(crf), "preset": preset}
        # Audio: a second demuxer on the same file, read in step with the video being written.
        ain = ais = oas = None
        encoder = resampler = None
        try:
            probe_in = av.open(str(src), metadata_errors="ignore")
        except av.FFmpegError:
            probe_in = None
        if probe_in is not None and probe_in.streams.audio:
            ain, ais = probe_in, probe_in.streams.audio[0]
            name = ais.codec_context.name
            if name in _COPYABLE[fmt]:
                oas = out.add_stream_from_template(ais)
                audio_mode = "copied"
            else:
                rate_a = ais.codec_context.sample_rate or 44100
                oas = out.add_stream("aac", rate=rate_a)
                channels = ais.codec_context.channels or 2  # "2 channels" (no order) -> "stereo"
                oas.layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(channels, "stereo")
                oas.format = "fltp"
                oas.time_base = oas.codec_context.time_base = Fraction(1, rate_a)
                resampler = av.AudioResampler(format="fltp", layout=oas.layout.name, rate=rate_a)
                encoder = oas
                audio_mode = "re-encoded"
            if start:
                try:
                    ain.seek(int(start / ais.time_base), stream=ais, backward=True)
                except av.FFmpegError:
                    pass
        elif probe_in is not None:
            probe_in.close()
    except BaseException:
        out.close()
        tmp.unlink(missing_ok=True)
        stop.set()
        vin.close()
        raise

    audio_end = end
    a_origin = origin_t  # seconds: the audio is shifted by the same amount as the video

    def audio_packets():
        """Audio packets (copied or re-encoded) in the span, time-shifted like the video."""
        if ais is None:
            return
        shift = int(round(a_origin / ais.time_base))
        trimmed = bool(start) or a_origin > 0  # untrimmed: keep the priming packets too
        for packet in ain.demux(ais):
            if packet.pts is None:
                continue
            t0 = float(packet.pts * ais.time_base)
            t1 = t0 + float((packet.duration or 0) * ais.time_base)
            if trimmed and t1 <= a_origin + 1e-6:
                continue
            if audio_end is not None and t0 >= audio_end - 1e-6:
                break
            if encoder is None:
                packet.pts -= shift
                packet.dts = (packet.dts - shift) if packet.dts is not None else None
                packet.stream = oas
                yield float(packet.pts * ais.time_base), packet
            else:
                for frame in packet.decode():
                    frame.pts = None
                    for f in resampler.resample(frame):
                        for p in encoder.encode(f):
                            yield float(p.pts * p.time_base) if p.pts is not None else 0.0, p
        if encoder is not None:
            for f in resampler.resample(None):
                for p in encoder.encode(f):
                    yield 0.0, p
            for p in encoder.encode(None):
                yield 0.0, p

    results_q: queue.Queue = queue.Queue(_QUEUE)
    state = {"written": 0, "last_end": 0.0}
    audio_iter = audio_packets()
    pending: list = []

    def mux_audio_until(t: float | None):
        """Mux audio packets that start before ``t`` seconds (all remaining when None)."""
        while True:
            if pending:
                pt, p = pending[0]
                if t is not None and pt > t:
                    return
                pending.pop(0)
                out.mux(p)
                continue
            try:
                pending.append(next(audio_iter))
            except StopIteration:
                return

    def encode():
        while True:
            try:
                item = results_q.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    return
                continue
            if item is _END:
                break
            bgr, pts, dur, t = item
            frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
            frame.pts = pts - origin_pts
            frame.time_base = tb_v
            if dur:
                frame.duration = dur
            mux_audio_until(t - origin_t)
            for packet in ovs.encode(frame):
                out.mux(packet)
            state["written"] += 1
            step = float(dur * tb_v) if dur else 1.0 / float(rate)
            state["last_end"] = t - origin_t + step

    encoder_thread = _Worker(encode, "dctoon-encode")
    encoder_thread.start()

    show = sys.stderr.isatty() if bar is None else bar
    from tqdm import tqdm

    pbar = tqdm(total=total or None, unit="frame", disable=not show, file=sys.stderr,
                desc=src.name[:30], dynamic_ncols=True)
    process = FrameStylizer(cartoonizer, temporal=temporal, detect_every=detect_every, blend=blend)
    done = 0
    interrupted: BaseException | None = None
    error: BaseException | None = None
    item = first
    try:
        while item is not _END:
            bgr, pts, dur, t = item
            styled = process(bgr, t)
            if not _put(results_q, (styled, pts, dur, t), stop, encoder_thread.is_alive) or encoder_thread.error:
                raise encoder_thread.error or RuntimeError("encoder stopped")
            done += 1
            pbar.update(1)
            if progress is not None:
                progress(done, max(total, done))
            item = _get(frames_q, stop, decoder)
        if info.get("error"):
            raise InputError(info["error"])
        expected = vs.frames if vs.frames and start is None and end is None else 0
        if expected and done < expected * 0.98 - 1:
            raise InputError(f"{src}: truncated video: {done} of {expected} frames could be decoded")
    except KeyboardInterrupt as e:
        interrupted = e
    except BaseException as e:  # noqa: BLE001 - re-raised below after cleanup
        error = e
    finally:
        pbar.close()

    # Drain: tell the encoder the stream ended, wait for it, then flush and finalise.
    finished = False
    try:
        if error is None and (interrupted is None or keep_partial):
            _put(results_q, _END, threading.Event(), encoder_thread.is_alive)
            encoder_thread.join()
            if encoder_thread.error:
                error = encoder_thread.error
            elif state["written"] == 0:
                finished = False  # interrupted before the first frame: nothing worth keeping
            else:
                for packet in ovs.encode(None):
                    out.mux(packet)
                mux_audio_until(state["last_end"] if interrupted or end is not None else None)
                finished = True
        else:
            stop.set()
            encoder_thread.join(timeout=10)
    except KeyboardInterrupt as e:  # a second Ctrl-C while finalising: give up on the file
        interrupted, finished = e, False
    except BaseException as e:  # noqa: BLE001
        error, finished = e, False
    finally:
        stop.set()
        try:
            out.close()
        except Exception:  # noqa: BLE001 - closing a half-written file may fail; it is deleted
            finished = False
        if ain is not None:
            ain.close()
        decoder.join(timeout=5)
        vin.close()

    if not finished or (interrupted is not None and not keep_partial):
        tmp.unlink(missing_ok=True)
        os.close(fd)
        if error is not None:
            if isinstance(error, OSError) and getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
                raise write_error(dst, error) from None
            if isinstance(error, av.FFmpegError) and not os.environ.get("DCTOON_DEBUG"):
                raise InputError(f"{src}: {_short(error)}") from None
            raise error
        if interrupted is not None:
            raise interrupted
        raise RuntimeError("video encoding failed")
    publish(tmp, dst)
    os.close(fd)
    result = VideoResult(dst, state["written"], state["last_end"], (width, height), audio_mode,
                         partial=interrupted is not None)
    if interrupted is not None:
        interrupted.result = result  # type: ignore[attr-defined] - the CLI reports it
        raise interrupted
    return result
