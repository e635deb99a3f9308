"""Reading and writing still images: every format a user drops in, nothing written half-way."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MAX_DECODE_PIXELS = 100_000_000  # decoding more would take gigabytes before any work starts
BYTES_PER_PIXEL = 48  # peak memory of a stylized picture per pixel (measured: 4.4 GB at 100 MP)


def pixel_budget(cap: int = 50_000_000) -> int:
    """The most pixels one picture may be stylized at on this machine: ``cap``, or less where a
    quarter of the available memory would not hold the work (``BYTES_PER_PIXEL``)."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return cap
    return int(max(4_000_000, min(cap, available // 4 // BYTES_PER_PIXEL)))


def read_image(path: Path, max_side: int | None = None, max_pixels: int | None = None) -> np.ndarray:
    """An RGB or RGBA uint8 array, upright (EXIF orientation applied), 8-bit.

    Grey, palette, CMYK and 16-bit images are converted; alpha is kept. The header is checked
    before decoding: a picture that would be stylized at more than ``max_pixels`` (default:
    :func:`pixel_budget`) is refused at once, with the ``--max-side`` that fits. With ``max_side``
    a JPEG is decoded at a reduced scale; other formats are decoded whole (up to
    ``MAX_DECODE_PIXELS``) and then scaled down.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = check_input(path)
    budget = pixel_budget() if max_pixels is None else max_pixels
    try:
        with _opened(path) as im:
            w, h = im.size
            if im.format == "JPEG":
                _check_jpeg_data(path, w, h)
            if max_side and max(w, h) > max_side and im.format == "JPEG":
                im.draft(im.mode, (max(1, w * max_side // max(w, h)), max(1, h * max_side // max(w, h))))
                w, h = im.size
            _check_pixels(path, w, h, max_side, budget, im.format)
            im.load()
            im = ImageOps.exif_transpose(im)
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        reason = "not an image" if isinstance(e, UnidentifiedImageError) else f"cannot decode ({e})"
        raise InputError(f"{path}: {reason}") from None
    return to_rgb8(im, max_side)


@contextlib.contextmanager
def _opened(path: Path):
    """A PIL image opened lazily (header only) with Pillow's own pixel limit and its two-line
    DecompressionBombWarning off: this module's limits are the ones that apply, in one line."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = None
        with Image.open(path) as im:
            yield im


def _check_jpeg_data(path: Path, w: int, h: int) -> None:
    """A JPEG whose data ran out before its header's pixels (a damaged file, or a header that lies)
    is an input error, not a picture: libjpeg fills what is missing with flat grey and only warns.
    A header that promises far more than the file can hold is refused before any decoding (below);
    otherwise the scan is walked at 1/8 scale (every byte parsed, about a fifth of a full decode),
    and a warning that the data ran out or does not decode is the error."""
    _check_jpeg_size(path, w, h)
    import cv2

    with captured_stderr() as said:  # libjpeg writes its warnings straight to file descriptor 2
        cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    bad = [ln for ln in said().splitlines() if "premature end" in ln.lower() or "bad huffman code" in ln.lower()]
    if bad:
        raise InputError(f"{path}: a damaged JPEG: its data runs out or does not decode ({bad[0].strip()})")


@contextlib.contextmanager
def captured_stderr():
    """What is written to file descriptor 2 meanwhile (C libraries too), kept from the terminal:
    yields a function that returns it once the block has ended."""
    sys.stderr.flush()
    saved, said = os.dup(2), []
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            yield lambda: "".join(said)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            said.append(f.read().decode(errors="replace"))


def _check_jpeg_size(path: Path, w: int, h: int) -> None:
    """A JPEG whose header promises more pixels than its data can hold is refused before decoding:
    Huffman coding spends at least one bit on every 8x8 block, so a file of N bytes holds at most
    8N blocks. Arithmetic-coded JPEGs (SOF9-SOF15) have no such floor and are left to the decoder."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
        size = f.seek(0, os.SEEK_END)
    i = 2
    while i + 4 <= len(head) and head[i] == 0xFF:
        marker, length = head[i + 1], int.from_bytes(head[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3):
            blocks = -(-w // 8) * -(-h // 8)
            if blocks > 8 * size:
                raise InputError(f"{path}: a damaged JPEG: its header says {w}x{h}, more than its {size:,} bytes"
                                 " of data can hold")
            return
        if marker == 0xDA:  # start of scan: no frame header before it
            return
        i += 2 + length


def _check_pixels(path: Path, w: int, h: int, max_side: int | None, budget: int, fmt: str | None) -> None:
    scale = min(1.0, max_side / max(w, h)) if max_side else 1.0
    if w * h * scale * scale > budget:
        fit = int((budget * max(w, h) / min(w, h)) ** 0.5) // 8 * 8
        raise InputError(f"{path}: {w}x{h} is over this machine's budget of {budget / 1e6:.0f} MP per picture;"
                         f" pass --max-side {fit} (or less) to stylize it at a reduced size")
    if w * h > MAX_DECODE_PIXELS:
        raise InputError(f"{path}: {w}x{h} is over the {MAX_DECODE_PIXELS // 1_000_000} MP decoding limit"
                         + (f" ({fmt or 'this format'} cannot be decoded at a reduced size; only JPEG can)"
                            if max_side else "") + ": make it smaller first")


def image_header(path: Path) -> tuple[bool, int]:
    """(has transparency, frames) of an image file from its header, without decoding it; an
    animated GIF, WebP or PNG has several frames. (False, 1) when it cannot be read: reading it
    properly reports the problem later, in one line."""
    try:
        with _opened(path) as im:
            alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            return alpha, int(getattr(im, "n_frames", 1))
    except Exception:  # noqa: BLE001
        return False, 1


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


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish(tmp: Path | str, path: Path) -> None:
    """Rename a finished temp file into place with the permissions a plain write would give it
    (mkstemp makes files private to the user whatever the umask)."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def write_error(path: Path, e: OSError) -> InputError:
    """An operating-system failure to write ``path`` as the one line a user can act on."""
    import errno

    code = getattr(e, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return InputError(f"{path}: the disk is full (nothing was written): free some space and try again")
    reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return InputError(f"{path}: cannot write there ({reason})")


def temp_beside(path: Path, suffix: str) -> tuple[int, str]:
    """A new hidden temp file in the target's folder (created if needed): (fd, name)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as e:
        raise write_error(path, e) from None


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp file beside the target, then rename: readers never see half a file."""
    path = Path(path)
    fd, tmp = temp_beside(path, ".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        publish(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(path, e) from None
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


def expand_inputs(items: list[str], suffixes: tuple[str, ...] = IMAGE_SUFFIXES,
                  recursive: bool = False) -> list[Path]:
    """Files, folders (their files with these suffixes, sorted; ``recursive``: in subfolders too)
    and glob patterns -> paths, in order, each once."""
    import glob

    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = p.rglob("*") if recursive else p.iterdir()
            out += sorted(q for q in found if q.suffix.lower() in suffixes and q.is_file())
        elif p.exists():
            out.append(p)
        elif any(c in item for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            if not matches:
                raise InputError(f"{item}: pattern matches no file")
            out += [m for m in matches if m.is_file()]
        else:
            raise InputError(f"{item}: no such file or folder")
    unique: dict[Path, Path] = {}  # a file named twice (a folder and a pattern over it) is one input
    for p in out:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())
