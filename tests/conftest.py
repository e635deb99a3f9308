"""Shared fixtures: ../shared beside the checkout holds real photos, videos and reference weights."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

if not os.environ.get("DCTOON_HOME"):  # never the user's real ~/.cache/dctoon (scripts/test.sh sets one too)
    _home = tempfile.mkdtemp(prefix="dctoon-test-home.")
    os.environ["DCTOON_HOME"] = _home
    atexit.register(shutil.rmtree, _home, True)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "models" / "reference"
OFFICIAL = SHARED / "models" / "official"
IMAGES = SHARED / "media" / "images"
VIDEOS = SHARED / "media" / "videos"
FP16 = REFERENCE / "whitebox_cartoon_gan_fp16.tflite"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found: ../shared (real test data) is not beside the checkout")
    return path


@pytest.fixture
def one_torch_thread():
    """PyTorch on one thread for the test (toy training runs: no oversubscription beside the suite)."""
    torch = pytest.importorskip("torch", reason="training needs the optional extra dctoon[train] (PyTorch)")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run(args, capsys) -> tuple[int, str, str]:
    """The CLI in-process: exit code, stdout, stderr."""
    from dctoon.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    """stderr holds exactly one 'dctoon: error:' line and no traceback; returns it."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("dctoon: error:"), err
    return lines[0]


@pytest.fixture(scope="session")
def fp16_model() -> Path:
    return need(FP16)


@pytest.fixture(scope="session")
def shared_images() -> list[Path]:
    return sorted(need(IMAGES).glob("*.jpg"))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, args: list[str], env: dict) -> tuple:
    """``python -m dctoon serve ARGS`` on a free 127.0.0.1 port, waited for: (process, url, log file)."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    log = open(tmp / "server.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "dctoon", "serve", "--port", str(port), *args],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc, url, log
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.seek(0)
            pytest.fail(f"dctoon serve did not start:\n{log.read()[-3000:]}")
        time.sleep(0.5)


def stop_server(proc, log) -> None:
    import signal
    import subprocess

    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()



# the web app's Live tab: a page script that records when each new stylized frame is shown
OBSERVE_LIVE_FRAMES = """() => { window.dctoonFrames = []; const seen = new Set();
    new MutationObserver(() => { const img = document.querySelector('#dctoon-live-out img');
        if (img && img.src && !seen.has(img.src)) { seen.add(img.src); window.dctoonFrames.push(performance.now()); }
    }).observe(document.querySelector('#dctoon-live-out'), {subtree: true, childList: true, attributes: true}); }"""
