"""Output names, decided before any work: ``NAME_STYLE.EXT`` beside each other in a folder, an
earlier file never overwritten (a new one is numbered), an output never an input. The CLI and
batch mode name their outputs the same way."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .errors import InputError
from .images import IMAGE_SUFFIXES, temp_beside


SIDE_BY_SIDE = "_side-by-side"  # in the name of an input | output picture or video: it says what it is


def image_name(src: Path, style: str, alpha: bool, side_by_side: bool = False) -> str:
    """The image format of the input where it can hold the result (alpha needs PNG or WebP)."""
    ext = src.suffix.lower() if src.suffix.lower() in IMAGE_SUFFIXES else ".png"
    if alpha and ext in (".jpg", ".jpeg", ".bmp"):
        ext = ".png"
    return f"{src.stem}_{style}{SIDE_BY_SIDE if side_by_side else ''}{ext}"


def unused(path: Path, taken=()) -> Path:
    """``path``, or ``NAME-2.EXT``, ``NAME-3.EXT``, ... when an earlier output is there (or the name
    is in ``taken``): never overwritten."""
    n, candidate = 1, path
    while candidate.exists() or candidate in taken:
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def fresh_folder(path: Path) -> Path:
    """A new, empty folder: ``path``, or ``PATH-2``, ``PATH-3``, ... when that one exists. Made here,
    so what goes in it never meets an earlier run's files (two runs at once get two folders)."""
    path = path if path.name else path.resolve()
    n, candidate = 1, path
    while True:
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            n += 1
            candidate = path.with_name(f"{path.name}-{n}")
        except OSError as e:
            raise InputError(f"{candidate}: cannot make the folder ({e.strerror or e})") from None


def plan_outputs(paths: list[Path], out: Path | None, name: Callable[[Path], str], suffixes,
                 what: str) -> list[Path]:
    """Every output name, decided before any work: one input with ``-o NAME.EXT`` (an extension in
    ``suffixes``) is that file, which must not exist yet; otherwise ``-o`` is a folder (default: here)
    of ``name(input)``, an earlier output there kept by numbering the new one. Clashes (an output that
    is an input, two outputs with one name) are refused in one line."""
    as_file = out is not None and not out.is_dir() and out.suffix.lower() in suffixes
    if len(paths) == 1 and out is not None and not out.exists() and out.suffix and not as_file:
        raise InputError(f"-o {out}: '{out.suffix}' is not a format for {what} (use one of {', '.join(suffixes)}),"
                         " and a new folder is not made from a name with an extension")
    if len(paths) > 1 and out is not None and (as_file or out.is_file()):
        raise InputError(f"-o {out}: {len(paths)} inputs need an output folder, not a file name")
    if out is not None and out.is_file() and not as_file:
        raise InputError(f"-o {out}: a file that is not {what}; name {what} file or a folder")
    inputs = {p.resolve(): p for p in paths}
    plan: list[Path] = []
    taken: dict[Path, Path] = {}
    for src in paths:
        if as_file:
            dst = out
            if dst.exists() and dst.resolve() not in inputs:
                raise InputError(f"{dst} exists: choose another output name or remove it (nothing is overwritten)")
        else:
            dst = (out or Path(".")) / name(src)
            if dst.resolve() not in inputs:
                dst = unused(dst)
        key = dst.resolve()
        if key in inputs:
            raise InputError(f"{dst} is an input: its output would overwrite it; choose another -o folder")
        if key in taken:
            raise InputError(f"{taken[key]} and {src} would both be written to {dst}: stylize them into"
                             " separate -o folders")
        taken[key] = src
        plan.append(dst)
    for folder in {dst.parent: dst for dst in plan}.values():
        _check_writable(folder)
    return plan


def _check_writable(dst: Path) -> None:
    """A temp file made and removed in ``dst``'s folder, or in the nearest folder above it that exists
    when it is still to be made (at the first output: a run that fails leaves no empty folder behind):
    a place that cannot be written is refused before any work, not after the stylizing."""
    existing = dst.parent.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{dst.parent}: cannot write there ({existing} is a file)")
    fd, tmp = temp_beside(existing / "probe", ".tmp")
    os.close(fd)
    os.unlink(tmp)


def video_name(src: Path, style: str, side_by_side: bool = False) -> str:
    return f"{src.stem}_{style}{SIDE_BY_SIDE if side_by_side else ''}.mp4"
