"""Styles: a head model and a background model, with a model card; and the catalogue of them.

The catalogue has three kinds of style:

- **built-in**: package data in ``dctoon/builtin/<name>/`` (trained by this project);
- **official**: the seven DCT-Net compound models on ModelScope (``modelscope-anime`` ...), known by
  model id and revision, installed by ``dctoon styles download NAME`` (or imported from a local
  ModelScope cache) and converted once to the project's format, so they then work offline without
  TensorFlow;
- **user**: anything imported with ``dctoon styles import PATH --name NAME``.

Downloaded and imported styles live in ``$DCTOON_HOME/styles`` (default ``~/.cache/dctoon/styles``),
one folder per style::

    style.json   model card: name, description, files + SHA-256, input convention, guided filter,
                 licence, source (and origin: model id, revision, original files + SHA-256)
    head.onnx    the head model (aligned 288x288 face crops)
    bg.onnx      the background model (whole frame)
    model.onnx   in place of both, when one network (and one guided filter) serves as head and background
    preview.jpg  optional

The ``.onnx`` files are our own graphs (``network.build_onnx``); trained styles store their weights in fp16.

``--style`` also accepts a path: one model file (``.onnx``, ``.tflite``, frozen ``.pb``: used for
both head and background), a style folder, or a folder in the official ModelScope layout
(``cartoon_h.pb`` / ``cartoon_bg.pb`` under any name variant such as ``cartoon_anime_h.pb``).
"""

from __future__ import annotations

import difflib
import errno
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import network
from .assets import Asset, of_kind
from .errors import ModelError
from .download import file_sha256
from .paths import downloads_dir
from .paths import styles_dir as user_dir
from .runtime import session

if TYPE_CHECKING:
    from .importers import ImportedTTN

BUILTIN_DIR = Path(__file__).parent / "builtin"
CARD = "style.json"
MODEL_SUFFIXES = (".onnx", ".tflite", ".pb")
IGNORED_STEMS = ("detector", "keypoints")  # the official face detector / landmark graphs: not styles
MAX_MIX = 8  # parts of a style mixture: each is its own pair of models in memory (20 parts: 1.9 GB)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class Style:
    name: str
    head: Path
    background: Path
    card: dict = field(default_factory=dict)
    folder: Path | None = None
    mix: tuple = ()  # ((Style, weight), ...) for a mixture of styles ("anime+3d:0.3")

    @property
    def description(self) -> str:
        return self.card.get("description", "")


# --------------------------------------------------------------------------------------------
# The official DCT-Net compound models on ModelScope


OFFICIAL: dict[str, Asset] = of_kind("style")  # name -> the registry's entry


def _official_for_folder(folder: Path) -> Asset | None:
    """The official entry whose model id names this folder (ModelScope cache layouts)."""
    n = folder.name.replace("___", ".")
    return next((o for o in OFFICIAL.values() if o.model_id.split("/")[1] == n), None)


# --------------------------------------------------------------------------------------------
# Style folders and files


def _role(path: str) -> str | None:
    """'head', 'background' or None for a model file name (any of the official naming variants)."""
    p = Path(path)
    if p.suffix not in MODEL_SUFFIXES or p.stem in IGNORED_STEMS:
        return None
    if p.stem.endswith("_h") or p.stem in ("head", "h"):
        return "head"
    if p.stem.endswith("_bg") or p.stem in ("bg", "background"):
        return "background"
    return None


def pick_graphs(names: list[str], where: str) -> tuple[str, str]:
    """The head and background model among file names: exactly one of each (top level preferred)."""
    picked = []
    for role in ("head", "background"):
        found = [n for n in names if _role(n) == role]
        top = [n for n in found if "/" not in n]
        found = top or found
        if len(found) != 1:
            label = "*_h (head)" if role == "head" else "*_bg (background)"
            if not found:
                raise ModelError(f"{where}: no {label} model found (expected e.g. cartoon_h.pb and cartoon_bg.pb)")
            raise ModelError(f"{where}: several {label} models ({', '.join(sorted(found))}): import one file at a time")
        picked.append(found[0])
    return picked[0], picked[1]


def _style_from_folder(folder: Path) -> Style:
    card_path = folder / CARD
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text())
            head, bg = (_card_file(folder, card[role]) for role in ("head", "background"))
        except (ValueError, KeyError, TypeError):
            raise ModelError(f"{card_path}: not a valid model card") from None
        return Style(card.get("name", folder.name), head, bg, card, folder)
    files = sorted(p for p in folder.iterdir() if p.suffix in MODEL_SUFFIXES and p.is_file())
    roles = [_role(p.name) for p in files]
    if "head" in roles or "background" in roles:
        h, b = pick_graphs([p.name for p in files], str(folder))
        return Style(folder.name, folder / h, folder / b, {"source": str(folder)}, folder)
    generators = [p for p in files if p.stem not in IGNORED_STEMS]
    if len(generators) == 1:
        return Style(folder.name, generators[0], generators[0], {"source": str(folder)}, folder)
    raise ModelError(f"{folder}: no style here: expected {CARD}, or one *_h and one *_bg model "
                     f"(.pb/.tflite/.onnx), or a single model file")


def _card_file(folder: Path, entry: dict) -> Path:
    """A model file a card names: a file inside the style folder whose SHA-256 is the card's.

    A card is data from wherever the style came from: a name that leaves the folder (``..``, an
    absolute path, a link out) is refused, and so is a file that is not the one the card was written
    for (hashing a few MB is cheap next to loading the model)."""
    name = entry["file"]
    if not isinstance(name, str) or not name:
        raise TypeError("file")
    root = folder.resolve()
    path = (folder / name).resolve()
    if Path(name).is_absolute() or not path.is_relative_to(root) or path == root:
        raise ModelError(f"{folder / CARD}: model file {name!r} is outside the style folder: refused")
    if not path.is_file():
        raise ModelError(f"{folder}: model file {name} named in {CARD} is missing")
    want = entry.get("sha256")
    if want is not None and file_sha256(path) != want:
        raise ModelError(f"{folder}: {name} does not match the SHA-256 in {CARD} (changed or damaged):"
                         " reinstall the style")
    return folder / name


def _styles_in(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        return {}
    return {d.name: d for d in sorted(root.iterdir())
            if not d.name.startswith(".") and (d / CARD).is_file()}


def builtin() -> dict[str, Path]:
    """Style name -> folder of the styles shipped inside the package."""
    return _styles_in(BUILTIN_DIR)


def installed() -> dict[str, Path]:
    """Style name -> folder, user styles shadowing built-in ones of the same name."""
    return {**builtin(), **_styles_in(user_dir())}


def _suggest(s: str, names) -> str:
    close = difflib.get_close_matches(s, list(names), n=3, cutoff=0.5)
    if not close:  # 'anime' -> 'modelscope-anime': match on the part after a prefix too
        close = [n for n in names if n.split("-", 1)[-1] == s or s in n][:3]
    return f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""


def parse_mix(spec: str) -> list[tuple[str, float]]:
    """``a+b:0.3`` -> [(a, 0.7), (b, 0.3)]: styles joined by ``+``, each with an optional ``:weight``;
    those without one share what the others leave, so the weights sum to 1."""
    items = spec.split("+")
    if len(items) > MAX_MIX:  # every part is its own pair of loaded models
        raise ModelError(f"style mix of {len(items)} parts: at most {MAX_MIX}")
    parts = []
    for item in items:
        name, _, w = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
        try:
            weight = float(w) if w else None
        except ValueError:
            raise ModelError(f"style mix {spec!r}: {w!r} is not a weight (use NAME:0.3)") from None
        if not name or (weight is not None and not 0.0 < weight <= 1.0):
            raise ModelError(f"style mix {spec!r}: each part is NAME or NAME:WEIGHT with 0 < WEIGHT <= 1")
        parts.append((name, weight))
    given = sum(w for _, w in parts if w is not None)
    free = [n for n, w in parts if w is None]
    if given > 1.0 + 1e-6:
        raise ModelError(f"style mix {spec!r}: the weights add up to more than 1")
    rest = (1.0 - given) / len(free) if free else 0.0
    weights = [(n, rest if w is None else w) for n, w in parts]
    total = sum(w for _, w in weights)
    if total <= 0:
        raise ModelError(f"style mix {spec!r}: the weights leave nothing")
    return [(n, w / total) for n, w in weights]


def resolve(style: str | os.PathLike) -> Style:
    """A style by name (built-in or installed) or by path (file or folder), or a mixture of them
    (``anime+3d:0.3``, see :func:`parse_mix`)."""
    s = str(style)
    path = Path(s).expanduser()
    if "+" in s and not _exists(path):
        parts = [(resolve(name), w) for name, w in parse_mix(s)]
        first = parts[0][0]
        name = "+".join(st.name for st, _ in parts)
        card = {"description": "a mixture of " + ", ".join(f"{st.name} {w:.0%}" for st, w in parts)}
        return Style(name, first.head, first.background, card, None, tuple(parts))
    if _exists(path):
        if path.is_dir():
            return _style_from_folder(path)
        if path.suffix not in MODEL_SUFFIXES:
            raise ModelError(f"{path}: not a model file (expected {', '.join(MODEL_SUFFIXES)}) or style folder")
        return Style(path.stem, path, path, {"source": str(path)})
    styles = installed()
    if s in styles:
        return _style_from_folder(styles[s])
    if s in OFFICIAL:
        raise ModelError(f"style '{s}' is not installed: run `dctoon styles download {s}` (needs ModelScope) "
                         f"or `dctoon styles import PATH --name {s}` with a local copy")
    if os.sep in s or s.endswith(MODEL_SUFFIXES):
        raise ModelError(f"{s}: no such model file or folder")
    hint = _suggest(s, [*styles, *OFFICIAL])
    if not styles:
        raise ModelError(f"unknown style '{s}': {hint}no style is installed; pass a model file or folder with "
                         "--style PATH (a .onnx, .tflite, or DCT-Net .pb), see `dctoon styles`")
    raise ModelError(f"unknown style '{s}': {hint}installed: {', '.join(styles)} (see `dctoon styles`)")


def _exists(path: Path) -> bool:
    """Whether a path exists; a name the filesystem cannot hold (a part over 255 bytes) does not."""
    try:
        return path.exists()
    except OSError:
        return False


def default_style() -> str:
    """The style used when none is given: the first built-in one."""
    styles = installed()
    if not styles:
        raise ModelError("no style is installed: run `dctoon styles download modelscope-anime`, or pass "
                         "--style PATH to a model file or folder (a .onnx, .tflite, or DCT-Net .pb)")
    return "anime" if "anime" in styles else next(iter(styles))


def save_style(folder: Path, name: str, head: dict[str, np.ndarray], background: dict[str, np.ndarray] | None = None,
               *, description: str, license: str, source: str, training: dict | None = None,
               radius: int = network.DEFAULT_RADIUS, eps: float = network.DEFAULT_EPS,
               preview: np.ndarray | None = None, background_filter: tuple[int, float] | None = None,
               bands: int = 0, band_sharpness: float = network.DEFAULT_SHARPNESS, extra: dict | None = None,
               single_file: bool = False, half: bool = False, fill_radius: int = 0) -> Path:
    """Write a style folder atomically (built in a temp folder, then renamed into place).

    ``background_filter`` (radius, eps) when the background model's guided filter differs from the
    head's; ``bands``: both models end in tone bands (``network.tone_bands``), ``fill_radius``: in flat
    fills of that radius (``network.flat_fills``); ``extra`` adds fields to
    the model card (e.g. ``origin``); ``single_file``: one ``model.onnx`` serves as head and
    background (one set of weights and filters: half the size on disk); ``half``: the weights stored
    in fp16, as ``train export`` ships them (half the file again; the built-ins' outputs moved by at
    most one level, 63-71 dB), the arithmetic staying fp32. Imports keep fp32: exact to their source.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a style folder is ordinary package or cache data
    try:
        files = {}
        bg_filter = background_filter or (radius, eps)
        roles = (("head", "head.onnx", head, (radius, eps)), ("background", "bg.onnx", background or head, bg_filter))
        if single_file:
            if background is not None or tuple(bg_filter) != (radius, eps):
                raise ValueError("single_file needs one set of weights and one guided filter")
            roles = (("head and background", "model.onnx", head, (radius, eps)),)
        for role, fname, weights, (r, e) in roles:
            model = network.build_onnx(weights, r, e, {"style": name, "role": role}, bands, band_sharpness, half,
                                       fill_radius)
            (tmp / fname).write_bytes(model.SerializeToString())
            files[role] = {"file": fname, "sha256": file_sha256(tmp / fname)}
        if single_file:
            files = {"head": files["head and background"], "background": files["head and background"]}
        if tuple(bg_filter) != (radius, eps):
            files["background"]["guided_filter"] = {"radius": int(bg_filter[0]), "eps": float(bg_filter[1])}
        card = {
            "name": name, "description": description, "format": 1, **files,
            "input": "BGR, 0-255 float NHWC; output uint8 BGR",
            "guided_filter": {"radius": radius, "eps": eps},
            **({"tone_bands": {"levels": int(bands), "sharpness": float(band_sharpness)}} if bands else {}),
            **({"flat_fills": {"radius": int(fill_radius)}} if fill_radius else {}),
            "license": license, "source": source, "training": training or {}, **(extra or {}),
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


# --------------------------------------------------------------------------------------------
# The catalogue


@dataclass
class Entry:
    """One row of the catalogue (for `dctoon styles` and the web app's style picker)."""

    name: str
    kind: str              # "built-in", "official" or "user"
    installed: bool
    description: str
    preview: Path | None   # an image file, or None
    license: str = ""
    source: str = ""
    folder: Path | None = None
    model_id: str | None = None

    @property
    def status(self) -> str:
        if not self.installed:
            return "available"
        return "built-in" if self.kind == "built-in" else "installed"


def _card(folder: Path) -> dict:
    try:
        card = json.loads((folder / CARD).read_text())
        return card if isinstance(card, dict) else {}
    except (OSError, ValueError):
        return {}


def _entry(name: str, folder: Path) -> Entry:
    card = _card(folder)
    off = OFFICIAL.get(name)
    preview = folder / card["preview"] if isinstance(card.get("preview"), str) else None
    kind = "built-in" if folder.parent == BUILTIN_DIR else "official" if off else "user"
    return Entry(name, kind, True, str(card.get("description", off.description if off else "")),
                 preview if preview is not None and preview.is_file() else None, str(card.get("license", "")),
                 str(card.get("source", "")), folder, off.model_id if off else None)


def catalogue() -> list[Entry]:
    """Every style: built-in and installed ones, then the official ones not installed yet."""
    have = installed()
    entries = [_entry(n, d) for n, d in have.items()]
    entries += [Entry(o.name, "official", False, o.description, None, o.license,
                      f"ModelScope {o.model_id} (revision {o.revision})", None, o.model_id)
                for o in OFFICIAL.values() if o.name not in have]
    order = {"built-in": 0, "official": 1, "user": 2}
    rank = {o.name: i for i, o in enumerate(OFFICIAL.values())}
    return sorted(entries, key=lambda e: (order[e.kind], rank.get(e.name, 0), e.name))


def training_summary(training: dict) -> str:
    """One line of a model card's training record: how, from what, how long, and how good."""
    parts = [str(training.get("trainer", "")).split(" (")[0]]
    if training.get("teacher"):
        parts.append(f"distilled from {training['teacher']}")
    student = training.get("student")
    if isinstance(student, dict):
        parts.append(f"c={student.get('channel')}/{student.get('num_blocks')} blocks,"
                     f" {student.get('mac_per_px', 0):,} MAC/px")
    if "steps" in training:
        parts.append(f"{training['steps']:,} steps")
    if training.get("wall_time_s"):
        parts.append(f"{training['wall_time_s'] / 3600:.1f} h on {training.get('hardware', '?')}")
    metrics = training.get("metrics")
    if isinstance(metrics, dict) and isinstance(metrics.get("summary"), str):
        parts.append(metrics["summary"])
    return "; ".join(p for p in parts if p)


def info(name: str) -> dict:
    """The model card of an installed style, or what is known of an official one before download."""
    have = installed()
    if name in have:
        card = dict(_card(have[name]))
        card.setdefault("name", name)
        card["installed"] = True
        card["folder"] = str(have[name])
        return card
    if name in OFFICIAL:
        o = OFFICIAL[name]
        return {"name": o.name, "description": o.description, "installed": False, "license": o.license,
                "source": f"ModelScope {o.model_id} (revision {o.revision})", "url": o.url,
                "model_id": o.model_id, "revision": o.revision,
                "known_sha256": dict(o.sha256), "input": "BGR, 0-255 float HWC (official frozen TF graphs)",
                "how": f"dctoon styles download {o.name}"}
    style = resolve(name)  # a path; or raises the unknown-name error with suggestions
    return {"name": style.name, "installed": False, "path": str(name), "head": str(style.head),
            "background": str(style.background), **style.card}


# --------------------------------------------------------------------------------------------
# Install: import, download, remove


def _check_name(name: str) -> None:
    if not NAME_RE.match(name or ""):
        raise ModelError(f"invalid style name {name!r}: use letters, digits, '.', '_' or '-' "
                         "(at most 64, starting with a letter or digit)")
    have = installed()
    same = next((n for n in have if n.lower() == name.lower()), None)  # case-insensitive file systems
    if same is not None:
        name = same
        where = "a built-in style" if have[name].parent == BUILTIN_DIR else f"installed at {have[name]}"
        raise ModelError(f"a style named '{name}' already exists ({where}): choose another --name"
                         + ("" if have[name].parent == BUILTIN_DIR else f" or `dctoon styles remove {name}` first"))


def _preview(model: ImportedTTN) -> np.ndarray | None:
    """The style on the bundled astronaut portrait's face (scikit-image, public domain), RGB."""
    try:
        from skimage import data

        crop = np.ascontiguousarray(data.astronaut()[16:272, 124:380, ::-1])
        sess = session(model.onnx().SerializeToString(), 1)
        out = sess.run([network.OUTPUT_NAME], {network.INPUT_NAME: crop[None].astype(np.float32)})[0][0]
        return np.ascontiguousarray(out[..., ::-1])
    except Exception:  # a preview is a nicety: never fail an install for it
        return None


def _write_style(name: str, head: Path, background: Path, *, description: str, license: str, source: str,
                 extra: dict, training: dict | None = None, preview: bool = True) -> Path:
    """Convert a head and a background model (any supported format) into a user style folder."""
    from .importers import read_any

    h = read_any(head)
    b = h if Path(background) == Path(head) else read_any(background)
    dest = user_dir() / name
    try:
        return save_style(dest, name, h.weights, b.weights, description=description, license=license,
                          source=source, training=training, radius=h.radius, eps=h.eps,
                          background_filter=(b.radius, b.eps), bands=h.bands, band_sharpness=h.band_sharpness,
                          fill_radius=h.fill_radius, preview=_preview(h) if preview else None, extra=extra)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ModelError(f"disk full while writing style '{name}' to {dest.parent}: free some space "
                             "and try again (nothing was installed)") from None
        raise ModelError(f"cannot write style '{name}' to {dest.parent}: {e.strerror or e}") from None


def _files_card(*paths: Path) -> dict:
    return {p.name: {"sha256": file_sha256(p), "size": p.stat().st_size} for p in dict.fromkeys(paths)}


def import_style(path: str | os.PathLike, name: str | None = None, *, preview: bool = True) -> Path:
    """Convert a model file or folder (style folder, official ModelScope layout, local ModelScope
    cache; or an official style's name: found in the ModelScope cache) into a user style."""
    from . import modelscope

    src = Path(path).expanduser()
    off = None
    if not src.exists():
        if str(path) in OFFICIAL:
            off = OFFICIAL[str(path)]
            found = modelscope.find_local(off.model_id)
            if found is None:
                raise ModelError(f"no local ModelScope copy of {off.model_id} found under "
                                 f"{modelscope.cache_roots()[0]}: run `dctoon styles download {off.name}` instead")
            src = found
        else:
            raise ModelError(f"{src}: no such file or folder")
    if src.is_dir():
        off = off or _official_for_folder(src)
        style = _style_from_folder(src)
    elif src.suffix in MODEL_SUFFIXES:
        style = Style(src.stem, src, src, {})
    else:
        raise ModelError(f"{src}: not a model file (expected {', '.join(MODEL_SUFFIXES)}) or folder")
    if not name:
        name = off.name if off else str(style.card.get("name") or (src.name if src.is_dir() else src.stem))
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._") or "imported"
    _check_name(name)
    card = style.card if (src / CARD).is_file() else {}
    origin = {"imported_from": str(src.resolve()), "files": _files_card(style.head, style.background)}
    if off:
        origin.update(model_id=off.model_id, revision=off.revision)
    return _write_style(
        name, style.head, style.background,
        description=card.get("description") or (off.description if off else f"imported from {src.name}"),
        license=card.get("license") or (off.license if off else "unknown (see the source)"),
        source=card.get("source") or (f"ModelScope {off.model_id}, imported from a local copy" if off
                                      else str(src.resolve())),
        training=card.get("training"), extra={"origin": origin}, preview=preview)


def download(name: str, endpoint: str | None = None, *, revision: str | None = None,
             progress: bool | None = None, preview: bool = True) -> Path:
    """Download an official style from ModelScope, convert it, and install it (atomically)."""
    from . import modelscope

    if name not in OFFICIAL:
        have = installed()
        if name in have:
            raise ModelError(f"'{name}' is not a ModelScope style (it is already installed at {have[name]}); "
                             f"downloadable: {', '.join(OFFICIAL)}")
        raise ModelError(f"unknown style '{name}': {_suggest(name, OFFICIAL)}downloadable: {', '.join(OFFICIAL)}")
    o = OFFICIAL[name]
    dest = user_dir() / name
    if (dest / CARD).is_file():
        return dest
    rev = revision or o.revision
    base = modelscope.endpoint(endpoint)
    remote = {f.path: f for f in modelscope.list_files(o.model_id, rev, base)}
    head_path, bg_path = pick_graphs(list(remote), f"{o.model_id} on {base}")
    known = dict(o.sha256) if rev == o.revision else {}
    sizes = dict(o.size) if rev == o.revision else {}
    work = downloads_dir() / o.model_id.replace("/", "--") / rev
    local = {}
    for role, path in (("head", head_path), ("background", bg_path)):
        f = remote[path]
        if f.size is None and role in sizes:
            f.size = sizes[role]
        expect = (known[role],) if role in known else ()
        local[role] = modelscope.fetch(o.model_id, rev, f, work / path, base=base, sha256=expect, progress=progress)
    origin = {"model_id": o.model_id, "revision": rev, "endpoint": base, "url": o.url,
              "files": {p: {"sha256": file_sha256(local[r]), "size": local[r].stat().st_size}
                        for r, p in (("head", head_path), ("background", bg_path))}}
    try:
        out = _write_style(name, local["head"], local["background"], description=o.description, license=o.license,
                           source=f"ModelScope {o.model_id} (revision {rev}), converted by dctoon",
                           extra={"origin": origin}, preview=preview)
    except ModelError as e:
        shutil.rmtree(work, ignore_errors=True)  # verified but unusable: nothing to resume
        raise ModelError(f"{o.model_id}: downloaded files cannot be used: {e}") from None
    shutil.rmtree(work, ignore_errors=True)
    _prune(downloads_dir())
    return out


def _prune(root: Path) -> None:
    """Remove empty folders left under the downloads folder."""
    if not root.is_dir():
        return
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()
        except OSError:
            pass
    try:
        root.rmdir()
    except OSError:
        pass


def remove(name: str) -> Path:
    """Remove a downloaded or imported style (and any partial download of it)."""
    folder = user_dir() / name
    partial = downloads_dir() / OFFICIAL[name].model_id.replace("/", "--") if name in OFFICIAL else None
    if NAME_RE.match(name) and (folder / CARD).is_file():
        trash = Path(tempfile.mkdtemp(prefix=f".{name}.removing.", dir=folder.parent))
        os.replace(folder, trash / name)  # atomic: the style disappears at once
        shutil.rmtree(trash, ignore_errors=True)
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
            _prune(downloads_dir())
        return folder
    if partial is not None and partial.exists():
        shutil.rmtree(partial, ignore_errors=True)
        _prune(downloads_dir())
        return partial
    if name in builtin():
        raise ModelError(f"'{name}' is a built-in style: it cannot be removed")
    if name in OFFICIAL:
        raise ModelError(f"style '{name}' is not installed")
    raise ModelError(f"unknown style '{name}': {_suggest(name, [*installed(), *OFFICIAL])}nothing removed")
