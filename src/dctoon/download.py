"""Resumable, verified downloads over HTTP(S), standard library only (urllib).

Bytes go to ``NAME.part`` beside the target and a later run continues with an HTTP ``Range``
request; a finished file is checked against every SHA-256 known for it before it is renamed to its
final name. Every failure is one :class:`~dctoon.errors.ModelError` line saying what happened and
what to do; a server that cannot be reached at all is :class:`Unreachable`, so callers can give
their own advice or fall back to another source.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .errors import ModelError

CHUNK = 1 << 16
TIMEOUT = 30.0
USER_AGENT = "dctoon (python urllib)"


def reason(e: BaseException) -> str:
    r = getattr(e, "reason", None) or e
    if isinstance(r, ConnectionRefusedError):
        return "connection refused"
    if isinstance(r, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(r, socket.gaierror):
        return "host name not found"
    text = getattr(r, "strerror", None) or str(r) or type(r).__name__
    return text.splitlines()[0]


class Unreachable(ModelError):
    """The server could not be reached at all (offline, refused, no DNS, timed out).

    Its own class so that callers can replace the generic message with advice of their own
    (another endpoint, a manual import) or fall back to another source.
    """

    def __init__(self, base: str, reason: str):
        super().__init__(f"cannot reach {base}: {reason}")
        self.base, self.reason = base, reason


def open_url(url: str, base: str, what: str, headers: dict | None = None):
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    try:
        return urllib.request.urlopen(req, timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 404:
            raise ModelError(f"{what} not found on {base} (HTTP 404)") from None
        if e.code == 416:
            raise
        raise ModelError(f"{what}: {base} answered HTTP {e.code} {e.reason}; try again later") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise Unreachable(base, reason(e)) from None


def _append(f, data: bytes) -> None:
    """Write one chunk (a seam for tests that simulate a full disk)."""
    f.write(data)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def download_url(url: str, dest: Path, *, size: int | None = None, sha256: tuple[str, ...] = (),
                 what: str | None = None, progress: bool | None = None, base: str | None = None) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verified against every known SHA-256.

    A complete, verified ``dest`` is reused as is. On a truncated transfer, a dropped connection or
    Ctrl-C the ``.part`` file is kept for the next run; on a checksum mismatch it is deleted.
    ``what`` names the file in messages (default: its name), ``base`` the server (default: the
    URL's scheme and host). A server that cannot be reached raises :class:`Unreachable`.
    """
    from tqdm import tqdm

    dest = Path(dest)
    if base is None:
        parts = urllib.parse.urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}"
    what = what or dest.name
    part = dest.with_name(dest.name + ".part")
    wanted = {s.lower() for s in sha256 if s}
    if dest.is_file() and (not wanted or {file_sha256(dest)} == wanted) and \
            (size is None or dest.stat().st_size == size):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    total = size
    if total is None or have < total:
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            r = open_url(url, base, what, headers)
        except urllib.error.HTTPError:  # 416: what we have is already everything the server has
            r = None
        if r is not None:
            with r:
                if have and r.status != 206:  # the server ignored the Range: start again
                    have = 0
                length = r.headers.get("Content-Length")
                expected = int(length) if length and length.isdigit() else None
                if total is None and expected is not None:
                    total = have + expected
                got = 0
                bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                           desc=dest.name, file=sys.stderr, leave=False,
                           disable=(not sys.stderr.isatty()) if progress is None else not progress)
                try:
                    with open(part, "ab" if have else "wb") as f:
                        while True:
                            try:
                                chunk = r.read(CHUNK)
                            except http.client.IncompleteRead as e:
                                _append(f, e.partial)
                                got += len(e.partial)
                                break
                            if not chunk:
                                break
                            _append(f, chunk)
                            got += len(chunk)
                            bar.update(len(chunk))
                except OSError as e:
                    if e.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise ModelError(f"disk full while downloading {what} to {dest.parent} "
                                         f"({_mb(have + got)} written, {_mb(total) if total else '?'} needed): "
                                         "free some space and run the same command again to resume") from None
                    if not isinstance(e, (socket.timeout, ConnectionError, TimeoutError)):
                        raise ModelError(f"cannot write {part}: {e.strerror or e}") from None
                finally:
                    bar.close()
                if expected is not None and got < expected:
                    raise ModelError(f"download of {what} was cut off at {_mb(have + got)} of "
                                     f"{_mb(have + expected)}: run the same command again to resume")
    size = part.stat().st_size if part.is_file() else 0
    if total is not None and size != total:
        raise ModelError(f"download of {what} is incomplete ({_mb(size)} of {_mb(total)}): "
                         "run the same command again to resume")
    if wanted:
        digest = file_sha256(part)
        if any(w != digest for w in wanted):  # the catalogue's and the listing's must both hold
            part.unlink()
            expected = sorted(w for w in wanted if w != digest)
            raise ModelError(f"checksum mismatch for {what}: got sha256 {digest[:16]}..., expected "
                             f"{' and '.join(w[:16] + '...' for w in expected)}; the file was deleted, "
                             "run again to download it afresh")
    os.replace(part, dest)
    return dest


