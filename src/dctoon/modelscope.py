"""A small ModelScope client (standard library only): the two endpoints of ModelScope's HTTP file
API that the official ``modelscope`` package uses, on top of :mod:`dctoon.download`.

- ``GET {endpoint}/api/v1/models/{model_id}/repo/files?Revision={rev}&Recursive=true`` lists the
  files of a model: ``{"Code": 200, "Data": {"Files": [{"Path", "Name", "Type", "Size", "Sha256"}]}}``
- ``GET {endpoint}/api/v1/models/{model_id}/repo?Revision={rev}&FilePath={path}`` returns one file.

The endpoint is, in order: the ``endpoint`` argument (``--endpoint``), ``$DCTOON_MODELSCOPE_ENDPOINT``
(a URL), ``$MODELSCOPE_DOMAIN`` (a host name, as for the ``modelscope`` package; a URL is accepted
too), else ``https://www.modelscope.cn``. :func:`find_local` looks in an existing ModelScope cache.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from .download import Unreachable, download_url, open_url, reason
from .errors import ModelError

DEFAULT_ENDPOINT = "https://www.modelscope.cn"


@dataclass
class RemoteFile:
    path: str
    size: int | None = None
    sha256: str | None = None


def endpoint(override: str | None = None) -> str:
    """The ModelScope base URL to use (no trailing slash)."""
    url = override or os.environ.get("DCTOON_MODELSCOPE_ENDPOINT") or ""
    if not url and os.environ.get("MODELSCOPE_DOMAIN"):
        url = os.environ["MODELSCOPE_DOMAIN"]
        if "://" not in url:
            url = "https://" + url
    url = (url or DEFAULT_ENDPOINT).strip().rstrip("/")
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ModelError(f"endpoint {url!r} is not an http(s) URL")
    return url


def files_url(base: str, model_id: str, revision: str) -> str:
    q = urllib.parse.urlencode({"Revision": revision, "Recursive": "true"})
    return f"{base}/api/v1/models/{model_id}/repo/files?{q}"


def file_url(base: str, model_id: str, revision: str, path: str) -> str:
    q = urllib.parse.urlencode({"Revision": revision, "FilePath": path})
    return f"{base}/api/v1/models/{model_id}/repo?{q}"


def _unreachable(base: str, reason: str) -> ModelError:
    return ModelError(f"cannot reach ModelScope at {base}: {reason} (offline? pass --endpoint URL, or "
                      "import a local copy with `dctoon styles import PATH`)")


def list_files(model_id: str, revision: str, base: str | None = None) -> list[RemoteFile]:
    """The files of one model revision (blobs only), from the listing endpoint."""
    base = endpoint(base)
    what = f"model {model_id} (revision {revision})"
    try:
        with open_url(files_url(base, model_id, revision), base, what) as r:
            body = r.read()
    except Unreachable as e:
        raise _unreachable(base, e.reason) from None
    except (OSError, http.client.HTTPException) as e:
        raise _unreachable(base, reason(e)) from None
    try:
        data = json.loads(body)
        if data.get("Code", 200) != 200 or data.get("Success") is False:
            raise ModelError(f"{what}: {base} says: {data.get('Message') or 'error ' + str(data.get('Code'))}")
        files = data["Data"]["Files"]
        out = [RemoteFile(f.get("Path") or f["Name"], f.get("Size"), (f.get("Sha256") or None))
               for f in files if f.get("Type", "blob") != "tree"]
    except ModelError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ModelError(f"{what}: {base} did not answer with a ModelScope file listing") from None
    return out


def fetch(model_id: str, revision: str, remote: RemoteFile, dest: Path, *, base: str | None = None,
          sha256: tuple[str, ...] = (), progress: bool | None = None) -> Path:
    """Download one file of a ModelScope model to ``dest``: :func:`download_url` on the file endpoint."""
    base = endpoint(base)
    try:
        return download_url(file_url(base, model_id, revision, remote.path), dest, size=remote.size,
                            sha256=(*sha256, remote.sha256 or ""), what=f"{remote.path} of {model_id}",
                            progress=progress, base=base)
    except Unreachable as e:
        raise _unreachable(base, e.reason) from None


def cache_roots() -> list[Path]:
    """Where the ``modelscope`` package keeps downloaded models (``$MODELSCOPE_CACHE`` or ~/.cache/modelscope)."""
    root = Path(os.environ.get("MODELSCOPE_CACHE") or Path.home() / ".cache" / "modelscope")
    return [root / "hub", root / "hub" / "models", root]


def find_local(model_id: str) -> Path | None:
    """A model folder from an existing ModelScope cache, in either the old or the new layout."""
    owner, _, name = model_id.partition("/")
    for root in cache_roots():
        for n in (name, name.replace(".", "___")):
            d = root / owner / n
            if d.is_dir():
                return d
    return None
