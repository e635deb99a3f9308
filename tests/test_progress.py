"""Progress of long runs: with stderr a pipe (a log, CI), plain lines of frames done of total, rate
and ETA, no carriage return; none with -q. Real runs of the command on a real video and photos."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import FP16, IMAGES, VIDEOS, need
from dctoon.progress import LogLines, clock

LINE = re.compile(r"^dctoon: (?:(?P<desc>[^:]+): )?(?P<done>\d+)/(?P<total>\d+) (?P<unit>\w+)s \(\d+%\), "
                  r"[\d.e+]+ \w+s/s, (ETA \d+:\d\d|\d+:\d\d elapsed)$")


def dctoon(*args) -> subprocess.CompletedProcess:
    """The command as a user runs it, stdout and stderr pipes (not terminals)."""
    return subprocess.run([sys.executable, "-m", "dctoon", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def progress_lines(err: str) -> list[re.Match]:
    return [m for m in map(LINE.match, err.splitlines()) if m]


def test_video_says_its_progress_in_a_log_and_not_with_quiet(tmp_path):
    clip = need(VIDEOS / "talking-head-512-noaudio.mp4")
    trim = ["--end", "0.4", "--max-side", "128", "--no-faces", "--style", need(FP16)]  # 10 frames
    done = dctoon("video", clip, "-o", tmp_path / "a.mp4", *trim)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    lines = progress_lines(done.stderr)
    assert len(lines) >= 2, done.stderr  # after the first frame, then at the end
    assert lines[0]["desc"] == clip.name and lines[0]["done"] == "1" and lines[0]["unit"] == "frame"
    assert lines[-1]["done"] == lines[-1]["total"] == "10" and lines[-1][0].endswith("elapsed")
    quiet = dctoon("video", clip, "-o", tmp_path / "b.mp4", "-q", *trim)
    assert quiet.returncode == 0 and (tmp_path / "b.mp4").is_file(), quiet.stderr
    assert not progress_lines(quiet.stderr) and "frames/s" not in quiet.stderr, quiet.stderr


def test_a_terminal_keeps_its_bar(tmp_path):
    """stderr a terminal (a pseudo-terminal here): tqdm's bar, redrawn with carriage returns, no log lines."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    clip = need(VIDEOS / "talking-head-512-noaudio.mp4")
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns, as a window has
    proc = subprocess.Popen([sys.executable, "-m", "dctoon", "video", clip, "-o", tmp_path / "a.mp4", "--end", "0.4",
                             "--max-side", "128", "--no-faces", "--style", need(FP16)], stderr=terminal,
                            stdout=subprocess.DEVNULL)
    os.close(terminal)
    shown = b""
    while chunk := _read(main):
        shown += chunk
    assert proc.wait(timeout=300) == 0, shown
    text = shown.decode(errors="replace")
    assert "\r" in text and "10/10" in text and "frame/s" in text, text
    assert not progress_lines(text.replace("\r", "\n")), text


def _read(fd: int) -> bytes:
    """What the terminal shows next; b"" once the process has closed it (Linux raises EIO then)."""
    import os

    try:
        return os.read(fd, 4096)
    except OSError:
        return b""


def test_a_folder_of_images_says_its_progress_and_not_with_quiet(tmp_path):
    photos = [need(IMAGES / name) for name in ("portrait-512.jpg", "portrait-color.jpg")]
    options = ["--max-side", "96", "--no-faces", "--style", need(FP16)]
    done = dctoon("image", *photos, "-o", tmp_path / "out", *options)
    assert done.returncode == 0, done.stderr
    lines = progress_lines(done.stderr)
    assert [(m["done"], m["total"], m["unit"]) for m in lines] == [("1", "2", "image"), ("2", "2", "image")]
    assert len(done.stdout.splitlines()) == 2  # the outputs, and only they, on stdout
    quiet = dctoon("image", *photos, "-o", tmp_path / "quiet", "-q", *options)
    assert quiet.returncode == 0 and not quiet.stderr.strip(), quiet.stderr


def test_log_lines_come_every_interval_and_end_once(capsys):
    """The cadence, on a clock moved by hand: the first item, then one line per interval, then the end."""
    bar = LogLines(total=100, desc="clip.mp4", interval=3600)
    with bar:
        for _ in range(50):
            bar.update(1)
        bar.said_at -= 3600  # an interval has passed
        bar.update(1)
        bar.set_postfix_str("items 1/2, failed 0")
        bar.update(49)
    lines = capsys.readouterr().err.splitlines()
    assert [ln.split(": ")[2].split(",")[0] for ln in lines] == ["1/100 frames (1%)", "51/100 frames (51%)",
                                                                "100/100 frames (100%)"]
    assert "ETA" in lines[1] and lines[-1].endswith(", items 1/2, failed 0") and "elapsed" in lines[-1]
    unknown = LogLines(desc="framing")
    unknown.update(3)
    unknown.close()
    unknown.close()  # nothing new since the first line: not said again
    [line] = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"dctoon: framing: 3 frames, [\d.e+]+ frames/s", line), line


def test_clock_reads_as_a_duration():
    assert [clock(s) for s in (0.4, 7, 190, 3723)] == ["0:00", "0:07", "3:10", "1:02:03"]
