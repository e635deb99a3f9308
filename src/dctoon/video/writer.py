"""Writing the stylized video: H.264 into a hidden temp file beside the target, the source's audio
muxed in step with the frames (stream-copied where the container takes the codec, else AAC), and
an atomic rename at the end. A run holds a lock on its temp file, so the next run into the folder
can tell a killed run's leftover (removed) from a running one's (left alone)."""

from __future__ import annotations

import errno
import os
from fractions import Fraction
from pathlib import Path

from ..errors import InputError
from ..images import publish, temp_beside, write_error
from .reader import short_error

OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
# Audio codecs each output container takes as-is; anything else is re-encoded to AAC.
COPYABLE = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    "mov": {"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le"},
    "matroska": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac", "vorbis", "pcm_s16le", "pcm_s24le"},
}


def output_format(dst: Path) -> str:
    fmt = OUTPUT_FORMATS.get(dst.suffix.lower())
    if fmt is None:
        raise InputError(f"{dst}: unknown video format '{dst.suffix}' (use one of {', '.join(OUTPUT_FORMATS)})")
    return fmt


def lock(fd: int, wait: bool = True) -> bool:
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
            if lock(fd, wait=False):
                p.unlink(missing_ok=True)
                removed.append(p)
        finally:
            os.close(fd)
    return removed


class VideoWriter:
    """One output video. ``write`` each frame, then ``finish`` (flush, close, rename into place) or
    ``abort`` (close, delete). Frame times are shifted by ``origin`` (pts and seconds of the first
    frame) so the output starts at 0; the audio of [start, end) is shifted the same way.

    ``audio=False`` writes the picture only. With a ``template`` stream the video is not encoded
    but copied: ``copy`` takes that stream's packets (joining pieces encoded alike)."""

    def __init__(self, src: Path, dst: Path, *, size: tuple[int, int], rate, time_base, origin: tuple[int, float],
                 crf: int, preset: str, start: float | None, end: float | None, audio: bool = True,
                 template=None):
        import av

        self.src, self.dst, self.size, self.rate, self.time_base = src, dst, tuple(size), rate, time_base
        self.origin_pts, self.origin_t = origin
        self.end = end
        self.written, self.last_end = 0, 0.0
        self.audio: str | None = None
        self._ain = self._ais = self._oas = self._encoder = self._resampler = None
        self._pending: list = []
        self.fd, name = temp_beside(dst, f".partial{dst.suffix}")
        lock(self.fd)  # held while this run writes
        self.tmp = Path(name)
        self.fmt = output_format(dst)
        self.out = av.open(str(self.tmp), "w", format=self.fmt)
        self.copying = template is not None
        try:
            if self.copying:
                v = self.out.add_stream_from_template(template)
                v.time_base = time_base
            else:
                v = self.out.add_stream("libx264", rate=rate)
                v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
                v.time_base = v.codec_context.time_base = time_base
                v.options = {"crf": str(crf), "preset": preset}
            self.video = v
            if audio:
                self._open_audio(start)
        except BaseException:
            self._close()
            self._discard()
            raise
        self._audio_iter = self._audio_packets(start)

    # -- audio: a second demuxer on the same file, read in step with the video being written
    def _open_audio(self, start: float | None) -> None:
        import av

        try:
            ain = av.open(str(self.src), metadata_errors="ignore")
        except av.FFmpegError:
            return
        if not ain.streams.audio:
            ain.close()
            return
        ais = ain.streams.audio[0]
        self._ain, self._ais = ain, ais
        if ais.codec_context.name in COPYABLE[self.fmt]:
            self._oas = self.out.add_stream_from_template(ais)
            self.audio = "copied"
        else:
            rate_a = ais.codec_context.sample_rate or 44100
            oas = self.out.add_stream("aac", rate=rate_a)
            channels = ais.codec_context.channels or 2  # "2 channels" (no order) -> "stereo"
            oas.layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(channels, "stereo")
            oas.format = "fltp"
            oas.time_base = oas.codec_context.time_base = Fraction(1, rate_a)
            self._resampler = av.AudioResampler(format="fltp", layout=oas.layout.name, rate=rate_a)
            self._oas = self._encoder = oas
            self.audio = "re-encoded"
        if start:
            try:
                ain.seek(int(start / ais.time_base), stream=ais, backward=True)
            except av.FFmpegError:
                pass

    def _audio_packets(self, start: float | None):
        """Audio packets (copied or re-encoded) in the span, time-shifted like the video."""
        ais, a_origin = self._ais, self.origin_t
        if ais is None:
            return
        shift = int(round(a_origin / ais.time_base))
        trimmed = bool(start) or a_origin > 0  # untrimmed: keep the priming packets too
        for packet in self._ain.demux(ais):
            if packet.pts is None:
                continue
            t0 = float(packet.pts * ais.time_base)
            t1 = t0 + float((packet.duration or 0) * ais.time_base)
            if trimmed and t1 <= a_origin + 1e-6:
                continue
            if self.end is not None and t0 >= self.end - 1e-6:
                break
            if self._encoder is None:
                packet.pts -= shift
                packet.dts = (packet.dts - shift) if packet.dts is not None else None
                packet.stream = self._oas
                yield float(packet.pts * ais.time_base), packet
            else:
                for frame in packet.decode():
                    frame.pts = None
                    for f in self._resampler.resample(frame):
                        for p in self._encoder.encode(f):
                            yield float(p.pts * p.time_base) if p.pts is not None else 0.0, p
        if self._encoder is not None:
            for f in self._resampler.resample(None):
                for p in self._encoder.encode(f):
                    yield 0.0, p
            for p in self._encoder.encode(None):
                yield 0.0, p

    def _mux_audio_until(self, t: float | None) -> None:
        """Mux audio packets that start before ``t`` seconds (all remaining when None)."""
        while True:
            if self._pending:
                pt, p = self._pending[0]
                if t is not None and pt > t:
                    return
                self._pending.pop(0)
                self.out.mux(p)
                continue
            try:
                self._pending.append(next(self._audio_iter))
            except StopIteration:
                return

    # -- frames
    def write(self, bgr, pts: int, dur: int | None, t: float) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
        frame.pts = pts - self.origin_pts
        frame.time_base = self.time_base
        if dur:
            frame.duration = dur
        self._mux_audio_until(t - self.origin_t)
        for packet in self.video.encode(frame):
            self.out.mux(packet)
        self.written += 1
        step = float(dur * self.time_base) if dur else 1.0 / float(self.rate)
        self.last_end = t - self.origin_t + step

    def copy(self, packet, t: float, end: float) -> None:
        """Mux one encoded frame of the template's kind, already on this writer's time base; ``t``
        is its decoding time and ``end`` its display end, in seconds after the origin."""
        self._mux_audio_until(t)
        packet.stream = self.video
        self.out.mux(packet)
        self.written += 1
        self.last_end = max(self.last_end, end)

    # -- the end
    def finish(self, cut_audio: bool) -> Path:
        """Flush the encoder, mux the rest of the audio (up to the last frame's end when ``cut_audio``),
        close and rename into place. Any failure deletes the temp file and is raised as one line."""
        try:
            for packet in [] if self.copying else self.video.encode(None):
                self.out.mux(packet)
            self._mux_audio_until(self.last_end if cut_audio or self.end is not None else None)
        except BaseException as e:
            self.abort()
            raise self.user_error(e) from None
        error = self._close()
        if error is not None:
            self._discard()
            raise self.user_error(error) from None
        publish(self.tmp, self.dst)
        os.close(self.fd)
        return self.dst

    def abort(self) -> None:
        self._close()
        self._discard()

    def _close(self) -> BaseException | None:
        error = None
        try:
            self.out.close()
        except Exception as e:  # noqa: BLE001 - closing a half-written file may fail (a full disk)
            error = e
        if self._ain is not None:
            self._ain.close()
            self._ain = None
        return error

    def _discard(self) -> None:
        self.tmp.unlink(missing_ok=True)
        try:
            os.close(self.fd)
        except OSError:
            pass

    def user_error(self, e: BaseException) -> BaseException:
        import av

        if isinstance(e, OSError) and getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            return write_error(self.dst, e)
        if isinstance(e, av.FFmpegError) and not os.environ.get("DCTOON_DEBUG"):
            return InputError(f"{self.src}: {short_error(e)}")
        return e
