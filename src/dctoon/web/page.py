"""The page: the Gradio layout, its named API endpoints and their help, and the glue that shows
every dctoon error as one line in the page."""

from __future__ import annotations

import functools
import html
import types
from pathlib import Path

from ..errors import DctoonError, exhausted
from .app import BACKDROPS, FRAME, LIVE_SIDES, PORTRAIT, App, backdrop_value, log, uploaded

IMAGE_API = "stylize_image"
VIDEO_API = "stylize_video"
ALL_API = "all_styles"
LIVE_API = "live"
ORIGINAL = "original"
PARTS = [("Everything / 全部", "all"), ("Person only / 仅人物", "person"), ("Background only / 仅背景", "background")]
CROPS = [("Original / 原始", ORIGINAL), ("9:16", "9:16"), ("1:1", "1:1"), ("4:5", "4:5"), ("16:9", "16:9")]
SIZES = [("Original / 原尺寸", 0), ("2048", 2048), ("1536", 1536), ("1024", 1024), ("720", 720), ("512", 512)]

INPUT_HEIGHT = 340  # px of the input and result boxes on a laptop; a phone's CSS below makes them shorter

CSS = """
#dctoon-title h1 { font-size: 1.6rem; margin: 0 0 2px; }
#dctoon-title p { margin: 0; }
.dctoon-note p { font-size: 0.85rem; opacity: 0.8; }
.dctoon-step p { margin: 0; }
#dctoon-styles .grid-wrap { min-height: 0; max-height: 360px; }
#dctoon-styles .caption-label { max-width: calc(100% - 8px); white-space: normal; overflow-wrap: anywhere; }
@media (max-width: 700px) {
  #dctoon-title h1 { font-size: 1.3rem; }
  #dctoon-tabs .tab-container button { padding-left: 8px; padding-right: 8px; }
  #dctoon-image-in { height: 200px !important; }
  #dctoon-video-in, #dctoon-camera { height: 160px !important; }
  #dctoon-video-examples { display: none; }  /* a phone has its own videos: the button stays in view */
  .dctoon-note p, #dctoon-style-info p { font-size: 0.8rem; }
  #dctoon-styles .grid-wrap { overflow-y: hidden; }
  #dctoon-styles .grid-container { grid-auto-flow: column; grid-template-columns: none; grid-template-rows: none;
    grid-auto-columns: calc((100% - 3 * var(--spacing-lg)) / 3.25); overflow-x: auto; }  /* a 4th peeks: it scrolls */
  #dctoon-styles .caption-label { font-size: 0.8rem; }
}
"""
# Gradio scopes CSS to the page's content: the page margins need a rule of their own, in the head
HEAD = "<style>@media (max-width: 700px) { .main.app { padding-left: 10px; padding-right: 10px; } }</style>"
# a phone: the result comes under the button, so the page scrolls to it when it arrives
SHOW_RESULT = """() => { const r = document.querySelector('#dctoon-result');
    if (r && r.getBoundingClientRect().top > innerHeight * 0.5) r.scrollIntoView({behavior: 'smooth'}); }"""


def _gradio():
    try:
        import gradio as gr
    except ImportError:
        raise DctoonError("the web app needs Gradio: pip install 'dctoon[web]'") from None
    return gr


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
            from ..images import read_image

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


def _refuse_foreign_files(demo) -> None:
    """Make a request that names a file it did not upload get one line back, and one line in the log.

    Gradio checks every file field before any event function runs: a server path is refused with an
    ``InvalidPathError``, a bare string (gradio_client without ``handle_file``) with a pydantic
    ``ValidationError``. Under ``show_error=False`` the client then gets ``{"error": null}`` and the
    log a traceback per request. Only these two are let through as our message, which names nothing
    the client sent (no probing the server's files); ``show_error`` stays off, as Gradio's other
    errors may name the server's internals. (Per instance, as ``_name_bad_images``.)
    """
    from gradio.exceptions import InvalidPathError
    from pydantic import ValidationError

    plain = demo.preprocess_data

    async def preprocess_data(block_fn, *args, **kwargs):
        try:
            return await plain(block_fn, *args, **kwargs)
        except (InvalidPathError, ValidationError):
            log.warning("refused a call to %s: it names a file it did not upload",
                        block_fn.api_name or block_fn.name)
            raise _page_error("a file must be uploaded with the request (gradio_client: handle_file(path))"
                              " / 请随请求上传文件") from None

    demo.preprocess_data = preprocess_data


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
        except Exception as e:  # noqa: BLE001 - a bug (log it, say so in one line), or the machine's limits
            short = exhausted(e)
            if short is not None:
                log.warning("job failed: %s", short)
                raise _page_error(str(short)) from None
            log.exception("job failed")
            raise gr.Error(html.escape(f"internal error: {type(e).__name__}: {_user_message(e, paths)} "
                                       "(details in the server log)"), print_exception=False) from None

    return functools.wraps(fn)(run)  # the API keeps the job's parameter names


def api_help(url: str = "http://127.0.0.1:7860/", style: str = "anime") -> str:
    return f"""\
Every job is also an HTTP endpoint (queued like the page). With `pip install gradio_client`:

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
    """The Gradio Blocks for ``app`` (not launched).

    Laid out for the one-click path: the input (Photo / Video / Live tabs), the style picker with a
    large preview per style and the one button fit the first screen of a 1366x768 laptop and of a
    390x844 phone; the result comes beside the input (under it on a phone); every option waits in
    one folded section."""
    gr = _gradio()
    c = types.SimpleNamespace(mode=None)
    with gr.Blocks(title="dctoon: portrait cartoonization", analytics_enabled=False, fill_width=True,
                   delete_cache=(600, int(app.limits.keep_minutes * 60))) as demo:
        gr.Markdown("# dctoon · 人像卡通化\n**1** Upload · **2** pick a style · **3** Cartoonize &nbsp; "
                    "上传 · 选风格 · 一键生成", elem_id="dctoon-title")
        c.mode = gr.State("image")
        with gr.Row(elem_id="dctoon-main"):
            with gr.Column(scale=4, min_width=300, elem_id="dctoon-input"):
                _input_column(app, c)
            with gr.Column(scale=6, min_width=300, elem_id="dctoon-picker"):
                _style_column(app, c)
            with gr.Column(scale=4, min_width=300, elem_id="dctoon-result"):
                _result_column(c)
        with gr.Accordion("API · 接口 (gradio_client)", open=False):
            gr.Markdown(api_help(url, app.default))
        _wire(app, c)
    _refuse_foreign_files(demo)
    demo.queue(max_size=app.limits.queue_size, default_concurrency_limit=app.limits.concurrency)
    return demo


def _input_column(app: App, c: types.SimpleNamespace) -> None:
    """Step 1: what to cartoonize, one tab per kind of input."""
    gr = _gradio()
    lim = app.limits
    with gr.Tabs(elem_id="dctoon-tabs") as c.tabs:
        with gr.Tab("Photo / 照片", id="image") as c.image_tab:
            c.image_in = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                  label="Photo / 照片", height=INPUT_HEIGHT, elem_id="dctoon-image-in")
            if app.examples["image"]:
                gr.Examples([[str(p)] for p in app.examples["image"]], [c.image_in], label="Example / 示例",
                            elem_id="dctoon-image-examples")
        with gr.Tab("Video / 视频", id="video") as c.video_tab:
            c.video_in = gr.Video(sources=["upload"], label="Video / 视频", height=INPUT_HEIGHT,
                                  elem_id="dctoon-video-in")
            with gr.Row():
                c.start = gr.Number(0, label="Start, s / 开始", minimum=0, min_width=100, elem_id="dctoon-start")
                c.end = gr.Number(0, label="End, s / 结束", minimum=0, min_width=100, elem_id="dctoon-end")
            gr.Markdown(f"End 0: to the end. At most {lim.max_video_seconds:g} s per job, uploads up to "
                        f"{lim.max_upload_mb} MB; audio is kept. 结束为 0：到结尾；每次最多 {lim.max_video_seconds:g} 秒，"
                        f"不超过 {lim.max_upload_mb} MB，保留音频。",
                        elem_classes="dctoon-note")
            if app.examples["video"]:
                gr.Examples([[str(p)] for p in app.examples["video"]], [c.video_in], label="Example / 示例",
                            elem_id="dctoon-video-examples")
        with gr.Tab("Live / 实时", id="live") as c.live_tab:
            c.camera = gr.Image(sources=["webcam"], streaming=True, type="filepath", label="Camera / 摄像头",
                                height=INPUT_HEIGHT, elem_id="dctoon-camera")
            c.live_state = gr.State(None)
            # strings: a Radio's API info says "string", so the values a client sends are the ones it lists
            c.live_side = gr.Radio([str(s) for s in LIVE_SIDES], value="384", label="Size, longest side / 尺寸（长边像素）",
                                   elem_id="dctoon-live-size")
            gr.Markdown(f"Press Record: each camera frame is stylized with face tracking and temporal smoothing, "
                        f"as in a video; the style and the options can change while it runs (*Whole frame only* "
                        f"is the faster). At most {lim.max_live_seconds:g} s of processing per stream. "
                        "点击录制开始；风格与选项可随时切换。", elem_classes="dctoon-note")


def _style_column(app: App, c: types.SimpleNamespace) -> None:
    """Step 2 and 3: the styles as the same photo in each, the one button, the options folded."""
    gr = _gradio()
    lim = app.limits
    gr.Markdown("**Style / 风格** · click a picture / 点击图片选择", elem_classes="dctoon-step")
    c.gallery = gr.Gallery(value=app.previews, label="Style / 风格", show_label=False, buttons=[],
                           columns=min(3, max(1, len(app.previews))), height="auto",
                           allow_preview=False, object_fit="cover", elem_id="dctoon-styles", interactive=False,
                           selected_index=app.preview_labels.index(app.default)
                           if app.default in app.preview_labels else None)
    # the value every job reads (and the API's style argument); the previews above set it
    c.style = gr.Radio(list(app.styles), value=app.default, label="Style / 风格", visible="hidden",
                       elem_id="dctoon-style")
    c.about = gr.Markdown(_about(app, app.default), elem_id="dctoon-style-info")
    c.go = gr.Button("Cartoonize / 卡通化", variant="primary", size="lg", elem_id="dctoon-go")
    with gr.Accordion("Options / 选项", open=False, elem_id="dctoon-options"):
        c.faces = gr.Radio([("Portrait: faces refined + background / 人像：人脸精修 + 背景", PORTRAIT),
                            ("Whole frame only / 仅整幅画面", FRAME)],
                           value=PORTRAIT if app.base.faces else FRAME, label="Faces / 人脸", elem_id="dctoon-faces")
        sizes = [s for s in SIZES if not lim.max_side or 0 < s[1] <= lim.max_side] or [SIZES[-1]]
        c.size = gr.Dropdown(sizes, value=1024 if any(s[1] == 1024 for s in sizes) else sizes[0][1],
                             label="Output size, longest side / 输出尺寸（长边像素）", allow_custom_value=True,
                             elem_id="dctoon-size")
        c.face_strength = gr.Slider(0, 1, value=1, step=0.05, label="Face strength / 人脸卡通程度",
                                    elem_id="dctoon-face-strength")
        c.back_strength = gr.Slider(0, 1, value=1, step=0.05, label="Background strength / 背景卡通程度",
                                    elem_id="dctoon-background-strength")
        c.part = gr.Radio(PARTS, value="all", label="Stylize / 卡通化范围", elem_id="dctoon-part")
        c.backdrop = gr.Radio(BACKDROPS, value="keep", label="Behind the person / 人物背景", elem_id="dctoon-backdrop")
        with gr.Row():
            c.color = gr.ColorPicker("#ffffff", label="Colour / 颜色", min_width=100, scale=1, elem_id="dctoon-color")
            c.bg_image = gr.Image(type="filepath", sources=["upload"], label="Background image / 背景图片",
                                  height=140, scale=2, elem_id="dctoon-bg-image")
        c.crop = gr.Radio(CROPS, value=ORIGINAL, label="Auto-crop / 自动裁切", elem_id="dctoon-crop")
        c.all_go = gr.Button("The photo in every style / 全部风格一览", elem_id="dctoon-all-go")


def _result_column(c: types.SimpleNamespace) -> None:
    """What the button made, for the input kind of the tab shown."""
    gr = _gradio()
    with gr.Column(elem_id="dctoon-image-result") as c.image_result:
        c.image_out = gr.ImageSlider(label="Before / after · 原图 / 卡通", format="png", height=INPUT_HEIGHT,
                                     interactive=False, elem_id="dctoon-image-out")
        c.image_file = gr.DownloadButton("Download PNG / 下载", visible=False, variant="primary",
                                         elem_id="dctoon-image-file")
        c.all_out = gr.Image(label="Every style / 全部风格", type="filepath", interactive=False, visible=False,
                             elem_id="dctoon-all-out")
    with gr.Column(visible=False, elem_id="dctoon-video-result") as c.video_result:
        c.video_out = gr.Video(label="Result / 结果", height=INPUT_HEIGHT, interactive=False, buttons=["download"],
                               elem_id="dctoon-video-out")
        c.video_info = gr.Textbox(label="Result details / 结果信息", interactive=False, elem_id="dctoon-video-info")
    with gr.Column(visible=False, elem_id="dctoon-live-result") as c.live_result:
        c.live_out = gr.Image(label="Live / 实时", type="numpy", format="jpeg", interactive=False,
                              height=INPUT_HEIGHT, elem_id="dctoon-live-out")
        c.live_info = gr.Textbox(label="Speed / 速度", interactive=False, elem_id="dctoon-live-info")


def _about(app: App, label: str) -> str:
    """The picked style for people choosing one: its name, what it looks like, where it comes from."""
    look, origin = app.describe(label)
    return f"**{html.escape(label)}** · {html.escape(origin)}  \n{html.escape(look)}"


def _wire(app: App, c: types.SimpleNamespace) -> None:
    """The events: the tabs switch the result shown, a preview picks its style, the button runs the
    tab's job; each job is also a named API endpoint."""
    gr = _gradio()
    lim = app.limits
    queued = {"concurrency_id": "dctoon", "concurrency_limit": lim.concurrency}
    look = [c.part, c.backdrop, c.color, c.bg_image, c.crop, c.face_strength, c.back_strength]

    def pick(evt: gr.SelectData):
        labels = app.preview_labels
        return labels[evt.index] if 0 <= evt.index < len(labels) else gr.skip()

    pick.__annotations__ = {"evt": gr.SelectData, "return": str}  # resolved here, not as strings
    c.gallery.select(pick, None, c.style, api_name=False, queue=False)
    c.style.change(lambda name: _about(app, name), c.style, c.about, api_name=False, queue=False)

    for tab, kind in ((c.image_tab, "image"), (c.video_tab, "video"), (c.live_tab, "live")):
        tab.select(functools.partial(_show, kind), None,
                   [c.mode, c.image_result, c.video_result, c.live_result, c.go], api_name=False, queue=False)

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
                                 end_s, progress, part_name, backdrop_value(backdrop_kind, color_value, backdrop_image),
                                 crop_name, (face_s, back_s))

    def cartoonize(mode, image, video, style_name, faces_name, max_side, start_s, end_s, *options,
                   progress=gr.Progress()):
        """The page's one button: the job of the tab shown."""
        if mode == "video":
            return gr.skip(), gr.skip(), *stylize_video(video, style_name, faces_name, max_side, start_s, end_s,
                                                       *options, progress=progress)
        pair, png = stylize_image(image, style_name, faces_name, max_side, *options)
        return pair, gr.DownloadButton(value=png, visible=True), gr.skip(), gr.skip()

    def all_styles(image, max_side):
        """The photo in every style of the page, named, in one grid (PNG)."""
        return app.all_styles(image and uploaded(image, "image"), max_side)

    def live(frame, style_name, faces_name, face_s, back_s, side, session):
        """One camera frame stylized (face tracks and blending kept in the session state)."""
        return app.live(frame and uploaded(frame, "camera frame"), style_name, faces_name, (face_s, back_s), side,
                        session)

    shown = c.go.click(_guard(cartoonize, 1, 2),
                       [c.mode, c.image_in, c.video_in, c.style, c.faces, c.size, c.start, c.end, *look],
                       [c.image_out, c.image_file, c.video_out, c.video_info], api_name=False,
                       show_progress="full", **queued)
    shown.success(None, js=SHOW_RESULT)  # on a phone the result is under the button: bring it into view
    c.all_go.click(_guard(lambda image, size: gr.Image(all_styles(image, size), visible=True), 0),
                   [c.image_in, c.size], [c.all_out], api_name=False, **queued).success(None, js=SHOW_RESULT)
    # the API: the jobs by name, plain values in and out, on a button that is never shown (gradio_client calls them)
    api = gr.Button(visible=False)
    api.click(_guard(all_styles, 0), [c.image_in, c.size], [c.all_out], api_name=ALL_API, **queued)
    api.click(_guard(stylize_image, 0), [c.image_in, c.style, c.faces, c.size, *look], [c.image_out, c.image_file],
              api_name=IMAGE_API, **queued)
    api.click(_guard(stylize_video, 0), [c.video_in, c.style, c.faces, c.size, c.start, c.end, *look],
              [c.video_out, c.video_info], api_name=VIDEO_API, **queued)
    for box in (c.image_in, c.bg_image):  # a file that is not a picture: one clear line at upload (the
        _name_bad_images(box)             # check is the component's preprocessing) and again at the button
        box.upload(lambda path: None, box, None, api_name=False, concurrency_limit=None, show_progress="hidden")
    c.camera.stream(_guard(live), [c.camera, c.style, c.faces, c.face_strength, c.back_strength, c.live_side,
                                   c.live_state],
                    [c.live_out, c.live_info, c.live_state], stream_every=0.05, time_limit=lim.max_live_seconds,
                    api_name=LIVE_API, concurrency_id="dctoon-live", concurrency_limit=lim.concurrency,
                    show_progress="hidden")


def _show(kind: str):
    """A tab picked: its result area shown, the button kept for the jobs it runs (Live has Record)."""
    gr = _gradio()
    return (kind, gr.Column(visible=kind == "image"), gr.Column(visible=kind == "video"),
            gr.Column(visible=kind == "live"), gr.Button(visible=kind != "live"))


def theme():
    gr = _gradio()
    # System fonts only: the default theme would fetch web fonts from a CDN.
    return gr.themes.Soft(font=[gr.themes.Font("system-ui"), gr.themes.Font("Noto Sans CJK SC"),
                                gr.themes.Font("sans-serif")],
                          font_mono=[gr.themes.Font("ui-monospace"), gr.themes.Font("monospace")])
