"""Reading and writing still images: every format a user drops in, nothing written half-way."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MAX_PIXELS = 100_000_000  # above this the decoded frame alone would take gigabytes


def read_image(path: Path, max_side: int | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An RGB or RGBA uint8 array, upright (EXIF orientation applied), 8-bit.

    Grey, palette, CMYK and 16-bit images are converted; alpha is kept. The header is checked
    before decoding so a 20000x20000 file is refused (or, with ``max_side``, decoded at a
    reduced scale) instead of exhausting memory.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = check_input(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = None  # our own limit below is the one that applies
            im = Image.open(path)
            w, h = im.size
            if max_side and max(w, h) > max_side and im.format == "JPEG":
                im.draft(im.mode, (max(1, w * max_side // max(w, h)), max(1, h * max_side // max(w, h))))
                w, h = im.size
            if w * h > max_pixels:
                raise InputError(f"{path}: {im.size[0]}x{im.size[1]} is over the {max_pixels // 1_000_000} MP "
                                 "limit; pass --max-side to process it at a reduced size")
            im.load()
            im = ImageOps.exif_transpose(im)
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        reason = "not an image" if isinstance(e, UnidentifiedImageError) else f"cannot decode ({e})"
        raise InputError(f"{path}: {reason}") from None
    return to_rgb8(im, max_side)


def check_input(path) -> Path:
    """An input file that exists and is not empty, or a one-line InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    return path


def to_rgb8(im, max_side: int | None = None) -> np.ndarray:
    """PIL image of any mode -> RGB/RGBA uint8 array, optionally downscaled."""
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    im = im.convert("RGBA" if has_alpha else "RGB")
    if max_side and max(im.size) > max_side:
        scale = max_side / max(im.size)
        im = im.resize((max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale))), Image.LANCZOS)
    return np.asarray(im)


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp file beside the target, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_image(path: Path, rgb: np.ndarray, quality: int = 95) -> None:
    """Encode by the file extension (alpha needs PNG/WebP/TIFF) and write atomically."""
    import cv2

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_SUFFIXES:
        raise InputError(f"{path}: unknown image format '{ext}' (use one of {', '.join(IMAGE_SUFFIXES)})")
    if rgb.ndim == 3 and rgb.shape[2] == 4 and ext in (".jpg", ".jpeg", ".bmp"):
        raise InputError(f"{path}: the image has transparency, which {ext} cannot store; use .png or .webp")
    code = cv2.COLOR_RGBA2BGRA if rgb.shape[-1] == 4 else cv2.COLOR_RGB2BGR
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, code), params)
    if not ok:
        raise InputError(f"{path}: could not encode the image")
    atomic_write(path, buf.tobytes())


def expand_inputs(items: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns -> image paths, in order."""
    import glob

    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
        elif p.exists():
            out.append(p)
        elif any(c in item for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            if not matches:
                raise InputError(f"{item}: pattern matches no file")
            out += [m for m in matches if m.is_file()]
        else:
            raise InputError(f"{item}: no such file or folder")
    return out
