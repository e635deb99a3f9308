"""The two threads around the stylizer: a decoder that turns a span of the input into upright,
cropped, fitted, even-sized BGR frames, and an encoder that hands stylized frames to the
:class:`~dctoon.video.writer.VideoWriter`. Small bounded queues join them, so memory does not grow
with the video's length; a stage that fails hands its exception to the main thread."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np

from ..errors import DctoonError, InputError, exhausted
from ..framing import crop_window
from .reader import even, fit, short_error, span_frames, upright

QUEUE = 4  # frames in flight between stages (each way)
END = object()


class Worker(threading.Thread):
    """A daemon thread that records its exception for the main thread to re-raise."""

    def __init__(self, name: str):
        super().__init__(name=name, daemon=True)
        self.error: BaseException | None = None

    def run(self):
        try:
            self.work()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self.error = e

    def work(self) -> None:
        raise NotImplementedError


def put(q: queue.Queue, item, stop: threading.Event, alive=lambda: True) -> bool:
    """Put unless ``stop`` is set or the consumer died (``alive()`` false); False if not put."""
    while not stop.is_set() and alive():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class Decoder(Worker):
    """Frames of the span as ``(bgr, pts, duration, seconds)``; ``windows`` is auto-crop's camera path."""

    def __init__(self, container, stream, src: Path, start, end, windows, max_side: int | None,
                 stop: threading.Event):
        super().__init__("dctoon-decode")
        self.container, self.stream, self.src = container, stream, src
        self.span, self.windows, self.max_side, self.stop = (start, end), windows, max_side, stop
        self.q: queue.Queue = queue.Queue(QUEUE)
        self.decoded = 0
        self.failure: DctoonError | None = None

    def work(self) -> None:
        import av

        try:
            for frame, t in span_frames(self.container, self.stream, *self.span):
                if self.stop.is_set():
                    return
                bgr = upright(frame.to_ndarray(format="bgr24"), frame.rotation)
                if self.windows is not None:  # the virtual camera's window for this frame, at full resolution
                    window = self.windows[min(self.decoded, len(self.windows) - 1)]
                    bgr = np.ascontiguousarray(crop_window(bgr, window))
                self.decoded += 1
                if not put(self.q, (even(fit(bgr, self.max_side)), frame.pts, frame.duration or None, t), self.stop):
                    return
        except (av.FFmpegError, ValueError, IndexError, EOFError) as e:
            self.failure = exhausted(e) or InputError(  # a thread FFmpeg could not start is not a bad video
                f"{self.src}: corrupt or truncated video at frame {self.decoded} ({short_error(e)})")
        finally:
            put(self.q, END, self.stop)

    def get(self):
        """The next frame, or ``END``; re-raises the thread's exception."""
        while True:
            try:
                return self.q.get(timeout=0.1)
            except queue.Empty:
                if self.error is not None:
                    raise self.error
                if self.stop.is_set() or not self.is_alive():
                    return END

    def first(self):
        """The first frame (it fixes the output's size and time origin); a clear error when there is none."""
        item = self.get()
        if item is END:
            self.join()
            if self.failure:
                raise self.failure
            start, end = self.span
            where = f" between {start or 0:g} s and {end:g} s" if start or end else ""
            raise InputError(f"{self.src}: no video frames{where}")
        return item

    def check(self) -> None:
        """After the last frame: a decoding failure, or far fewer frames than the header promised."""
        if self.failure:
            raise self.failure
        expected = self.stream.frames if self.stream.frames and self.span == (None, None) else 0
        if expected and self.decoded < expected * 0.98 - 1:
            raise InputError(f"{self.src}: truncated video: {self.decoded} of {expected} frames could be decoded")


class Encoder(Worker):
    """Stylized frames into the writer, in order, on their own thread."""

    def __init__(self, writer, stop: threading.Event):
        super().__init__("dctoon-encode")
        self.writer, self.stop = writer, stop
        self.q: queue.Queue = queue.Queue(QUEUE)

    def work(self) -> None:
        while True:
            try:
                item = self.q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return
                continue
            if item is END:
                return
            self.writer.write(*item)

    def put(self, item) -> None:
        if not put(self.q, item, self.stop, self.is_alive) or self.error:
            raise self.error or RuntimeError("encoder stopped")

    def drain(self) -> None:
        """Wait until every frame handed over is written; re-raises the thread's exception."""
        put(self.q, END, threading.Event(), self.is_alive)
        self.join()
        if self.error:
            raise self.error
