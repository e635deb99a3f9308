"""Every installed style at once: the photo and its cartoon in each style, named, in one picture.
The way a person picks a style (``dctoon image me.jpg --style all``, the web app's "All styles")."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

TILE = 320  # each picture's long side in the grid
LABEL = 30  # the name strip under each picture, px


def all_styles(image: np.ndarray, cartoonizers: dict | None = None, *, settings=None, threads: int = 0,
               tile: int = TILE) -> np.ndarray:
    """An RGB grid: the photo, then ``image`` stylized by each of ``cartoonizers`` (label ->
    Cartoonizer; default: every installed style with ``settings``), each tile named. The photo is
    stylized at twice the tile size: quick, and sharp in the grid."""
    cartoonizers = cartoonizers if cartoonizers is not None else load_all(settings, threads)
    rgb = image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    scale = min(1.0, 2 * tile / max(rgb.shape[:2]))
    if scale < 1:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    rgb = np.ascontiguousarray(rgb)
    tiles = [("photo", rgb)] + [(label, c.stylize(rgb)[..., :3]) for label, c in cartoonizers.items()]
    return grid(tiles, tile)


def load_all(settings=None, threads: int = 0, device: str = "auto") -> dict:
    """Every installed style, loaded: name -> Cartoonizer (the grid sizes the photo itself)."""
    from .pipeline import Cartoonizer, Settings
    from .styles import installed, resolve

    s = dataclasses.replace(settings or Settings(), max_side=None, crop=None)
    return {name: Cartoonizer(resolve(name), s, threads=threads, device=device) for name in installed()}


def grid(tiles: list[tuple[str, np.ndarray]], tile: int = TILE, cols: int | None = None) -> np.ndarray:
    """Named RGB pictures in a grid on white (near-square unless ``cols``), each fitted into ``tile`` px."""
    cols = cols or math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    h0, w0 = tiles[0][1].shape[:2]
    s = tile / max(h0, w0)
    th, tw = max(1, round(h0 * s)), max(1, round(w0 * s))
    out = np.full((rows * (th + LABEL), cols * tw, 3), 255, np.uint8)
    for k, (name, im) in enumerate(tiles):
        y, x = (k // cols) * (th + LABEL), (k % cols) * tw
        out[y:y + th, x:x + tw] = cv2.resize(im, (tw, th), interpolation=cv2.INTER_AREA)
        font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.55
        (text_w, _), _ = cv2.getTextSize(name, font, size, 1)
        cv2.putText(out, name, (x + max(4, (tw - text_w) // 2), y + th + 21), font, size, (30, 30, 30), 1,
                    cv2.LINE_AA)
    return out
