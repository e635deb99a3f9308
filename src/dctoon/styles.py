"""Styles: a head model and a background model, with a model card.

A style folder (built-in ones ship as package data in ``dctoon/builtin/``; downloaded and
imported ones live in ``$DCTOON_HOME/styles``, default ``~/.cache/dctoon/styles``)::

    style.json   model card: name, description, files + SHA-256, guided filter, licence, source
    head.onnx    the head model (aligned 288x288 face crops)
    bg.onnx      the background model (whole frame)
    preview.jpg  optional

``--style`` also accepts a path: one model file (``.onnx``, ``.tflite``, frozen ``.pb``: used for
both head and background), a style folder, or a folder in the official ModelScope layout
(``cartoon_h.pb`` / ``cartoon_bg.pb`` under any name variant such as ``cartoon_anime_h.pb``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import ttn
from .errors import ModelError

BUILTIN_DIR = Path(__file__).parent / "builtin"
CARD = "style.json"
MODEL_SUFFIXES = (".onnx", ".tflite", ".pb")


def home() -> Path:
    return Path(os.environ.get("DCTOON_HOME") or Path.home() / ".cache" / "dctoon")


def user_dir() -> Path:
    return home() / "styles"


@dataclass
class Style:
    name: str
    head: Path
    background: Path
    card: dict = field(default_factory=dict)
    folder: Path | None = None

    @property
    def description(self) -> str:
        return self.card.get("description", "")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _style_from_folder(folder: Path) -> Style:
    card_path = folder / CARD
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text())
            head, bg = folder / card["head"]["file"], folder / card["background"]["file"]
        except (ValueError, KeyError, TypeError):
            raise ModelError(f"{card_path}: not a valid model card") from None
        for p in (head, bg):
            if not p.is_file():
                raise ModelError(f"{folder}: model file {p.name} named in {CARD} is missing")
        return Style(card.get("name", folder.name), head, bg, card, folder)
    files = sorted(p for p in folder.iterdir() if p.suffix in MODEL_SUFFIXES and p.is_file())
    heads = [p for p in files if p.stem.endswith("_h") or p.stem in ("head", "cartoon_h")]
    bgs = [p for p in files if p.stem.endswith("_bg") or p.stem in ("bg", "background")]
    if len(heads) == 1 and len(bgs) == 1:
        return Style(folder.name, heads[0], bgs[0], {"source": str(folder)}, folder)
    generators = [p for p in files if p not in heads + bgs and p.stem not in ("detector", "keypoints")]
    if len(generators) == 1 and not heads and not bgs:
        return Style(folder.name, generators[0], generators[0], {"source": str(folder)}, folder)
    raise ModelError(f"{folder}: no style here: expected {CARD}, or one *_h and one *_bg model "
                     f"(.pb/.tflite/.onnx), or a single model file")


def installed() -> dict[str, Path]:
    """Style name -> folder, user styles shadowing built-in ones of the same name."""
    found: dict[str, Path] = {}
    for root in (BUILTIN_DIR, user_dir()):
        if root.is_dir():
            for d in sorted(root.iterdir()):
                if (d / CARD).is_file():
                    found[d.name] = d
    return found


def resolve(style: str | os.PathLike) -> Style:
    """A style by name (built-in or installed) or by path (file or folder)."""
    s = str(style)
    path = Path(s).expanduser()
    if path.exists():
        if path.is_dir():
            return _style_from_folder(path)
        if path.suffix not in MODEL_SUFFIXES:
            raise ModelError(f"{path}: not a model file (expected {', '.join(MODEL_SUFFIXES)}) or style folder")
        return Style(path.stem, path, path, {"source": str(path)})
    styles = installed()
    if s in styles:
        return _style_from_folder(styles[s])
    if os.sep in s or s.endswith(MODEL_SUFFIXES):
        raise ModelError(f"{s}: no such model file or folder")
    if not styles:
        raise ModelError(f"unknown style '{s}': no style is installed; pass a model file or folder with "
                         "--style PATH (a .onnx, .tflite, or DCT-Net .pb), see `dctoon styles`")
    close = difflib.get_close_matches(s, list(styles), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise ModelError(f"unknown style '{s}': {hint}installed: {', '.join(styles)}")


def default_style() -> str:
    """The style used when none is given: the first built-in one."""
    styles = installed()
    if not styles:
        raise ModelError("no style is installed: pass --style PATH to a model file or folder "
                         "(a .onnx, .tflite, or DCT-Net .pb)")
    return "anime" if "anime" in styles else next(iter(styles))


def save_style(folder: Path, name: str, head: dict[str, np.ndarray], background: dict[str, np.ndarray] | None = None,
               *, description: str, license: str, source: str, training: dict | None = None,
               radius: int = ttn.DEFAULT_RADIUS, eps: float = ttn.DEFAULT_EPS,
               preview: np.ndarray | None = None) -> Path:
    """Write a style folder atomically (built in a temp folder, then renamed into place)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        files = {}
        for role, fname, weights in (("head", "head.onnx", head), ("background", "bg.onnx", background or head)):
            model = ttn.build_onnx(weights, radius, eps, {"style": name, "role": role})
            (tmp / fname).write_bytes(model.SerializeToString())
            files[role] = {"file": fname, "sha256": sha256(tmp / fname)}
        card = {
            "name": name, "description": description, "format": 1, **files,
            "input": "BGR, 0-255 float NHWC; output uint8 BGR",
            "guided_filter": {"radius": radius, "eps": eps},
            "license": license, "source": source, "training": training or {},
        }
        if preview is not None:
            import cv2

            cv2.imwrite(str(tmp / "preview.jpg"), cv2.cvtColor(preview, cv2.COLOR_RGB2BGR))
            card["preview"] = "preview.jpg"
        (tmp / CARD).write_text(json.dumps(card, indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
