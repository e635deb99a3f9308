"""``dctoon batch``: many images and videos through the same pipeline on Ray, from a laptop to a
cluster (the ``dctoon[ray]`` extra).

- Images go through Ray Data: ``map_batches`` with :class:`ImageWorker`, one loaded
  :class:`~dctoon.Cartoonizer` per actor.
- Videos are Ray tasks. A long one is cut at keyframes into pieces of about ``segment`` seconds;
  each piece is stylized with ``warmup`` seconds before it (tracking and blending are settled at the
  seam) and without audio, then the pieces are joined by stream copy with the source's audio muxed
  once (:func:`dctoon.video.join_pieces`).
- Inputs and outputs are paths every worker can see (one machine, or a shared filesystem on a
  cluster): workers read and write the files themselves; only a status line per item comes back to
  the driver.
- Nothing is lost. ``DIR/batch.json`` records every item (input, output, status, error, seconds,
  size, sha256). A re-run skips outputs whose size and checksum match it, and reuses the finished
  pieces of a video. Ctrl-C stops cleanly and the next run resumes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .download import file_sha256
from .errors import DctoonError, InputError
from .images import IMAGE_SUFFIXES, atomic_write, captured_stderr, expand_inputs
from .outputs import image_name, unused, video_name
from .pipeline import Settings
from .runtime import CPU_DEVICES, cpu_device
from .video.reader import VIDEO_SUFFIXES
from .video.writer import remove_stale_partials

MANIFEST = "batch.json"
PIECES = ".dctoon-pieces"  # the pieces of videos in progress, inside the output folder
LOCK = ".dctoon-batch.lock"  # held by the run writing into the folder; holds its pid


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs. ``workers``: models loaded at once (0: one per CPU of the cluster); each
    gets an equal share of the cluster's CPUs for its onnxruntime threads."""

    style: str | None = None
    settings: Settings = field(default_factory=Settings)
    workers: int = 0
    threads: int = 0            # onnxruntime threads per worker (0: its share of the CPUs)
    device: str = "auto"        # where the style models run (runtime.DEVICES); GPUs are shared among workers
    retries: int = 2            # more tries for an item that failed (bad input is not retried)
    segment: float = 10.0       # seconds per video piece (cut at the next keyframe)
    warmup: float = 1.0         # seconds before a piece stylized, not written: no jump at the seam
    crf: int = 20
    preset: str = "veryfast"
    address: str | None = None  # an existing Ray cluster ("auto", "HOST:PORT"); None starts a local one


@dataclass
class Item:
    src: Path
    dst: Path
    kind: str  # "image" or "video"
    frames: int = 1


@dataclass
class Report:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    interrupted: bool = False
    items: list[dict] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# What to do: inputs, output names, the manifest


def collect(inputs: list[str]) -> list[Path]:
    """Files, folders (searched recursively), globs and lists (``.txt``/``.csv``: one path per line,
    the first column; relative to the list's folder) -> image and video paths, each once."""
    suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES
    items: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_file() and p.suffix.lower() in (".txt", ".csv"):
            items += [str(p.parent / q) for q in _listed(p)]
        else:
            items.append(item)
    return expand_inputs(items, suffixes, recursive=True)


def _listed(path: Path) -> list[str]:
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and r[0].strip() and not r[0].startswith("#")]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: cannot read the list ({e})") from None
    if rows and rows[0][0].strip().lower() in ("path", "input", "file"):  # a CSV header
        rows = rows[1:]
    return [r[0].strip() for r in rows]


class Manifest:
    """``DIR/batch.json``: input -> {output, status, error, seconds, size, sha256, style}, saved
    atomically (at most once a second while running, and at the end)."""

    def __init__(self, folder: Path):
        self.path = folder / MANIFEST
        self.items: dict[str, dict] = {}
        self._saved = 0.0
        if self.path.is_file():
            try:
                self.items = json.loads(self.path.read_text())["items"]
            except (OSError, ValueError, KeyError, TypeError):
                raise InputError(f"{self.path}: not a dctoon batch manifest; choose another output folder") from None

    def finished(self, src: Path, style: str) -> bool:
        """Whether ``src`` has an output from this style whose size and checksum still match."""
        e = self.items.get(str(src))
        if not e or e.get("status") != "done" or e.get("style") != style:
            return False
        dst = Path(e["output"])
        return dst.is_file() and dst.stat().st_size == e.get("size") and file_sha256(dst) == e.get("sha256")

    def adopt(self, src: Path, style: str, kind: str) -> bool:
        """A ``pending`` item whose output exists finished after the manifest was last saved (a
        killed run): outputs appear only by an atomic rename, so it is whole. Recorded as done."""
        e = self.items.get(str(src))
        if not e or e.get("status") != "pending" or e.get("style") != style or not Path(e["output"]).is_file():
            return False
        self.record(_entry(src, e["output"], style, time.monotonic(), None, kind, e.get("frames", 1)))
        return True

    def record(self, entry: dict, force: bool = False) -> None:
        self.items[entry["input"]] = entry
        if force or time.monotonic() - self._saved > 1.0:
            self.save()

    def save(self) -> None:
        atomic_write(self.path, json.dumps({"version": 1, "items": self.items}, indent=1).encode())
        self._saved = time.monotonic()


def plan(paths: list[Path], out: Path, style: str, manifest: Manifest, alpha: bool) -> tuple[list[Item], int]:
    """Items still to do, named as ``dctoon image``/``video`` name them in ``out`` (a name that is
    taken, by an earlier file or another input, is numbered), and how many are finished already."""
    from .video import probe

    items, skipped, taken = [], 0, set()
    for src in paths:
        src = src.resolve()
        kind = "video" if src.suffix.lower() in VIDEO_SUFFIXES else "image"
        if manifest.finished(src, style) or manifest.adopt(src, style, kind):
            skipped += 1
            continue
        e = manifest.items.get(str(src), {})
        mine = e.get("style") == style and e.get("output") and not Path(e["output"]).exists()
        name = video_name(src, style) if kind == "video" else image_name(src, style, alpha)
        dst = Path(e["output"]) if mine and Path(e["output"]) not in taken else unused(out / name, taken)
        taken.add(dst)
        frames = 1
        if kind == "video":
            try:
                frames = max(1, probe(src)["frames"])
            except DctoonError:
                pass  # reported by the worker that tries it, with the CLI's line
        items.append(Item(src, dst, kind, frames))
    return items, skipped


# --------------------------------------------------------------------------------------------
# The work, on Ray workers


def _attempt(fn, retries: int) -> tuple[object, str | None]:
    """``fn()`` tried up to ``1 + retries`` times; (result, None) or (None, a one-line error).
    Bad input (a :class:`DctoonError`) fails at once: trying again cannot help."""
    error = None
    for _ in range(1 + max(0, retries)):
        try:
            return fn(), None
        except DctoonError as e:
            return None, str(e)
        except Exception as e:  # noqa: BLE001 - a worker's failure is reported, not raised
            error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None, error


def _entry(src, dst, style: str, began: float, error: str | None, kind: str, frames: int = 1) -> dict:
    """The manifest's line for one item (size and checksum of a written output)."""
    dst = Path(dst)
    ok = error is None and dst.is_file()
    return {"input": str(src), "output": str(dst), "kind": kind, "status": "done" if ok else "failed",
            "error": error, "style": style,
            "seconds": round(time.monotonic() - began, 3), "frames": frames if ok else 0,
            "size": dst.stat().st_size if ok else None, "sha256": file_sha256(dst) if ok else None}


class ImageWorker:
    """A Ray Data actor: one Cartoonizer, loaded once, for every batch of images it is given."""

    def __init__(self, style: str | None, settings: Settings, models: dict, retries: int):
        from .pipeline import load

        self.cartoonizer = load(style, settings, **models)
        self.style = Path(self.cartoonizer.style.name).stem
        self.retries = retries

    def __call__(self, batch: dict) -> dict:
        from .images import read_image, write_image

        rows = []
        for src, dst in zip(batch["src"], batch["dst"]):
            began = time.monotonic()
            _, error = _attempt(lambda: write_image(Path(dst), self.cartoonizer.stylize(
                read_image(Path(src), max_side=self.cartoonizer.settings.max_side))), self.retries)
            rows.append(_entry(src, dst, self.style, began, error, "image"))
        return {"entry": [json.dumps(r) for r in rows]}


def _gpu_share(cluster_gpus: float, workers: int, device: str) -> float:
    """Each worker's share of the cluster's GPUs (Ray's ``num_gpus``): none on the CPU, and a
    one-line error when a GPU is asked for and the cluster has none."""
    if device in CPU_DEVICES or (device == "auto" and not cluster_gpus):
        return 0.0
    if not cluster_gpus:
        raise InputError(f"--device {device}: the Ray cluster has no GPU")
    return cluster_gpus / workers


def _pieces(src: Path, segment: float, crop: bool) -> list[tuple[float | None, float | None]]:
    """Cut points of a video: keyframes about ``segment`` seconds apart (one piece when auto-crop
    plans one camera path for the whole video, or when there is nothing to cut)."""
    from .video import keyframes

    if crop or segment <= 0:
        return [(None, None)]
    cuts, last = [], 0.0
    for t in keyframes(src):
        if t - last >= segment - 1e-6 and t > 0:
            cuts.append(t)
            last = t
    bounds = [None, *cuts]
    return list(zip(bounds, [*cuts, None]))


def _stylize_piece(style, settings, models: dict, src, piece, span, o: dict):
    """One piece of a video (a Ray task); its result is kept beside it so a re-run reuses it."""
    from .pipeline import load
    from .video import VideoResult

    piece, done = Path(piece), Path(piece).with_suffix(".json")
    if done.is_file() and piece.is_file():
        r = json.loads(done.read_text())
        return VideoResult(Path(r["path"]), r["frames"], r["duration"], tuple(r["size"]), None, origin=r["origin"])

    def work():
        c = load(style, settings, **models)
        return c.stylize_video(src, piece, start=span[0], end=span[1], warmup=o["warmup"], audio=False,
                               bar=False, crf=o["crf"], preset=o["preset"])

    result, error = _attempt(work, o["retries"])
    if error:
        raise DctoonError(error)
    atomic_write(done, json.dumps({**asdict(result), "path": str(result.path)}).encode())
    return result


def _video(style, settings, models: dict, src, dst, o: dict, *pieces):
    """A whole video (a Ray task): one piece stylized straight into ``dst``, or pieces joined."""
    import shutil

    from .pipeline import load
    from .video import join_pieces

    began = time.monotonic()
    src, dst = Path(src), Path(dst)
    if not pieces:
        def work():
            c = load(style, settings, **models)
            return c.stylize_video(src, dst, bar=False, crf=o["crf"], preset=o["preset"])
        result, error = _attempt(work, o["retries"])
    else:
        result, error = _attempt(lambda: join_pieces(src, list(pieces), dst), o["retries"])
        if error is None:
            shutil.rmtree(Path(pieces[0].path).parent, ignore_errors=True)
    return json.dumps(_entry(src, dst, o["style"], began, error, "video", result.frames if result else 0))


# --------------------------------------------------------------------------------------------
# The driver


def _check_reachable(address: str) -> None:
    """A HOST:PORT (or ray://HOST:PORT) nobody listens on fails here in one line (Ray itself would
    retry for minutes)."""
    import socket
    from urllib.parse import urlsplit

    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise InputError(f"--address {address}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as e:
        raise InputError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


def _ray(address: str | None):
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not address:  # a local Ray on the loopback address only (read when Ray is imported)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # Ray's C++ notices on stderr; errors still raise
    try:
        import ray
        import ray.data
    except ImportError:
        raise InputError("dctoon batch needs Ray: pip install 'dctoon[ray]'") from None
    import logging
    import warnings

    if address:
        _check_reachable(address)
    if not ray.is_initialized():
        kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            with captured_stderr():  # Ray's C++ start-up notices; a failure is raised below as one line
                if address:
                    ray.init(address=address, **kwargs)
                else:
                    ray.init(_node_ip_address="127.0.0.1", **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise InputError(f"cannot reach the Ray cluster at {address or 'a new local one'}: "
                             f"{str(e).splitlines()[0]}") from None
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="ray.data")
    return ray


def printer(stdout=None):
    """A ``log`` for :func:`run`: finished outputs to ``stdout`` (default: the current one, bound now,
    so that a caller may send everything else printed meanwhile elsewhere), errors and notes to stderr."""
    stdout = stdout or sys.stdout

    def log(line: str, err: bool = False) -> None:
        print(line, file=sys.stderr if err else stdout, flush=True)
    return log


def run(inputs: list[str], out: str | os.PathLike, options: BatchOptions = BatchOptions(), *,
        bar: bool | None = None, log=None) -> Report:
    """Stylize every image and video in ``inputs`` into the folder ``out`` on Ray; see the module
    docstring. ``log(line, err=False)`` gets one line per finished item (errors and notes with
    ``err=True``; default :func:`printer`); ``bar``: progress on stderr as :func:`dctoon.progress.progress_bar`
    shows it (default: a bar on a terminal, plain lines elsewhere; ``False``: none); returns what happened.
    One run at a time per ``out``."""
    paths = collect(inputs)
    if not paths:
        raise InputError("no input images or videos found")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out):
        return _run(paths, out, options, bar, log or printer())


@contextlib.contextmanager
def _exclusive(out: Path):
    """One batch at a time in an output folder: two would each do every item and replace each
    other's outputs. A lock held while this run lasts (released by the system if it dies, so a killed
    run never blocks the next); the second run is refused in one line naming the first's pid."""
    from .video.writer import lock

    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not lock(fd, wait=False):
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise InputError(f"{out}: another dctoon batch (pid {pid}) is writing into this folder; wait for it to"
                             " finish or choose another -o folder")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _run(paths: list[Path], out: Path, options: BatchOptions, bar: bool | None, log) -> Report:
    """:func:`run` once this run holds the output folder."""
    from .pipeline import load
    from .progress import progress_bar

    probe_c = load(options.style, options.settings, threads=1)  # checks the style and settings in one line, here
    style = Path(probe_c.style.name).stem
    transparent = probe_c.backdrop is not None and probe_c.backdrop.kind == "transparent"
    manifest = Manifest(out)
    remove_stale_partials(out)
    items, skipped = plan(paths, out, style, manifest, transparent)
    for i in items:  # names claimed before any work: a run killed before its next save can adopt them
        manifest.record({"input": str(i.src), "output": str(i.dst), "kind": i.kind, "status": "pending",
                         "style": style, "frames": i.frames})
    manifest.save()
    report = Report(skipped=skipped)
    if not items:
        return report
    ray = _ray(options.address)
    cluster = float(ray.cluster_resources().get("CPU", 1))
    workers = options.workers or max(1, int(cluster))
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    log(f"batch: {len(items)} items ({skipped} finished earlier) on the Ray cluster at "
        f"{ray.get_runtime_context().gcs_address}: {nodes} node{'s' * (nodes != 1)}, {cluster:g} CPUs, "
        f"{workers} worker{'s' * (workers != 1)}", err=True)
    cpus = cluster / workers  # Ray's share per worker (fractional when workers outnumber CPUs)
    gpus = _gpu_share(float(ray.cluster_resources().get("GPU", 0)), workers, options.device)
    threads = options.threads or max(1, round(cpus))
    o = dict(warmup=options.warmup, crf=options.crf, preset=options.preset, retries=options.retries, style=style)
    device = cpu_device() if options.device == "auto" and not gpus else options.device  # auto: the cluster decides
    args = (options.style, options.settings, {"threads": threads, "device": device})

    # 1. videos: piece tasks, then a join task per video that waits for its pieces
    piece_task = ray.remote(_stylize_piece).options(num_cpus=cpus, num_gpus=gpus, max_retries=options.retries)
    video_task = ray.remote(_video).options(num_cpus=cpus, num_gpus=gpus, max_retries=options.retries)
    pending = {}
    for it in (i for i in items if i.kind == "video"):
        spans = _safe_pieces(it.src, options.segment, probe_c.aspect is not None)
        folder = out / PIECES / hashlib.sha1(f"{it.src}|{style}|{options.settings}".encode()).hexdigest()[:16]
        refs = []
        if len(spans) > 1:
            folder.mkdir(parents=True, exist_ok=True)
            refs = [piece_task.remote(*args, str(it.src), str(folder / f"{k:04d}.mp4"), span, o)
                    for k, span in enumerate(spans)]
        pending[video_task.remote(*args, str(it.src), str(it.dst), o, *refs)] = (it, time.monotonic())
    # 2. images: a Ray Data pipeline, streamed back one status line at a time
    images = [i for i in items if i.kind == "image"]
    rows = iter(())
    if images:
        ds = ray.data.from_items([{"src": str(i.src), "dst": str(i.dst)} for i in images],
                                 override_num_blocks=min(len(images), 4 * workers))
        pool = ray.data.ActorPoolStrategy(size=min(workers, len(images)))
        ds = ds.map_batches(ImageWorker, batch_size=4, compute=pool, num_cpus=cpus, num_gpus=gpus,
                            fn_constructor_args=(*args, options.retries))
        rows = ds.iter_rows()
    with progress_bar(bar, total=sum(i.frames for i in items), desc="batch") as pbar:
        def finish(entry: dict, item: Item | None = None) -> None:
            manifest.record(entry, force=not report.items)  # the first result at once, then once a second
            report.items.append(entry)
            ok = entry["status"] == "done"
            report.done, report.failed = report.done + ok, report.failed + (not ok)
            pbar.set_postfix_str(f"items {report.done + report.failed}/{len(items)}, failed {report.failed}")
            pbar.update(item.frames if item else 1)  # after the counts: a line printed here says them
            log(entry["output"] if ok else f"dctoon: error: {entry['error']}", err=not ok)

        try:
            for row in rows:
                finish(json.loads(row["entry"]))
                finish_ready(ray, pending, finish, style, timeout=0)
            while pending:
                finish_ready(ray, pending, finish, style, timeout=1.0)
        except KeyboardInterrupt:
            report.interrupted = True
            for ref in pending:
                ray.cancel(ref, force=True)
        finally:
            manifest.save()
            with contextlib.suppress(OSError):
                (out / PIECES).rmdir()  # when no video is left in progress
    return report


def _safe_pieces(src: Path, segment: float, crop: bool):
    try:
        return _pieces(src, segment, crop)
    except DctoonError:
        return [(None, None)]  # a broken file: its worker reports it with the CLI's line


def finish_ready(ray, pending: dict, finish, style: str, timeout: float) -> None:
    """Record the video tasks that are done (a task that died is a failed item, not a crash)."""
    if not pending:
        return
    ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=timeout)
    for ref in ready:
        item, submitted = pending.pop(ref)
        try:
            entry = json.loads(ray.get(ref))
        except Exception as e:  # noqa: BLE001 - a piece's error, or a worker lost for good
            cause = getattr(e, "cause", None) or e
            entry = _entry(item.src, item.dst, style, 0, str(cause).splitlines()[0] or repr(cause), "video", 0)
        entry["seconds"] = round(time.monotonic() - submitted, 3)  # the pieces' time too
        finish(entry, item)
