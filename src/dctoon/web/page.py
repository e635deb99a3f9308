"""The page: the Gradio layout, its named API endpoints and their help, and the glue that shows
every dctoon error as one line in the page."""

from __future__ import annotations

import functools
import html
import types
from pathlib import Path

from ..errors import DctoonError
from .app import BACKDROPS, FRAME, LIVE_SIDES, PORTRAIT, App, backdrop_value, log, uploaded

IMAGE_API = "stylize_image"
VIDEO_API = "stylize_video"
ALL_API = "all_styles"
LIVE_API = "live"
ORIGINAL = "original"
PARTS = [("Everything / 全部", "all"), ("Person only / 仅人物", "person"), ("Background only / 仅背景", "background")]
CROPS = [("Original / 原始", ORIGINAL), ("9:16", "9:16"), ("1:1", "1:1"), ("4:5", "4:5"), ("16:9", "16:9")]
SIZES = [("Original / 原尺寸", 0), ("2048", 2048), ("1536", 1536), ("1024", 1024), ("720", 720), ("512", 512)]

CSS = """
.dctoon-title h1 { margin-bottom: 0; }
#dctoon-styles .thumbnail-item { min-width: 96px; }
"""


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

            with gr.Tab("Live / 实时", id="live"):
                with gr.Row(equal_height=True):
                    camera = gr.Image(sources=["webcam"], streaming=True, type="filepath", label="Camera / 摄像头",
                                      height=420, elem_id="dctoon-camera")
                    live_out = gr.Image(label="Live / 实时", type="numpy", format="jpeg", interactive=False,
                                        height=420, elem_id="dctoon-live-out")
                with gr.Row():
                    live_side = gr.Radio(list(LIVE_SIDES), value=384, label="Size, longest side / 尺寸（长边像素）",
                                         elem_id="dctoon-live-size")
                    live_info = gr.Textbox(label="Speed / 速度", interactive=False, elem_id="dctoon-live-info")
                gr.Markdown(f"Press Record: each camera frame is stylized with face tracking and temporal "
                            f"smoothing, as in a video; style, faces and strengths can change while it runs "
                            f"(*Whole frame only* is the faster). At most "
                            f"{lim.max_live_seconds:g} s of processing per stream. "
                            "点击录制开始；风格与强度可随时切换。")
                live_state = gr.State(None)

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

        def live(frame, style_name, faces_name, face_s, back_s, side, session):
            """One camera frame stylized (face tracks and blending kept in the session state)."""
            return app.live(frame and uploaded(frame, "camera frame"), style_name, faces_name, (face_s, back_s), side,
                            session)

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
        camera.stream(_guard(live), [camera, style, faces, face_strength, back_strength, live_side, live_state],
                      [live_out, live_info, live_state], stream_every=0.05, time_limit=lim.max_live_seconds,
                      api_name=LIVE_API, concurrency_id="dctoon-live", concurrency_limit=lim.concurrency,
                      show_progress="hidden")
    demo.queue(max_size=lim.queue_size, default_concurrency_limit=lim.concurrency)
    return demo


def theme():
    gr = _gradio()
    # System fonts only: the default theme would fetch web fonts from a CDN.
    return gr.themes.Soft(font=[gr.themes.Font("system-ui"), gr.themes.Font("Noto Sans CJK SC"),
                                gr.themes.Font("sans-serif")],
                          font_mono=[gr.themes.Font("ui-monospace"), gr.themes.Font("monospace")])
