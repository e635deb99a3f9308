"""Small helpers shared by the trainers: images on disk, the hold-out split, argparse from dataclasses."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import re
import typing
from pathlib import Path

import numpy as np

from dctoon.errors import InputError, ModelError, describe_range
from dctoon.images import IMAGE_SUFFIXES

SPLIT_FILE = "split.json"
LANDMARKS_FILE = "landmarks.json"


def list_images(folder: Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def name_hash(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def holdout_split(names: list[str], fraction: float = 0.1) -> tuple[list[str], list[str]]:
    """Deterministic (train, eval) split: sort the file names by their SHA-256 and keep the first
    ``ceil(fraction * n)`` for evaluation. Independent of the order files are listed in."""
    ranked = sorted(names, key=lambda n: (name_hash(n), n))
    k = math.ceil(fraction * len(names)) if fraction > 0 else 0
    held = set(ranked[:k])
    return [n for n in sorted(names) if n not in held], sorted(held)


def read_split(folder: Path) -> dict | None:
    p = Path(folder) / SPLIT_FILE
    return json.loads(p.read_text()) if p.exists() else None


def dataset_files(folder: Path, part: str = "train", holdout: float = 0.0) -> list[Path]:
    """Image files of a folder. A prepared folder (with ``split.json``) gives its ``part`` list; a raw
    folder gives everything, or its ``part`` of a ``holdout`` split computed on the fly."""
    folder = Path(folder)
    split = read_split(folder)
    if split is not None and part in split:
        return [folder / n for n in split[part]]
    files = list_images(folder)
    if holdout > 0:
        names = [str(p.relative_to(folder)) for p in files]
        train, held = holdout_split(names, holdout)
        keep = set(train if part == "train" else held)
        files = [p for p, n in zip(files, names) if n in keep]
    return files


def read_bgr(path: Path, size: int | None = None) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:  # a user's file, not a fault of the trainer: one line, exit 2
        raise InputError(f"{path}: not a readable image")
    return img if size is None else square(img, size)


def square(img: np.ndarray, size: int) -> np.ndarray:
    """The centre square of an image at ``size`` x ``size`` (area-averaged down, cubic up)."""
    import cv2

    if img.shape[:2] == (size, size):
        return img
    img = center_square(img)
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


def center_square(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return img[y:y + s, x:x + s]


def save_checkpoint(state: dict, path: Path) -> Path:
    """``torch.save`` to a temp file, then rename: a kill mid-write never leaves half a checkpoint."""
    import os

    import torch

    tmp = Path(path).with_suffix(".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)  # a run's folder is made at its first write, not at its start
    torch.save(state, tmp)
    os.replace(tmp, path)
    return Path(path)


def load_checkpoint(path: Path, device="cpu", needs: tuple[str, ...] = ("G",)) -> dict:
    """A checkpoint as tensors and plain data only (``weights_only``): a shared ``.pt`` file is a
    pickle, and a pickled object could run code when loaded, so one is refused in one line, as is a
    file that is not a checkpoint or lacks the ``needs`` entries."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # rosinality's training args: data only
            st = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - whatever the unpickler meets, the file is at fault
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found:
            raise ModelError(f"{path}: refused: the checkpoint holds a Python object ({found.group(1)}), which could"
                             " run code when loaded; only tensors and plain data are loaded") from None
        boilerplate = ("Weights only load failed", "Check the documentation")  # torch's lines around the reason
        reasons = [ln for ln in str(e).splitlines() if ln.strip() and not ln.startswith(boilerplate)]
        raise ModelError(f"{path}: not a PyTorch checkpoint ({(reasons or [type(e).__name__])[0][:200]})") from None
    missing = [k for k in needs if not isinstance(st, dict) or k not in st]
    if missing:
        raise ModelError(f"{path}: not a dctoon checkpoint (no {', '.join(missing)})")
    return st


def log_step(folder: Path, step: int, elapsed: float, logs: dict[str, float], **extra) -> None:
    """One training step's losses: checked finite, appended to ``folder/log.jsonl`` and printed."""
    if not all(math.isfinite(v) for v in logs.values()):
        raise FloatingPointError(f"non-finite loss at step {step}: {logs}")
    losses = {k: round(v, 5) for k, v in logs.items()}
    line = json.dumps({"step": step, "elapsed_s": round(elapsed, 1), **extra, **losses})
    Path(folder).mkdir(parents=True, exist_ok=True)
    with open(Path(folder) / "log.jsonl", "a") as f:
        f.write(line + "\n")
    print(line, flush=True)


def relative(p: str | None) -> str | None:
    """A path as the model card records it: relative to here when it was absolute."""
    return os.path.relpath(p) if p and os.path.isabs(p) else p


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB (99 for identical ones)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def write_json(path: Path, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


# --------------------------------------------------------------------------------------------
# argparse <-> dataclass, so the CLI can expose every setting with one call


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls) -> argparse.ArgumentParser:
    """One ``--flag`` per dataclass field (underscores become dashes); fields whose metadata has
    ``positional=True`` become positional arguments. Help text comes from ``metadata['help']``, allowed
    values from ``metadata['choices']``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        tp = hints[f.name]
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
            tp = next(a for a in args if a is not type(None))
            origin, args = typing.get_origin(tp), typing.get_args(tp)
        default = None
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        help_text = meta.get("help", "")
        low, high = meta.get("range", (None, None))
        if (low, high) != (None, None):
            help_text += f" ({describe_range(low, high)})"
        if default is not None and not isinstance(default, bool):
            shown = " ".join(map(str, default)) if isinstance(default, (tuple, list)) else default
            help_text += f" (default: {shown})"
        nargs = "+" if origin is list or args[-1:] == (Ellipsis,) else len(args)  # tuple[X, ...]: one or more
        if meta.get("positional"):
            parser.add_argument(f.name, **({"type": args[0], "nargs": nargs} if origin in (tuple, list) else
                                           {"type": tp}), help=help_text)
            continue
        flag = "--" + f.name.replace("_", "-")
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif origin in (tuple, list):
            parser.add_argument(flag, type=args[0], nargs=nargs,
                                default=default, help=help_text, required=bool(meta.get("required")),
                                metavar=meta.get("metavar"), choices=meta.get("choices"))
        else:
            parser.add_argument(flag, type=tp, default=default, help=help_text, required=bool(meta.get("required")),
                                choices=meta.get("choices"))
    return parser


def dataclass_from_args(cls, args: argparse.Namespace):
    values = {}
    for f in dataclasses.fields(cls):
        if hasattr(args, f.name):
            v = getattr(args, f.name)
            if isinstance(v, list) and isinstance(f.default, tuple):
                v = tuple(v)
            values[f.name] = v
    return cls(**values)
