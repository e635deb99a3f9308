"""The state behind the web page: the styles, the loaded models (shared by jobs), the work
folder, the limits, and every job; plus the checks on what a client sends (untrusted)."""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

from ..errors import InputError, ModelError
from ..progress import clock

log = logging.getLogger("dctoon.web")

PORTRAIT, FRAME = "portrait", "frame"
BACKDROPS = [("Keep / 保留", "keep"), ("Blur / 虚化", "blur"), ("Colour / 纯色", "color"), ("Image / 图片", "image"),
             ("Transparent (photos) / 透明（照片）", "transparent")]


@dataclasses.dataclass
class Limits:
    """What one server accepts; the defaults suit a small CPU machine."""

    max_upload_mb: int = 200
    max_video_seconds: float = 60.0
    max_side: int | None = None     # a cap on every job's output size (None: any size the user picks)
    max_megapixels: float = 16.0    # pixels one photo job may stylize (a small PNG can declare 100 MP)
    concurrency: int = 1            # jobs running at once
    queue_size: int = 16            # jobs waiting at most
    keep_minutes: float = 60.0      # results are kept this long for download
    max_live_seconds: float = 300.0  # processing time one camera stream may take, then it stops


LIVE_SIDES = (256, 384, 512)  # the live camera's frame sizes (longest side)
ORIGINS = {"built-in": "built into dctoon / 内置", "official": "DCT-Net's official style / 官方风格",
           "user": "your own, imported / 自有风格"}


def look(description: str) -> str:
    """A model card's first sentence: how the style looks. The rest of a card's description is its
    training record, which stays in the card (`dctoon styles info`)."""
    first = re.split(r"(?<=[.!?])\s+", description.strip(), maxsplit=1)[0]
    return first.rstrip(".") + "." if first else ""


@dataclasses.dataclass
class LiveSession:
    """What one browser's camera stream keeps between frames: the stylizer with its face tracks and
    temporal blending (rebuilt when the style, the faces choice, a strength or the size changes) and
    recent timings."""

    key: tuple
    stylizer: object
    began: float
    times: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=30))

    def rate(self) -> tuple[float, float]:
        """(frames per second over the recent frames, median stylization ms)."""
        import numpy as np

        arrivals = [a for a, _ in self.times]
        fps = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 and arrivals[-1] > arrivals[0] \
            else 0.0
        return fps, 1000 * float(np.median([d for _, d in self.times]))


class App:
    """The state behind the page: styles, loaded models, the work folder."""

    def __init__(self, style: str | None = None, *, faces: bool = True, min_face: int = 40, threads: int = 0,
                 device: str = "auto", limits: Limits | None = None, workdir: str | os.PathLike | None = None):
        from ..pipeline import Settings

        self.limits = limits or Limits()
        self.base = Settings(faces=faces, min_face=min_face)
        self.threads, self.device = threads, device
        self.own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="dctoon-web-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "jobs").mkdir(exist_ok=True)
        self._models: dict[str, object] = {}
        self._lock = threading.Lock()
        self.styles = self._find_styles(style)
        if not self.styles:
            from ..styles import default_style

            default_style()  # raises the CLI's "no style is installed" message
        self.default = next(iter(self.styles)) if style is None else self._label_of(style)
        self.examples = self._make_examples()
        self.previews = self._make_previews()

    # ---------------------------------------------------------------- styles
    def _find_styles(self, style: str | None) -> dict[str, tuple[str, tuple[str, str], Path | None]]:
        """label -> (what --style resolves, (how it looks, where it comes from), preview or None)."""
        from .. import styles as st

        found: dict[str, tuple[str, tuple[str, str], Path | None]] = {}
        if style is not None:
            resolved = st.resolve(style)   # a bad --style fails at start, with the CLI's message
            if Path(style).expanduser().exists():
                found[Path(style).stem] = (str(Path(style).expanduser()),
                                           (look(resolved.description), f"model file {Path(style).name}"), None)
        for e in st.catalogue():
            if e.installed and e.name not in found:
                found[e.name] = (e.name, (look(e.description), ORIGINS.get(e.kind, e.kind)), e.preview)
        return found

    def describe(self, label: str) -> tuple[str, str]:
        """(how the style looks, where it comes from), for people choosing one."""
        return self.styles[label][1] if label in self.styles else ("", "")

    def _label_of(self, style: str) -> str:
        p = Path(style).expanduser()
        return p.stem if p.exists() else style

    def cartoonizer(self, label: str, faces: str, max_side: int | None, part: str = "all",
                    background: str | None = None, crop: str | None = None, strengths=(1.0, 1.0)):
        """A Cartoonizer for one job: the loaded models shared, the job's settings its own."""
        from ..pipeline import Cartoonizer

        if label not in self.styles:
            raise ModelError(f"unknown style '{label}': choose one of {', '.join(self.styles)}")
        if faces not in (PORTRAIT, FRAME):
            raise InputError(f"faces must be '{PORTRAIT}' or '{FRAME}', got '{faces}'")
        with self._lock:
            base = self._models.get(label)
            if base is None:
                from ..styles import resolve

                base = Cartoonizer(resolve(self.styles[label][0]), self.base, threads=self.threads,
                                   device=self.device)
                self._models[label] = base
            face_s, back_s = (_strength(v) for v in strengths)
            job = base.configure(faces=faces == PORTRAIT, max_side=self.max_side(max_side), part=part or "all",
                                 backdrop=background or None, crop=crop or None, face_strength=face_s,
                                 background_strength=back_s)
            if job.segmented:
                job.segmenter  # noqa: B018 - built once under the lock, shared by every job (ORT runs are thread-safe)
            if (faces == PORTRAIT or job.aspect) and self.limits.concurrency == 1:
                job.detector  # noqa: B018 - likewise, for jobs that run one at a time
        return job.fork() if self.limits.concurrency > 1 else job  # MTCNN keeps per-call state

    def max_side(self, requested) -> int | None:
        try:
            requested = int(requested or 0)
        except (TypeError, ValueError):
            raise InputError(f"output size must be a number of pixels, got {requested!r}") from None
        if requested and requested < 64:
            raise InputError(f"output size must be at least 64 px, got {requested}")
        cap = self.limits.max_side
        if cap and (not requested or requested > cap):
            return cap
        return requested or None

    def pixel_budget(self) -> int:
        """Pixels one picture may be stylized at: this server's --max-megapixels, within the machine's budget."""
        from ..images import pixel_budget

        return int(min(self.limits.max_megapixels * 1e6, pixel_budget()))

    # ---------------------------------------------------------------- files
    def job_dir(self) -> Path:
        """A fresh folder for one job's results; prunes the ones older than keep_minutes."""
        jobs = self.workdir / "jobs"
        cutoff = time.time() - self.limits.keep_minutes * 60
        for d in jobs.iterdir():
            try:
                if d.stat().st_mtime < cutoff:
                    shutil.rmtree(d, ignore_errors=True)
            except OSError:
                pass
        d = jobs / uuid.uuid4().hex[:12]
        d.mkdir()
        return d

    def cleanup(self) -> None:
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _make_examples(self) -> dict[str, list[Path]]:
        """Examples made from data inside installed packages (scikit-image's astronaut): offline."""
        out = self.workdir / "examples"
        out.mkdir(exist_ok=True)
        try:
            from skimage import data

            from ..demo import camera_move
            from ..images import write_image

            photo = data.astronaut()
            image = out / "astronaut.jpg"
            write_image(image, photo, quality=92)
            clip = camera_move(photo, out / "astronaut-move.mp4", seconds=2.0, fps=25, size=320)
            return {"image": [image], "video": [clip]}
        except Exception as e:  # noqa: BLE001 - examples are a nicety
            log.warning("no examples: %s", e)
            return {"image": [], "video": []}

    def _make_previews(self) -> list[tuple[str, str]]:
        """(image path, caption) per style: the style's own preview, else the example portrait
        stylized once at thumbnail size."""
        out = self.workdir / "previews"
        out.mkdir(exist_ok=True)
        photo = None
        if self.examples["image"]:
            from ..images import read_image

            photo = read_image(self.examples["image"][0], max_side=256)
        items, self.preview_labels = [], []
        for i, (label, (_spec, _about, preview)) in enumerate(self.styles.items()):
            dst = out / f"{i:02d}.jpg"
            try:
                if preview is not None:
                    shutil.copyfile(preview, dst.with_suffix(preview.suffix))
                    dst = dst.with_suffix(preview.suffix)
                elif photo is not None:
                    from ..images import write_image

                    write_image(dst, self.cartoonizer(label, PORTRAIT, None).stylize(photo), quality=90)
                else:
                    continue
            except Exception as e:  # noqa: BLE001
                log.warning("no preview for %s: %s", label, e)
                continue
            items.append((str(dst), label))
            self.preview_labels.append(label)
        return items

    # ---------------------------------------------------------------- jobs
    def stylize_image(self, path, label, faces, max_side, part="all", background=None, crop=None,
                      strengths=(1.0, 1.0)):
        from ..images import read_image, write_image

        if not path:
            raise InputError("no image: upload a photo first / 请先上传照片")
        size = self.max_side(max_side)
        c = self.cartoonizer(label, faces, size, part, background, crop, strengths)
        image, result = c.before_after(read_image(Path(path), max_side=size, max_pixels=self.pixel_budget()))
        stem = Path(path).stem[:60] or "image"
        dst = self.job_dir() / f"{stem}_{label}.png"
        write_image(dst, result)
        return (image, result), str(dst)

    def all_styles(self, path, max_side):
        from ..gallery import all_styles
        from ..images import read_image, write_image

        if not path:
            raise InputError("no image: upload a photo first / 请先上传照片")
        size = self.max_side(max_side)
        jobs = {label: self.cartoonizer(label, PORTRAIT if self.base.faces else FRAME, None) for label in self.styles}
        grid = all_styles(read_image(Path(path), max_side=size, max_pixels=self.pixel_budget()), jobs)
        dst = self.job_dir() / f"{Path(path).stem[:60] or 'image'}_all.png"
        write_image(dst, grid)
        return str(dst)

    def live(self, frame, label, faces=PORTRAIT, strengths=(1.0, 1.0), side=384, session: LiveSession | None = None):
        """One camera frame stylized at ``side`` px, with the face tracking and temporal blending of a
        video (``faces`` as for photos: the head model on tracked faces, or the whole frame in one pass):
        returns (result, status line, session). ``frame`` is an RGB array, or the file of an
        uploaded frame (the page's; its header is checked before it is decoded: untrusted)."""
        import numpy as np

        from ..images import read_image
        from ..video.reader import fit
        from ..video.temporal import FrameStylizer

        if frame is None:
            return None, "waiting for the camera / 等待摄像头", session
        try:
            side = int(side)
        except (TypeError, ValueError):
            side = 0
        if side not in LIVE_SIDES:
            raise InputError(f"live: size must be one of {', '.join(map(str, LIVE_SIDES))}")
        if not isinstance(frame, np.ndarray):
            frame = read_image(Path(frame), max_side=side, max_pixels=self.pixel_budget())[..., :3]
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] not in (3, 4) or min(frame.shape[:2]) < 16:
            raise InputError("live: a camera frame must be an RGB picture of at least 16x16 pixels")
        bgr = np.ascontiguousarray(fit(frame, side)[..., 2::-1])  # a bigger frame: down to the size, as video
        strengths = tuple(_strength(v) for v in strengths)
        key = (label, faces, strengths, side)
        if session is None or session.key != key:
            job = self.cartoonizer(label, faces, None, strengths=strengths)
            session = LiveSession(key, FrameStylizer(job), time.monotonic(),
                                  **({"times": session.times} if session else {}))  # the rate carries on
        began = time.monotonic()
        out = session.stylizer(bgr, began - session.began)[..., ::-1]
        session.times.append((began, time.monotonic() - began))
        fps, ms = session.rate()
        status = f"{label} · {fps:.1f} fps · {ms:.0f} ms per frame · {out.shape[1]}x{out.shape[0]}"
        return np.ascontiguousarray(out), status, session

    def stylize_video(self, path, label, faces, max_side, start, end, progress=None, part="all", background=None,
                      crop=None, strengths=(1.0, 1.0)):
        from ..video import check_span, probe

        if not path:
            raise InputError("no video: upload a video first / 请先上传视频")
        path = Path(path)
        start = float(start or 0)
        end = float(end) if end not in (None, "") and float(end) > 0 else None
        facts = probe(path)
        length = facts["duration"] or 0.0
        check_span(start, end, length)
        span = (min(end, length) if end is not None and length else (end or length)) - start
        limit = self.limits.max_video_seconds
        if span > limit + 1e-3:
            raise InputError(f"the video is {span:.1f} s long; this server stylizes at most {limit:g} s at a time: "
                             f"set start/end to a part of at most {limit:g} s / 视频过长（{span:.1f} 秒），"
                             f"每次最多 {limit:g} 秒，请设置起止时间")
        # the header may not know the length (or may lie): decoded time is what counts, the span ends at the limit
        end = start + limit if end is None else min(end, start + limit)
        c = self.cartoonizer(label, faces, max_side, part, background, crop, strengths)
        dst = self.job_dir() / f"{path.stem[:60] or 'video'}_{label}.mp4"
        began = time.monotonic()

        def report(done: int, total: int) -> None:
            if progress is None:
                return
            elapsed = time.monotonic() - began
            eta = elapsed / done * (total - done) if done else 0.0
            progress((done, total), desc=f"Stylizing / 处理中 · ETA / 剩余 {clock(eta)}", unit="frames")

        if progress is not None:
            progress(0.0, desc="Starting / 开始")
        result = c.stylize_video(path, dst, start=start or None, end=end, progress=report, bar=False)
        w, h = result.size
        audio = {None: "no audio / 无音频", "copied": "audio kept / 保留音频",
                 "re-encoded": "audio re-encoded / 音频已转码"}[result.audio]
        summary = (f"{result.frames} frames / 帧 · {result.duration:.2f} s · {w}x{h} · {audio} · "
                   f"{time.monotonic() - began:.1f} s")
        return str(result.path), summary


def _strength(value) -> float:
    """A strength a client sent: a number in 0..1, else one line."""
    try:
        v = float(1.0 if value is None or value == "" else value)
    except (TypeError, ValueError):
        raise InputError(f"strength must be a number between 0 and 1, got {str(value)[:40]!r}") from None
    if not 0.0 <= v <= 1.0:
        raise InputError(f"strength must be between 0 and 1, got {v:g}")
    return v


def backdrop_value(kind: str | None, color: str | None, image: str | None):
    """The page's background choice as a ``matte.Backdrop`` (None: keep the photo's).

    Every argument comes from the client: ``kind`` is one of the page's choices, ``color`` only ever
    a colour and ``image`` only ever a file the client uploaded (never another path on the server)."""
    from ..matte import Backdrop, image_backdrop, parse_colour

    if kind in (None, "", "keep"):
        return None
    if kind in ("blur", "transparent"):
        return Backdrop(kind)
    if kind == "color":
        colour = parse_colour(str(color or "#ffffff"))
        if colour is None:
            raise InputError("colour: not a colour (#RRGGBB or a name) / 颜色无效")
        return colour
    if kind == "image":
        if not image:
            raise InputError("background image: upload one first / 请先上传背景图片")
        return image_backdrop(uploaded(image, "background image"))
    raise InputError(f"behind the person: choose one of {', '.join(v for _, v in BACKDROPS)},"
                     f" got {str(kind)[:40]!r}")


def uploaded(path, what: str) -> Path:
    """A file that came with the request: inside Gradio's upload folder. Any other server path is refused
    with the same message whether or not it exists (no probing the server's files)."""
    from gradio.utils import get_upload_folder

    p = Path(str(path))
    try:
        inside = p.resolve().is_relative_to(Path(get_upload_folder()).resolve()) and p.is_file()
    except (OSError, ValueError):
        inside = False
    if not inside:
        raise InputError(f"{what}: upload a file / 请上传文件")
    return p
