"""``dctoon serve``: a Gradio web app (and HTTP API) for photos, videos and a live camera.

One page for the one-click path: the input (Photo / Video / Live tabs), the styles as large previews, one
button, the result beside the input; options folded. Built to be left
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
import os
import threading

from ..errors import InputError

# No outbound calls from Gradio: set before gradio is imported (the user's own setting wins).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
_USER_TEMP = os.environ.get("GRADIO_TEMP_DIR")

from .app import App, Limits  # noqa: E402
from .page import CSS, HEAD, _gradio, build, theme  # noqa: E402

__all__ = ["App", "Limits", "build", "serve"]


def serve(host: str = "127.0.0.1", port: int = 7860, style: str | None = None, *, faces: bool = True,
          min_face: int = 40, threads: int = 0, device: str = "auto", limits: Limits | None = None,
          block: bool = True):
    """Start the web app. Returns (demo, app) when ``block`` is False (the server runs in a thread)."""
    _gradio()  # fail early, with the install hint, before any model loads
    limits = limits or Limits()
    if limits.concurrency < 1 or limits.queue_size < 1:
        raise InputError("--concurrency and --queue-size must be at least 1")
    if limits.max_upload_mb < 1 or limits.max_video_seconds <= 0 or limits.max_live_seconds <= 0:
        raise InputError("--max-upload-mb, --max-video-seconds and --max-live-seconds must be positive")
    if limits.max_side is not None and limits.max_side < 64:
        raise InputError("--max-side must be at least 64 for the web app")
    app = App(style, faces=faces, min_face=min_face, threads=threads, device=device, limits=limits)
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
                    max_file_size=f"{limits.max_upload_mb}mb", ssr_mode=False, theme=theme(), css=CSS, head=HEAD,
                    allowed_paths=[str(app.workdir)], quiet=True, prevent_thread_lock=not block)
    except BaseException:
        app.cleanup()
        raise
    if not block:
        return demo, app
    app.cleanup()
    return None
