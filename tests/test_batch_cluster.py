"""``dctoon batch --address``: a Ray cluster of two nodes started by the test (``ray start`` twice
on 127.0.0.1, separate ports), reached by address; a wrong address is one line, not a local Ray."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FP16, IMAGES, free_port, need, one_line_error

RAY = Path(sys.executable).with_name("ray")
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}  # 0 forbids 2 nodes


def _ray(*args, timeout=180):
    return subprocess.run([str(RAY), *map(str, args)], env=ENV, capture_output=True, text=True, timeout=timeout)


def _start_cluster() -> tuple[str | None, str]:
    """``ray start`` a head, then a second node; (its address, '') or (None, what Ray said)."""
    port = free_port()
    head = _ray("start", "--head", "--node-ip-address", "127.0.0.1", "--port", port, "--num-cpus", 1,
                "--include-dashboard", "false", "--disable-usage-stats")
    if head.returncode:
        return None, head.stderr
    ports = [free_port() for _ in range(3)]
    low = free_port() + 200
    node = _ray("start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1", "--num-cpus", 1,
                "--node-manager-port", ports[0], "--object-manager-port", ports[1],
                "--metrics-export-port", ports[2], "--min-worker-port", low, "--max-worker-port", low + 100,
                "--disable-usage-stats")
    return (f"127.0.0.1:{port}", "") if node.returncode == 0 else (None, node.stderr)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head and a second node, 1 CPU each, on 127.0.0.1, with token authentication (the token in
    a file every process is pointed at, as on a real cluster); stopped afterwards. Ray gives a node
    30 s (fixed) to register with the head; a suite that loads the machine once made the second node
    miss it (CI, after test_batch), so a failed start is stopped and tried again from nothing, twice
    at most."""
    token = tmp_path_factory.mktemp("ray") / "auth_token"
    token.write_text(secrets.token_hex(32))
    ENV.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    try:
        for _ in range(3):
            address, said = _start_cluster()
            if address:
                break
            _ray("stop", "--force")
        assert address, said
        yield address
    finally:
        _ray("stop", "--force")


def test_address_runs_on_the_two_node_cluster(cluster, tmp_path):
    photos = [need(IMAGES / n) for n in ("portrait-512.jpg", "small-face-in-photo.jpg", "portrait-color.jpg")]
    proc = subprocess.run([sys.executable, "-m", "dctoon", "batch", *map(str, photos), "-o", str(tmp_path / "out"),
                           "-s", str(FP16), "--max-side", "96", "-q", "--address", cluster],
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr
    port = cluster.rsplit(":", 1)[1]  # the GCS reports the host's address for the one we dialled
    assert f":{port}: 2 nodes, 2 CPUs, 2 workers" in proc.stderr, proc.stderr
    assert len(proc.stdout.split()) == 3 and all(Path(p).is_file() for p in proc.stdout.split())


def test_an_address_nobody_listens_on_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dctoon", "batch", str(need(IMAGES / "portrait-512.jpg")), "-o",
                           str(tmp_path / "out"), "-s", str(FP16), "--address", f"127.0.0.1:{free_port()}"],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 2 and "cannot reach the Ray cluster" in one_line_error(proc.stderr)
