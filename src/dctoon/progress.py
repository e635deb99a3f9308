"""Progress of a long run on stderr: tqdm's bar on a terminal; elsewhere (a pipe, a log file) one
plain line every few seconds, as a log-friendly tool does: a bar's carriage returns make a log
unreadable, and a run that prints nothing for 14 minutes was taken for a hang."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

INTERVAL = 5.0  # seconds between two lines in a log


def progress_bar(show: bool | None, *, total: int | None = None, unit: str = "frame", desc: str = "",
                 iterable: Iterable | None = None):
    """A progress display with tqdm's calls (``update``, ``total``, ``n``, ``set_postfix_str``, a
    context manager, or an iterable over ``iterable``). ``show``: ``None`` picks by stderr (a
    terminal: the bar, else :class:`LogLines`), ``True`` the bar, ``False`` nothing (``-q``)."""
    if show is None and not sys.stderr.isatty():
        return LogLines(total=total, unit=unit, desc=desc, iterable=iterable)
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: where none can start, its warning would print first
    return tqdm(iterable, total=total, unit=unit, desc=desc, disable=show is False, file=sys.stderr, dynamic_ncols=True)


class LogLines:
    """Progress as lines, no carriage return: after the first item (the run has started, at what
    rate), then at most every :data:`INTERVAL` seconds, and once at the end, e.g.
    ``dctoon: clip.mp4: 120/900 frames (13%), 4.1 frames/s, ETA 3:10``."""

    def __init__(self, total: int | None = None, unit: str = "frame", desc: str = "",
                 iterable: Iterable | None = None, interval: float = INTERVAL):
        self.total, self.unit, self.desc, self.iterable, self.interval = total, unit, desc, iterable, interval
        self.n, self.postfix, self.start = 0, "", time.monotonic()
        self.said_at: float | None = None  # when the last line was printed
        self.said_n = -1  # how many were done at the last line: the end is not said twice

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.said_at is None or now - self.said_at >= self.interval:
            self._say(now)

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        """The last line, when there is something new to say."""
        if self.n and self.n != self.said_n:
            self._say(time.monotonic(), end=True)

    def _say(self, now: float, end: bool = False) -> None:
        elapsed = max(now - self.start, 1e-9)
        rate = self.n / elapsed
        line = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        line += f" {self.unit}s" + (f" ({100 * self.n // self.total}%)" if self.total else "")
        line += f", {rate:.3g} {self.unit}s/s"
        if end or (self.total and self.n >= self.total):
            line += f", {clock(elapsed)} elapsed"
        elif self.total:
            line += f", ETA {clock((self.total - self.n) / rate)}"
        parts = ["dctoon", *([self.desc] if self.desc else []), line + (f", {self.postfix}" if self.postfix else "")]
        print(": ".join(parts), file=sys.stderr, flush=True)
        self.said_at, self.said_n = now, self.n


def clock(seconds: float) -> str:
    """A duration as people read one: 0:07, 3:10, 1:02:03 (the command's progress lines, the page's ETA)."""
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
