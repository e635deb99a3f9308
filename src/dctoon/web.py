"""``dctoon serve``: a Gradio web app (and HTTP API) for photos and videos.

One page, two tabs (Image / Video), a style picker with previews, one button. Built to be left
running as a service, not only as a demo:

* binds 127.0.0.1 unless told otherwise; no share link, analytics off, system fonts (no CDN), so
  it starts and works with no network at all;
* one job queue: ``concurrency`` jobs run at once (default 1: a stylization uses every core),
  at most ``queue_size`` wait; uploads above ``max_upload_mb`` are refused by the server, videos
  longer than ``max_video_seconds`` (after trimming) are refused with a message in the page;
* every dctoon error (unreadable file, bad option, missing style) is shown as a one-line message
  in the page, never a traceback;
* uploads, results and examples live in one private temporary folder: results older than
  ``keep_minutes`` are pruned as new jobs arrive, and the folder is removed at exit;
* named endpoints for programs (``gradio_client``)::

      from gradio_client import Client, handle_file
      client = Client("http://127.0.0.1:7860/")
      (before, after), download = client.predict(
          handle_file("me.jpg"), "anime", "portrait", 1024, api_name="/stylize_image")
      video, summary = client.predict(
          handle_file("clip.mp4"), "anime", "portrait", 720, 0, 10, api_name="/stylize_video")
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import html
import logging
import os
import shutil
import tempfile
import threading
import time
import types
import uuid
from pathlib import Path

from .errors import DctoonError, InputError, ModelError

# No outbound calls from Gradio: set before gradio is imported (the user's own setting wins).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
_USER_TEMP = os.environ.get("GRADIO_TEMP_DIR")

log = logging.getLogger("dctoon.web")

IMAGE_API = "stylize_image"
VIDEO_API = "stylize_video"
ALL_API = "all_styles"
PORTRAIT, FRAME = "portrait", "frame"
ORIGINAL = "original"
PARTS = [("Everything / 全部", "all"), ("Person only / 仅人物", "person"), ("Background only / 仅背景", "background")]
BACKDROPS = [("Keep / 保留", "keep"), ("Blur / 虚化", "blur"), ("Colour / 纯色", "color"), ("Image / 图片", "image"),
             ("Transparent (photos) / 透明（照片）", "transparent")]
CROPS = [("Original / 原始", ORIGINAL), ("9:16", "9:16"), ("1:1", "1:1"), ("4:5", "4:5"), ("16:9", "16:9")]
SIZES = [("Original / 原尺寸", 0), ("2048", 2048), ("1536", 1536), ("1024", 1024), ("720", 720), ("512", 512)]

CSS = """
.dctoon-title h1 { margin-bottom: 0; }
#dctoon-styles .thumbnail-item { min-width: 96px; }
"""


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


def _gradio():
    try:
        import gradio as gr
    except ImportError:
        raise DctoonError("the web app needs Gradio: pip install 'dctoon[web]'") from None
    return gr


class App:
    """The state behind the page: styles, loaded models, the work folder."""

    def __init__(self, style: str | None = None, *, faces: bool = True, min_face: int = 40, threads: int = 0,
                 limits: Limits | None = None, workdir: str | os.PathLike | None = None):
        from .pipeline import Settings

        self.limits = limits or Limits()
        self.base = Settings(faces=faces, min_face=min_face)
        self.threads = threads
        self.own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="dctoon-web-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "jobs").mkdir(exist_ok=True)
        self._models: dict[str, object] = {}
        self._lock = threading.Lock()
        self.styles = self._find_styles(style)   # label -> (spec, description, preview or None)
        if not self.styles:
            from .styles import default_style

            default_style()  # raises the CLI's "no style is installed" message
        self.default = next(iter(self.styles)) if style is None else self._label_of(style)
        self.examples = self._make_examples()
        self.previews = self._make_previews()

    # ---------------------------------------------------------------- styles
    def _find_styles(self, style: str | None) -> dict[str, tuple[str, str, Path | None]]:
        from . import styles as st

        found: dict[str, tuple[str, str, Path | None]] = {}
        if style is not None:
            resolved = st.resolve(style)   # a bad --style fails at start, with the CLI's message
            if Path(style).expanduser().exists():
                found[Path(style).stem] = (str(Path(style).expanduser()), resolved.description or
                                           f"model file {Path(style).name}", None)
        for e in st.catalogue():
            if e.installed and e.name not in found:
                found[e.name] = (e.name, e.description, e.preview)
        return found

    def describe(self, label: str) -> str:
        return self.styles[label][1] if label in self.styles else ""

    def _label_of(self, style: str) -> str:
        p = Path(style).expanduser()
        return p.stem if p.exists() else style

    def cartoonizer(self, label: str, faces: str, max_side: int | None, part: str = "all",
                    background: str | None = None, crop: str | None = None, strengths=(1.0, 1.0)):
        """A Cartoonizer for one job: the loaded models shared, the job's settings its own."""
        from .pipeline import Cartoonizer

        if label not in self.styles:
            raise ModelError(f"unknown style '{label}': choose one of {', '.join(self.styles)}")
        if faces not in (PORTRAIT, FRAME):
            raise InputError(f"faces must be '{PORTRAIT}' or '{FRAME}', got '{faces}'")
        with self._lock:
            base = self._models.get(label)
            if base is None:
                from .styles import resolve

                base = Cartoonizer(resolve(self.styles[label][0]), self.base, threads=self.threads)
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

            from .demo import camera_move
            from .images import write_image

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
            from .images import read_image

            photo = read_image(self.examples["image"][0], max_side=256)
        items, self.preview_labels = [], []
        for i, (label, (_spec, description, preview)) in enumerate(self.styles.items()):
            dst = out / f"{i:02d}.jpg"
            try:
                if preview is not None:
                    shutil.copyfile(preview, dst.with_suffix(preview.suffix))
                    dst = dst.with_suffix(preview.suffix)
                elif photo is not None:
                    from .images import write_image

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
        from .images import pixel_budget, read_image, write_image

        if not path:
            raise InputError("no image: upload a photo first / 请先上传照片")
        size = self.max_side(max_side)
        c = self.cartoonizer(label, faces, size, part, background, crop, strengths)
        budget = int(min(self.limits.max_megapixels * 1e6, pixel_budget()))
        image, result = c.before_after(read_image(Path(path), max_side=size, max_pixels=budget))
        stem = Path(path).stem[:60] or "image"
        dst = self.job_dir() / f"{stem}_{label}.png"
        write_image(dst, result)
        return (image, result), str(dst)

    def all_styles(self, path, max_side):
        from .gallery import all_styles
        from .images import pixel_budget, read_image, write_image

        if not path:
            raise InputError("no image: upload a photo first / 请先上传照片")
        size = self.max_side(max_side)
        budget = int(min(self.limits.max_megapixels * 1e6, pixel_budget()))
        jobs = {label: self.cartoonizer(label, PORTRAIT if self.base.faces else FRAME, None) for label in self.styles}
        grid = all_styles(read_image(Path(path), max_side=size, max_pixels=budget), jobs)
        dst = self.job_dir() / f"{Path(path).stem[:60] or 'image'}_all.png"
        write_image(dst, grid)
        return str(dst)

    def stylize_video(self, path, label, faces, max_side, start, end, progress=None, part="all", background=None,
                      crop=None, strengths=(1.0, 1.0)):
        from .video import check_span, probe

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
            progress((done, total), desc=f"Stylizing / 处理中 · ETA / 剩余 {_clock(eta)}", unit="frames")

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
    from .matte import Backdrop, image_backdrop, parse_colour

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


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def _user_message(e: Exception, paths) -> str:
    """One line for the page: temporary upload paths replaced by the file's own name."""
    msg = str(e)
    for p in paths:
        if p:
            msg = msg.replace(str(p), Path(str(p)).name)
    return msg


def _page_error(message: str):
    """A dctoon error as the page shows it: one line under our own title."""
    return _gradio().Error(html.escape(message), title="dctoon · 出错了", print_exception=False)


def _name_bad_images(box):
    """Make a ``gr.Image`` input say why an upload is not a picture; returns ``box``.

    Gradio opens every uploaded picture with PIL before any event function runs; a file that is not
    an image (a text file named .png) then fails inside Gradio, and the page shows a bare "Error".
    The component's own preprocessing still runs; when it fails, ``images.read_image`` names the
    problem in one line. (Per instance, not a ``gr.Image`` subclass: Gradio's component metaclass
    writes a ``.pyi`` stub next to any module that defines one.) The page widget, the config and the
    HTTP API stay those of a plain ``gr.Image``.
    """
    gr = _gradio()
    plain = type(box).preprocess

    def preprocess(self, payload):
        try:
            return plain(self, payload)
        except gr.Error:
            raise
        except Exception:
            from .images import read_image

            path = getattr(payload, "path", None)
            if not path:
                raise
            try:
                read_image(Path(path), max_side=64)
            except DctoonError as e:
                msg = _user_message(e, [path])
                zh = "不是图片" if msg.endswith("not an image") else "无法读取图片"
                raise _page_error(f"{msg} / {zh}") from None
            raise  # a picture dctoon can read: Gradio's own failure, reported as before

    box.preprocess = types.MethodType(preprocess, box)  # this component only; never updated by an event
    return box


def _guard(fn, *paths_at):
    """Run a job; dctoon errors become a message in the page, other errors a short one (logged)."""
    gr = _gradio()

    def run(*args, **kwargs):
        paths = [args[i] for i in paths_at if i < len(args)]
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except DctoonError as e:
            raise _page_error(_user_message(e, paths)) from None
        except Exception as e:  # noqa: BLE001 - a bug: log it, say so in one line
            log.exception("job failed")
            raise gr.Error(html.escape(f"internal error: {type(e).__name__}: {_user_message(e, paths)} "
                                       "(details in the server log)"), print_exception=False) from None

    return functools.wraps(fn)(run)  # the API keeps the job's parameter names


def api_help(url: str = "http://127.0.0.1:7860/", style: str = "anime") -> str:
    return f"""\
Every button is also an HTTP endpoint (queued like the page). With `pip install gradio_client`:

```python
from gradio_client import Client, handle_file

client = Client("{url}")
# image: returns ((input, result) image files, result PNG file)
(before, after), png = client.predict(
    handle_file("me.jpg"), "{style}", "{PORTRAIT}", 1024, api_name="/{IMAGE_API}")
# video: start/end in seconds (end 0 = to the end); returns (result video, summary)
video, summary = client.predict(
    handle_file("clip.mp4"), "{style}", "{PORTRAIT}", 720, 0, 10, api_name="/{VIDEO_API}")
# optional, after those: stylize, behind the person, colour, background image, auto-crop
(before, after), png = client.predict(
    handle_file("me.jpg"), "{style}", "{PORTRAIT}", 1024, "person", "color", "#1e90ff", None, "4:5",
    api_name="/{IMAGE_API}")
```

Faces: `"{PORTRAIT}"` (faces refined by the head model + background) or `"{FRAME}"` (whole frame,
background model only). Size: longest side in pixels, `0` = original. Stylize: `"all"`, `"person"`,
`"background"`. Behind the person: `"keep"`, `"blur"`, `"color"` (the colour), `"image"` (the background
image), `"transparent"` (photos). Auto-crop: `"original"` or `W:H`. Errors come back as
`gradio_client.exceptions.AppError` with the same message as in the page.
"""


def build(app: App, url: str = "http://127.0.0.1:7860/"):
    """The Gradio Blocks for ``app`` (not launched)."""
    gr = _gradio()
    lim = app.limits
    names = list(app.styles)

    with gr.Blocks(title="dctoon: portrait cartoonization", analytics_enabled=False,
                   delete_cache=(600, int(lim.keep_minutes * 60))) as demo:
        gr.Markdown("# dctoon · 人像卡通化\nUpload a portrait photo or video, pick a style, press one button. "
                    "上传人像照片或视频，选择风格，一键生成。", elem_classes="dctoon-title")
        with gr.Row():
            with gr.Column(scale=3):
                gallery = gr.Gallery(value=app.previews, label="Styles / 风格预览", columns=6, height=190,
                                     allow_preview=False, object_fit="cover", fit_columns=False,
                                     elem_id="dctoon-styles", interactive=False)
            with gr.Column(scale=2):
                style = gr.Radio(names, value=app.default, label="Style / 风格", elem_id="dctoon-style",
                                 info=app.describe(app.default))
                faces = gr.Radio([("Portrait: faces refined + background / 人像：人脸精修 + 背景", PORTRAIT),
                                 ("Whole frame only / 仅整幅画面", FRAME)],
                                value=PORTRAIT if app.base.faces else FRAME, label="Faces / 人脸",
                                elem_id="dctoon-faces")
                sizes = [s for s in SIZES if not lim.max_side or 0 < s[1] <= lim.max_side] or [SIZES[-1]]
                size = gr.Dropdown(sizes, value=1024 if any(s[1] == 1024 for s in sizes) else sizes[0][1],
                                   label="Output size, longest side / 输出尺寸（长边像素）",
                                   allow_custom_value=True, elem_id="dctoon-size")
        with gr.Row():
            face_strength = gr.Slider(0, 1, value=1, step=0.05, label="Face strength / 人脸卡通程度",
                                      elem_id="dctoon-face-strength")
            back_strength = gr.Slider(0, 1, value=1, step=0.05, label="Background strength / 背景卡通程度",
                                      elem_id="dctoon-background-strength")
        with gr.Accordion("Person, background and framing / 人物、背景与构图", open=False, elem_id="dctoon-more"):
            with gr.Row():
                part = gr.Radio(PARTS, value="all", label="Stylize / 卡通化范围", elem_id="dctoon-part")
                crop = gr.Radio(CROPS, value=ORIGINAL, label="Auto-crop / 自动裁切", elem_id="dctoon-crop")
            with gr.Row():
                backdrop = gr.Radio(BACKDROPS, value="keep", label="Behind the person / 人物背景",
                                    elem_id="dctoon-backdrop")
                color = gr.ColorPicker("#ffffff", label="Colour / 颜色", elem_id="dctoon-color")
                bg_image = gr.Image(type="filepath", sources=["upload"], label="Background image / 背景图片",
                                    height=120, elem_id="dctoon-bg-image")

        def pick(evt: gr.SelectData):
            labels = app.preview_labels
            return labels[evt.index] if 0 <= evt.index < len(labels) else gr.skip()

        pick.__annotations__ = {"evt": gr.SelectData, "return": str}  # resolved here, not as strings

        gallery.select(pick, None, style, api_name=False, queue=False)
        style.change(lambda name: gr.update(info=app.describe(name)), style, style, api_name=False, queue=False)

        with gr.Tabs():
            with gr.Tab("Image / 图片", id="image"):
                with gr.Row(equal_height=True):
                    image_in = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                        label="Photo / 照片", height=420, elem_id="dctoon-image-in")
                    image_out = gr.ImageSlider(label="Before / after · 原图 / 卡通", format="png", height=420,
                                               interactive=False, elem_id="dctoon-image-out")
                with gr.Row():
                    image_go = gr.Button("Cartoonize / 卡通化", variant="primary", elem_id="dctoon-image-go")
                    all_go = gr.Button("All styles / 全部风格", elem_id="dctoon-all-go")
                image_file = gr.File(label="Download / 下载", interactive=False, height=90,
                                     elem_id="dctoon-image-file")
                all_out = gr.Image(label="Every style / 全部风格", type="filepath", interactive=False, height=360,
                                   elem_id="dctoon-all-out")
                if app.examples["image"]:
                    gr.Examples([[str(p)] for p in app.examples["image"]], [image_in],
                                label="Example / 示例")
            with gr.Tab("Video / 视频", id="video"):
                with gr.Row(equal_height=True):
                    video_in = gr.Video(sources=["upload"], label="Video / 视频", height=420,
                                        elem_id="dctoon-video-in")
                    video_out = gr.Video(label="Result / 结果", height=420, interactive=False,
                                         buttons=["download"], elem_id="dctoon-video-out")
                with gr.Row():
                    start = gr.Number(0, label="Start (s) / 开始（秒）", minimum=0, elem_id="dctoon-start")
                    end = gr.Number(0, label="End (s), 0 = to the end / 结束（秒），0 = 到结尾", minimum=0,
                                    elem_id="dctoon-end")
                gr.Markdown(f"At most {lim.max_video_seconds:g} s per job, uploads up to {lim.max_upload_mb} MB; "
                            f"audio is kept. 每次最多 {lim.max_video_seconds:g} 秒，上传不超过 "
                            f"{lim.max_upload_mb} MB，保留音频。")
                video_go = gr.Button("Cartoonize video / 视频卡通化", variant="primary", elem_id="dctoon-video-go")
                video_info = gr.Textbox(label="Result details / 结果信息", interactive=False,
                                        elem_id="dctoon-video-info")
                if app.examples["video"]:
                    gr.Examples([[str(p)] for p in app.examples["video"]], [video_in], label="Example / 示例")

        with gr.Accordion("API · 接口 (gradio_client)", open=False):
            gr.Markdown(api_help(url, app.default))

        def stylize_image(image, style_name, faces_name, max_side, part_name="all", backdrop_kind="keep",
                          color_value="#ffffff", backdrop_image=None, crop_name=ORIGINAL, face_s=1.0, back_s=1.0):
            """Stylize a photo: returns (input, result) and the result as a PNG file."""
            return app.stylize_image(image and uploaded(image, "image"), style_name, faces_name, max_side, part_name,
                                     backdrop_value(backdrop_kind, color_value, backdrop_image), crop_name,
                                     (face_s, back_s))

        def stylize_video(video, style_name, faces_name, max_side, start_s, end_s, part_name="all",
                          backdrop_kind="keep", color_value="#ffffff", backdrop_image=None, crop_name=ORIGINAL,
                          face_s=1.0, back_s=1.0, progress=gr.Progress()):
            """Stylize a video (audio kept): returns the result video and a summary line."""
            return app.stylize_video(video and uploaded(video, "video"), style_name, faces_name, max_side, start_s,
                                     end_s, progress, part_name,
                                     backdrop_value(backdrop_kind, color_value, backdrop_image), crop_name,
                                     (face_s, back_s))

        def all_styles(image, max_side):
            """The photo in every style of the page, named, in one grid (PNG)."""
            return app.all_styles(image and uploaded(image, "image"), max_side)

        look = [part, backdrop, color, bg_image, crop, face_strength, back_strength]
        image_go.click(_guard(stylize_image, 0), [image_in, style, faces, size, *look], [image_out, image_file],
                       api_name=IMAGE_API, concurrency_id="dctoon", concurrency_limit=lim.concurrency)
        for box in (image_in, bg_image):  # a file that is not a picture: one clear line at upload (the
            _name_bad_images(box)         # check is the component's preprocessing) and again at the button
            box.upload(lambda path: None, box, None, api_name=False, concurrency_limit=None, show_progress="hidden")
        all_go.click(_guard(all_styles, 0), [image_in, size], [all_out], api_name=ALL_API, concurrency_id="dctoon",
                     concurrency_limit=lim.concurrency)
        video_go.click(_guard(stylize_video, 0), [video_in, style, faces, size, start, end, *look],
                       [video_out, video_info],
                       api_name=VIDEO_API, concurrency_id="dctoon", concurrency_limit=lim.concurrency,
                       show_progress="full")
    demo.queue(max_size=lim.queue_size, default_concurrency_limit=lim.concurrency)
    return demo


def theme():
    gr = _gradio()
    # System fonts only: the default theme would fetch web fonts from a CDN.
    return gr.themes.Soft(font=[gr.themes.Font("system-ui"), gr.themes.Font("Noto Sans CJK SC"),
                                gr.themes.Font("sans-serif")],
                          font_mono=[gr.themes.Font("ui-monospace"), gr.themes.Font("monospace")])


def serve(host: str = "127.0.0.1", port: int = 7860, style: str | None = None, *, faces: bool = True,
          min_face: int = 40, threads: int = 0, limits: Limits | None = None, block: bool = True):
    """Start the web app. Returns (demo, app) when ``block`` is False (the server runs in a thread)."""
    _gradio()  # fail early, with the install hint, before any model loads
    limits = limits or Limits()
    if limits.concurrency < 1 or limits.queue_size < 1:
        raise InputError("--concurrency and --queue-size must be at least 1")
    if limits.max_upload_mb < 1 or limits.max_video_seconds <= 0:
        raise InputError("--max-upload-mb and --max-video-seconds must be positive")
    if limits.max_side is not None and limits.max_side < 64:
        raise InputError("--max-side must be at least 64 for the web app")
    app = App(style, faces=faces, min_face=min_face, threads=threads, limits=limits)
    atexit.register(app.cleanup)
    # Gradio's own upload/result cache goes into our folder too, so one rmtree removes everything.
    os.environ["GRADIO_TEMP_DIR"] = _USER_TEMP or str(app.workdir / "gradio")
    if block and threading.current_thread() is threading.main_thread():
        import signal

        def stop(signum, frame):  # a kill (SIGTERM) stops the server like Ctrl-C: temp files removed
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
    shown = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    try:
        demo = build(app, shown)
        demo.launch(server_name=host, server_port=port, share=False, inbrowser=False, show_error=False,
                    max_file_size=f"{limits.max_upload_mb}mb", ssr_mode=False, theme=theme(), css=CSS,
                    allowed_paths=[str(app.workdir)], quiet=True, prevent_thread_lock=not block)
    except BaseException:
        app.cleanup()
        raise
    if not block:
        return demo, app
    app.cleanup()
    return None
