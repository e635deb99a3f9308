"""Person mattes: which part of the picture is stylized, and what goes behind the person.

The person mask comes from :mod:`dctoon.segment`; everything here is plain per-pixel blending on
BGR frames, so photos and video frames share it:

- ``all``: the whole frame stylized (no segmentation; the default);
- ``person``: the person stylized over the original background;
- ``background``: the background stylized, the person left as photographed;
- a *backdrop* (``blur``, a colour, an image, or ``transparent`` for PNG output) replaces what is
  behind a stylized person.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError

PARTS = ("all", "person", "background")


@dataclass(frozen=True)
class Backdrop:
    """What goes behind a stylized person: ``kind`` is blur, color, image or transparent."""

    kind: str
    color: tuple[int, int, int] = (0, 0, 0)  # BGR, for kind == "color"
    image: np.ndarray | None = None          # BGR uint8, for kind == "image"

    def render(self, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The backdrop at the frame's size (BGR uint8); ``transparent`` renders black (alpha carries it)."""
        h, w = original.shape[:2]
        if self.kind == "blur":
            return _blur_behind(original, mask)
        if self.kind == "image":
            return _cover(self.image, w, h)
        return np.full((h, w, 3), self.color if self.kind == "color" else 0, np.uint8)


def parse_backdrop(value: "str | Backdrop") -> Backdrop:
    """``blur``, ``transparent``, a colour (``#1e90ff``, ``1e90ff``, ``white``, ``rgb(0,128,0)``) or an image
    path (a local user's spec: the web app builds its ``Backdrop`` from an upload instead, see
    :func:`image_backdrop`)."""
    if isinstance(value, Backdrop):
        return value
    text = value.strip()
    if text.lower() in ("blur", "transparent"):
        return Backdrop(text.lower())
    path = Path(text).expanduser()
    if path.is_file():
        return image_backdrop(path)
    colour = parse_colour(text)
    if colour is None:
        raise InputError(f"--backdrop {value!r}: not 'blur', 'transparent', a colour (#RRGGBB or a name) "
                         "or an existing image file")
    return colour


def parse_colour(text: str) -> Backdrop | None:
    """A colour backdrop from ``#1e90ff``, ``1e90ff``, ``white`` or ``rgb(0,128,0)``; None if it is not one."""
    from PIL import ImageColor

    for candidate in (text.strip(), "#" + text.strip()):
        try:
            r, g, b = ImageColor.getrgb(candidate)[:3]
            return Backdrop("color", color=(b, g, r))
        except ValueError:
            continue
    return None


def image_backdrop(path: Path) -> Backdrop:
    from .images import read_image

    rgb = read_image(path)
    return Backdrop("image", image=np.ascontiguousarray(rgb[..., 2::-1]))


def check_part(part: str, backdrop: Backdrop | None) -> None:
    if part not in PARTS:
        raise InputError(f"unknown part {part!r}: choose one of {', '.join(PARTS)}")
    if part == "background" and backdrop is not None:
        raise InputError("--backdrop replaces the background, --part background stylizes it: choose one")


def needs_mask(part: str, backdrop: Backdrop | None) -> bool:
    return part != "all" or backdrop is not None


def blend(original: np.ndarray, stylized: np.ndarray, mask: np.ndarray, part: str,
          backdrop: Backdrop | None) -> np.ndarray:
    """Combine the photo and its stylized version by the person mask (float HxW in [0, 1]).

    Returns BGR uint8, or BGRA when the backdrop is ``transparent`` (alpha = the mask).
    """
    m = mask.astype(np.float32)[..., None]
    if backdrop is not None:
        fg, bg = stylized, backdrop.render(original, mask)
    elif part == "person":
        fg, bg = stylized, original
    elif part == "background":
        fg, bg = original, stylized
    else:
        return stylized
    out = np.clip(m * fg + (1.0 - m) * bg + 0.5, 0, 255).astype(np.uint8)
    if backdrop is not None and backdrop.kind == "transparent":
        alpha = np.clip(mask * 255.0 + 0.5, 0, 255).astype(np.uint8)
        out = np.concatenate([stylized, alpha[..., None]], axis=2)
    return out


def _blur_behind(bgr: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A strong lens-like blur of the background alone: the person is masked out before blurring
    (normalised convolution), so no halo of the person bleeds into the backdrop."""
    h, w = bgr.shape[:2]
    sigma = max(2.0, 0.02 * float(np.hypot(h, w)))
    step = max(1, int(sigma / 4))  # blur at reduced size: the same look at a fraction of the cost
    size, s = (max(1, w // step), max(1, h // step)), sigma / step
    img = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    keep = cv2.resize(1.0 - mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)[..., None]
    num = cv2.GaussianBlur(img * keep, (0, 0), s)
    den = cv2.GaussianBlur(keep, (0, 0), s)[..., None]
    out = np.where(den > 1e-3, num / np.maximum(den, 1e-3), cv2.GaussianBlur(img, (0, 0), s))
    return np.clip(cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR) + 0.5, 0, 255).astype(np.uint8)


def _cover(image: np.ndarray, w: int, h: int) -> np.ndarray:
    """``image`` scaled to cover w x h and centre-cropped (no distortion, no bars)."""
    ih, iw = image.shape[:2]
    s = max(w / iw, h / ih)
    nw, nh = max(w, round(iw * s)), max(h, round(ih * s))
    scaled = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    x, y = (nw - w) // 2, (nh - h) // 2
    return np.ascontiguousarray(scaled[y:y + h, x:x + w])
