"""Getting the helper models (person segmentation) without a model hub.

MediaPipe's selfie segmentation model (Apache-2.0, ~250 KB of float16 weights) ships inside two
registry packages, the npm package ``@mediapipe/selfie_segmentation`` and the PyPI wheel
``mediapipe``; :mod:`dctoon.assets` pins both archives and the model file inside them by SHA-256.
:func:`ensure_model` converts the ``.tflite`` to ONNX once (our own FlatBuffer reader and the
converter in :mod:`dctoon.formats.tflite_onnx`: TensorFlow and mediapipe are never imported) and
caches it under ``$DCTOON_HOME/models``; :func:`import_model` does the same from a local file.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import urllib.parse
import zipfile
from importlib.util import find_spec
from pathlib import Path

from . import download
from .assets import WHEEL_DIR, Source, of_kind
from .errors import ModelError
from .formats.tflite_onnx import tflite_to_onnx

__all__ = ["DEFAULT_MODEL", "MODELS", "URL_ENV", "ensure_model", "import_model", "model_path"]

MODELS = of_kind("segmentation")  # name -> Asset
DEFAULT_MODEL = "selfie"
URL_ENV = "DCTOON_SEGMENT_URL"
_CONVERTER = "1"  # bumped when the converter's output changes, so old caches are not reused

def model_path(name: str = DEFAULT_MODEL) -> Path:
    """Where the converted ONNX of model ``name`` is cached."""
    from .paths import models_dir

    _check_name(name)
    return models_dir() / f"segment-{name}.v{_CONVERTER}.onnx"


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise ModelError(f"unknown segmentation model '{name}'; known: {', '.join(MODELS)}")


def _known(name: str) -> set[str]:
    return {s.member_sha256 for s in MODELS[name].sources}


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _write_atomic(dest: Path, data: bytes) -> None:
    """Temp file beside ``dest`` + rename (a reader never sees half a model); a model error if it fails."""
    from .images import atomic_write

    try:
        atomic_write(dest, data)
    except OSError as e:
        raise ModelError(f"cannot write {dest}: {e.strerror or e}") from None


def _install(name: str, tflite: bytes, origin: str) -> Path:
    """Verify a model file's bytes against the known SHA-256s, convert it, cache the ONNX."""
    digest = _sha(tflite)
    if digest not in _known(name):
        raise ModelError(f"{origin}: not the known '{name}' segmentation model (sha256 {digest[:16]}...); "
                         f"expected {' or '.join(s[:16] + '...' for s in sorted(_known(name)))}")
    model = tflite_to_onnx(tflite, label=origin)
    meta = model.metadata_props
    for key, value in (("source_sha256", digest), ("source", origin), ("dctoon_converter", _CONVERTER)):
        p = meta.add()
        p.key, p.value = key, value
    dest = model_path(name)
    _write_atomic(dest, model.SerializeToString())
    return dest


def _installed_mediapipe(name: str) -> Path | None:
    """The model file of an installed ``mediapipe`` package, found without importing it (its import
    pulls in opencv-contrib and protobuf), if its bytes are a known version."""
    try:
        spec = find_spec("mediapipe")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        for s in MODELS[name].sources:
            if s.member.startswith(WHEEL_DIR):
                f = Path(root) / s.member[len("mediapipe/"):]
                if f.is_file() and download.file_sha256(f) in _known(name):
                    return f
    return None


def _members(archive: Path | bytes, label: str) -> dict[str, bytes]:
    """The known model members of a ``.tgz`` (npm) or ``.whl``/``.zip`` (PyPI) archive, by path
    (only those: the mediapipe wheel holds dozens of other models)."""
    wanted = {s.member for a in MODELS.values() for s in a.sources}
    fileobj = io.BytesIO(archive) if isinstance(archive, bytes) else open(archive, "rb")
    try:
        head = fileobj.read(4)
        fileobj.seek(0)
        out = {}
        if head[:2] == b"\x1f\x8b":
            with tarfile.open(fileobj=fileobj, mode="r:gz") as tar:
                for m in tar:
                    if m.isfile() and m.name in wanted:
                        out[m.name] = tar.extractfile(m).read()
        elif head == b"PK\x03\x04":
            with zipfile.ZipFile(fileobj) as z:
                for n in z.namelist():
                    if n in wanted:
                        out[n] = z.read(n)
        else:
            raise ModelError(f"{label}: neither a .tgz nor a .whl/.zip archive, nor a .tflite model")
        return out
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError, OSError) as e:
        raise ModelError(f"{label}: damaged archive ({e})") from None
    finally:
        fileobj.close()


def _install_from_archive(archive: Path | bytes, label: str, required: str | None = None) -> dict[str, Path]:
    """Convert every known model found in an archive (both come in the same archives, so one
    download serves both); model name -> cached ONNX. Only ``required`` may fail loudly."""
    members = _members(archive, label)
    done = {}
    for name, asset in MODELS.items():
        for s in asset.sources:
            data = members.get(s.member)
            if data is None or (name != required and _sha(data) not in _known(name)):
                continue
            try:
                done[name] = _install(name, data, f"{label}:{s.member}")
            except ModelError:
                if name == required:
                    raise
            break
    return done


def import_model(path: str | os.PathLike, name: str | None = None) -> Path:
    """Install the model from a local file: a ``.tflite`` of a known version, or the npm ``.tgz`` /
    PyPI ``.whl`` that holds it (for machines that cannot reach the registries).

    Returns the cached ONNX of ``name`` (default: the model that the file holds, or "selfie").
    """
    path = Path(path)
    if name is not None:
        _check_name(name)
    if not path.is_file():
        raise ModelError(f"{path}: file not found")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] == b"TFL3":
        data = path.read_bytes()
        digest = _sha(data)
        names = [n for n in MODELS if digest in _known(n)]
        if not names:
            raise ModelError(f"{path}: not a known MediaPipe selfie segmentation model (sha256 {digest[:16]}...): "
                             f"use the .tflite from {MODELS['selfie'].url} or mediapipe==0.10.21")
        if name is not None and name not in names:
            raise ModelError(f"{path}: this is the '{names[0]}' model, not '{name}'")
        return _install(name or names[0], data, str(path))
    done = _install_from_archive(path, str(path))
    if not done:
        raise ModelError(f"{path}: holds no known MediaPipe selfie segmentation model")
    want = name or (DEFAULT_MODEL if DEFAULT_MODEL in done else next(iter(done)))
    if want not in done:
        raise ModelError(f"{path}: holds no '{want}' segmentation model")
    return done[want]


def _override(url: str, name: str) -> Source:
    """A source for a mirror URL: the checksums of the pinned archive with the same file name,
    else the member path of the archive of the same kind (the member checksum always applies)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ModelError(f"{URL_ENV}/url {url!r} is not an http(s) URL")
    base = Path(urllib.parse.urlsplit(url).path).name
    for s in MODELS[name].sources:
        if Path(urllib.parse.urlsplit(s.url).path).name == base:
            return Source(url, s.member, s.sha256, s.member_sha256, s.size)
    wheel = base.endswith((".whl", ".zip"))
    s = next(s for s in MODELS[name].sources if s.member.startswith(WHEEL_DIR) == wheel)
    return Source(url, s.member, "", s.member_sha256, None)


def _prune_empty(folder: Path, stop: Path) -> None:
    while folder != stop and folder.is_dir() and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def ensure_model(name: str = DEFAULT_MODEL, progress: bool | None = None, *, url: str | None = None) -> Path:
    """The converted ONNX of model ``name``, getting it first if it is not cached.

    In order: the cache; the file inside an installed ``mediapipe`` package (no network); a
    download of the archive (``url``, else ``$DCTOON_SEGMENT_URL``, else the npm tarball and then
    the PyPI wheel), resumable and checksum-verified, deleted once the model is converted.
    ``progress``: show a progress bar (None: when stderr is a terminal).
    """
    from .paths import downloads_dir, home

    dest = model_path(name)
    if dest.is_file():
        return dest
    local = _installed_mediapipe(name)
    if local is not None:
        return _install(name, local.read_bytes(), str(local))
    url = url or os.environ.get(URL_ENV) or None
    sources = [_override(url, name)] if url else list(MODELS[name].sources)
    failed = []
    for s in sources:
        file = Path(urllib.parse.urlsplit(s.url).path).name or "archive"
        archive = downloads_dir() / "segment" / file
        try:
            download.download_url(s.url, archive, size=s.size, sha256=(s.sha256,), progress=progress,
                             what=f"{file} (segmentation model '{name}')")
        except download.Unreachable as e:
            failed.append(f"{s.url} ({e.reason})")
            continue
        try:
            _install_from_archive(archive, s.url, required=name)
        finally:
            archive.unlink(missing_ok=True)
            _prune_empty(archive.parent, home())
        if not dest.is_file():
            raise ModelError(f"{s.url} holds no '{name}' segmentation model at {s.member}")
        return dest
    mirror = "" if url else f", or set {URL_ENV} to a mirror's URL of it"
    raise ModelError(f"cannot download the '{name}' segmentation model from {' or '.join(failed)} (offline?): "
                     f"download {MODELS[name].url} on a connected machine and install it with "
                     f"dctoon.helper_models.import_model(PATH), or dctoon models import PATH{mirror}")
