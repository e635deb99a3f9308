"""Portrait (person) segmentation: MediaPipe's selfie segmentation model on onnxruntime.

No model hub is needed: the model (Apache-2.0, ~250 KB of float16 weights) ships inside two
registry packages, the npm package ``@mediapipe/selfie_segmentation`` and the PyPI wheel
``mediapipe``; :data:`MODELS` pins both archives and the model file inside them by SHA-256.
:func:`ensure_model` converts the ``.tflite`` to ONNX once (our own FlatBuffer reader and the
converter in :mod:`dctoon.formats.tflite_onnx`: TensorFlow and mediapipe are never imported) and caches it under
``$DCTOON_HOME/models``. :class:`Segmenter` turns an RGB image into a person probability mask at
the image's resolution, with edges snapped to the picture by a guided filter;
:class:`dctoon.video.temporal.MaskSmoother` steadies successive masks of a video.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import urllib.parse
import zipfile
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from . import download
from .errors import ModelError
from .formats.tflite_onnx import tflite_to_onnx
from .runtime import session

__all__ = ["MODELS", "Segmenter", "Source", "ensure_model", "guided_filter", "import_model",
           "model_path", "tflite_to_onnx"]


@dataclass(frozen=True)
class Source:
    """One archive that holds a model file: where to get it and what its bytes must hash to."""

    url: str
    member: str  # path of the .tflite inside the archive
    sha256: str  # of the archive
    member_sha256: str  # of the .tflite
    size: int | None = None  # of the archive, bytes


_NPM = "https://registry.npmjs.org/@mediapipe/selfie_segmentation/-/selfie_segmentation-0.1.1675465747.tgz"
_NPM_SHA = "7767b33eaa68990ee06c28bbb89f39a13a47ebb07ff0f1fd4947d9e817bb9bf9"
_NPM_SIZE = 4_049_373
_WHEEL = ("https://files.pythonhosted.org/packages/ad/83/56f760fecdc60de84c529d6c05c9dfc7d972617c6632bd254d5e"
          "021e5b16/mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl")
_WHEEL_SHA = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
_WHEEL_SIZE = 35_622_638
_WHEEL_DIR = "mediapipe/modules/selfie_segmentation/"

# name -> sources, tried in order: the 4 MB npm tarball first, the 36 MB PyPI wheel second.
MODELS: dict[str, tuple[Source, ...]] = {
    # 256x256 general model: portraits and square-ish frames.
    "selfie": (
        Source(_NPM, "package/selfie_segmentation.tflite", _NPM_SHA,
               "8d13b7fae74af625c641226813616a2117bd6bca19eb3b75574621fc08557f27", _NPM_SIZE),
        Source(_WHEEL, _WHEEL_DIR + "selfie_segmentation.tflite", _WHEEL_SHA,
               "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c", _WHEEL_SIZE),
    ),
    # 144x256 landscape model: faster on 16:9 video calls, same archives.
    "landscape": (
        Source(_NPM, "package/selfie_segmentation_landscape.tflite", _NPM_SHA,
               "4aafe6223bb8dac6fac8ca8ed56852870a33051ef3f6238822d282a109962894", _NPM_SIZE),
        Source(_WHEEL, _WHEEL_DIR + "selfie_segmentation_landscape.tflite", _WHEEL_SHA,
               "a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd", _WHEEL_SIZE),
    ),
}
DEFAULT_MODEL = "selfie"
URL_ENV = "DCTOON_SEGMENT_URL"
_CONVERTER = "1"  # bumped when the converter's output changes, so old caches are not reused


# --------------------------------------------------------------------------------------------
# Getting the model


def model_path(name: str = DEFAULT_MODEL) -> Path:
    """Where the converted ONNX of model ``name`` is cached."""
    from .paths import models_dir

    _check_name(name)
    return models_dir() / f"segment-{name}.v{_CONVERTER}.onnx"


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise ModelError(f"unknown segmentation model '{name}'; known: {', '.join(MODELS)}")


def _known(name: str) -> set[str]:
    return {s.member_sha256 for s in MODELS[name]}


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
        for s in MODELS[name]:
            if s.member.startswith(_WHEEL_DIR):
                f = Path(root) / s.member[len("mediapipe/"):]
                if f.is_file() and download.file_sha256(f) in _known(name):
                    return f
    return None


def _members(archive: Path | bytes, label: str) -> dict[str, bytes]:
    """The known model members of a ``.tgz`` (npm) or ``.whl``/``.zip`` (PyPI) archive, by path
    (only those: the mediapipe wheel holds dozens of other models)."""
    wanted = {s.member for sources in MODELS.values() for s in sources}
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
    for name, sources in MODELS.items():
        for s in sources:
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
                             f"use the .tflite from {_NPM} or mediapipe==0.10.21")
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
    for s in MODELS[name]:
        if Path(urllib.parse.urlsplit(s.url).path).name == base:
            return Source(url, s.member, s.sha256, s.member_sha256, s.size)
    wheel = base.endswith((".whl", ".zip"))
    s = next(s for s in MODELS[name] if s.member.startswith(_WHEEL_DIR) == wheel)
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
    sources = [_override(url, name)] if url else list(MODELS[name])
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
                     f"download {MODELS[name][0].url} on a connected machine and install it with "
                     f"dctoon.segment.import_model(PATH){mirror}")


# --------------------------------------------------------------------------------------------
# Inference


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, p: np.ndarray, radius: int, eps: float) -> tuple[list[np.ndarray], np.ndarray]:
    """He et al.'s colour guided filter: the linear coefficients ``(a, b)`` with ``q = a . I + b``.

    Returned rather than ``q`` so that they can be computed on a small image and applied to the
    full-resolution guide (the fast guided filter): edges then follow the full-resolution picture.
    ``guide``: float32 HxWx3 in [0, 1]; ``p``: float32 HxW; ``a`` is one HxW array per channel.
    Works on contiguous 2-D planes: OpenCV's box filter is several times faster on those.
    """
    p = np.ascontiguousarray(p, dtype=np.float32)
    ch = [np.ascontiguousarray(guide[..., i], dtype=np.float32) for i in range(3)]
    r, g_, b_ = ch
    mr, mg, mb = (_box(c, radius) for c in ch)
    mp = _box(p, radius)
    c0, c1, c2 = (_box(c * p, radius) - m * mp for c, m in ((r, mr), (g_, mg), (b_, mb)))
    rr = _box(r * r, radius) - mr * mr + eps
    rg = _box(r * g_, radius) - mr * mg
    rb = _box(r * b_, radius) - mr * mb
    gg = _box(g_ * g_, radius) - mg * mg + eps
    gb = _box(g_ * b_, radius) - mg * mb
    bb = _box(b_ * b_, radius) - mb * mb + eps
    # inverse of the symmetric 3x3 covariance (+ eps I) by cofactors
    i_rr, i_rg, i_rb = gg * bb - gb * gb, gb * rb - rg * bb, rg * gb - gg * rb
    i_gg, i_gb, i_bb = rr * bb - rb * rb, rb * rg - rr * gb, rr * gg - rg * rg
    inv_det = 1.0 / (rr * i_rr + rg * i_rg + rb * i_rb)
    a0 = (i_rr * c0 + i_rg * c1 + i_rb * c2) * inv_det
    a1 = (i_rg * c0 + i_gg * c1 + i_gb * c2) * inv_det
    a2 = (i_rb * c0 + i_gb * c1 + i_bb * c2) * inv_det
    b = mp - a0 * mr - a1 * mg - a2 * mb
    return [_box(a, radius) for a in (a0, a1, a2)], _box(b, radius)


class Segmenter:
    """Person probability masks for RGB images: one onnxruntime session, reused for every call.

    ``threads``: onnxruntime's intra-op thread count (0: its default). ``model``: a name from
    :data:`MODELS` (downloaded and converted on first use) or a path to a converted ``.onnx``.
    ``refine``: snap the mask's edges to the image with a guided filter (``radius`` and ``eps``
    at a working resolution of ``work_side`` pixels on the long side).
    """

    def __init__(self, threads: int = 0, model: str | os.PathLike = DEFAULT_MODEL, *, refine: bool = True,
                 radius: int = 6, eps: float = 2e-3, work_side: int = 512, progress: bool | None = None):
        if threads < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        path = ensure_model(model, progress) if isinstance(model, str) and model in MODELS else Path(model)
        if not Path(path).is_file():
            raise ModelError(f"{path}: segmentation model not found; known names: {', '.join(MODELS)}")
        self._session = session(path, threads, helper=True,
                                what=f"the segmentation model {path} (delete it to have it converted again)")
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        self.height, self.width = int(inp.shape[1]), int(inp.shape[2])
        self.refine, self.radius, self.eps, self.work_side = refine, int(radius), float(eps), int(work_side)

    def _prepare(self, rgb: np.ndarray) -> np.ndarray:
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected a uint8 HxWx3 RGB image, got {getattr(rgb, 'dtype', type(rgb))} "
                             f"{getattr(rgb, 'shape', '')}")
        if min(rgb.shape[:2]) == 0:
            raise ValueError("empty image")
        h, w = rgb.shape[:2]
        # Stretched to the model's input, no letterbox, as MediaPipe's graph does; area averaging
        # when shrinking so that a large photo is not aliased.
        shrink = h > self.height or w > self.width
        x = cv2.resize(np.ascontiguousarray(rgb), (self.width, self.height),
                       interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return x.astype(np.float32) * np.float32(1 / 255)

    def raw(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """The model's own output for a batch of images: float32 Nx(model H)x(model W) in [0, 1]."""
        batch = np.stack([self._prepare(im) for im in images])
        return self._session.run(None, {self._input: batch})[0][..., 0]

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """Person probability of every pixel of a uint8 HxWx3 RGB image: float32 HxW in [0, 1]."""
        return self._finish(rgb, self.raw([rgb])[0])

    def batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`__call__` for several images with one inference run."""
        return [self._finish(im, m) for im, m in zip(images, self.raw(images))] if len(images) else []

    def _finish(self, rgb: np.ndarray, low: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        if not self.refine:
            return np.clip(cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
        # Fast guided filter: coefficients on a copy of at most work_side px, applied at full size.
        scale = min(1.0, self.work_side / max(h, w))
        ws = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = rgb if ws == (w, h) else cv2.resize(rgb, ws, interpolation=cv2.INTER_AREA)
        small = small.astype(np.float32) * np.float32(1 / 255)
        p = cv2.resize(low, ws, interpolation=cv2.INTER_LINEAR)
        a, b = guided_filter(small, p, max(1, round(self.radius * max(ws) / 512)), self.eps)
        guide = small
        if ws != (w, h):
            a = [cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR) for x in a]
            b = cv2.resize(b, (w, h), interpolation=cv2.INTER_LINEAR)
            guide = rgb.astype(np.float32) * np.float32(1 / 255)
        q = b
        for i in range(3):
            q += a[i] * guide[..., i]
        return np.clip(q, 0.0, 1.0, out=q)
