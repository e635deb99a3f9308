"""A corpus of hostile but fair inputs, for the CLI and for the web API (through gradio_client).

Each CLI case is a row: how to set it up, the command, the exit code, a piece of the one line on
stderr, and what must hold afterwards (inputs unchanged, nothing left behind). Cases that already
held before the hardening issue are kept here too, so they stay fixed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from conftest import FP16, IMAGES, OFFICIAL, VIDEOS, need, one_line_error, run, start_server, stop_server


def _jpeg(path: Path, side: int = 48, value: int = 120) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side, 3), value, np.uint8)).save(path, quality=90)
    return path


def _png_bomb(path: Path, side: int = 9990) -> Path:
    """A ~100 KB PNG that declares ~100 MP (one colour compresses to almost nothing)."""
    Image.new("L", (side, side), 90).save(path, optimize=True)
    return path


def _mkv_without_duration(path: Path, seconds: float, fps: int = 10, side: int = 64) -> Path:
    """A Matroska file written as a live stream: its header has no duration."""
    import av

    with av.open(str(path), "w", format="matroska", options={"live": "1"}) as out:
        s = out.add_stream("libx264", rate=fps)
        s.width = s.height = side
        s.pix_fmt = "yuv420p"
        for i in range(int(seconds * fps)):
            frame = np.full((side, side, 3), (i * 7) % 255, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@dataclass
class Case:
    name: str
    setup: Callable[[Path], list]          # tmp -> the command's arguments (after "dctoon")
    code: int = 2
    says: str = ""                          # a piece of the one error line
    check: Callable[[Path], None] | None = None
    unchanged: bool = True                  # every file that existed before is byte-identical after
    extra: list = field(default_factory=list)


def _folder_with_its_own_output(tmp: Path) -> list:
    _jpeg(tmp / "in" / "a.jpg")
    _jpeg(tmp / "in" / "a_whitebox_cartoon_gan_fp16.jpg", value=30)
    return ["image", tmp / "in", "-o", tmp / "in"]


def _same_names_two_folders(tmp: Path) -> list:
    _jpeg(tmp / "d1" / "a.jpg")
    _jpeg(tmp / "d2" / "a.jpg", value=30)
    return ["image", tmp / "d1" / "a.jpg", tmp / "d2" / "a.jpg", "-o", tmp / "out"]


def _nothing_in(name: str) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        assert not (tmp / name).exists() or not any((tmp / name).iterdir())
    return check


def _style_card(tmp: Path, **change) -> Path:
    from dctoon import styles

    folder = tmp / "style"
    styles.save_style(folder, "evil", _tiny_weights(), description="", license="", source="test")
    card = json.loads((folder / "style.json").read_text())
    for role, value in change.items():
        card[role].update(value)
    (folder / "style.json").write_text(json.dumps(card))
    return folder


def _tiny_weights():
    from dctoon import network

    rng = np.random.default_rng(0)
    return {f"{s.name}.{p}": (rng.normal(0, 0.1, (s.cout, s.cin, s.k, s.k)) if p == "weight"
                              else np.zeros(s.cout)).astype(np.float32)
            for s in network.conv_specs(4, 2) for p in ("weight", "bias")}


def _swapped_model(tmp: Path) -> list:
    folder = _style_card(tmp)
    other = tmp / "other"
    from dctoon import styles

    weights = {k: v * 2 for k, v in _tiny_weights().items()}
    styles.save_style(other, "other", weights, description="", license="", source="test")
    shutil.copy(other / "head.onnx", folder / "head.onnx")
    return ["image", _jpeg(tmp / "a.jpg"), "-o", tmp / "out", "--style", folder]


def _gif(tmp: Path) -> list:
    frames = [Image.fromarray(np.full((32, 32, 3), v, np.uint8)) for v in (20, 200, 90)]
    frames[0].save(tmp / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return ["image", tmp / "anim.gif", "-o", tmp / "out"]


def _mode_is_normal(tmp: Path) -> None:
    mode = (tmp / "out" / "a_whitebox_cartoon_gan_fp16.png").stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask(), oct(mode)


def _umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m


def _stale_partial(tmp: Path) -> list:
    (tmp / "out").mkdir()
    (tmp / "out" / ".talk_whitebox_cartoon_gan_fp16.k1ll3d.partial.mp4").write_bytes(b"\0" * 1000)
    return ["video", need(VIDEOS / "talking-head-512-noaudio.mp4"), "-o", tmp / "out", "--end", "0.2",
            "--max-side", "64", "-q"]


def _no_stale(tmp: Path) -> None:
    assert [p.name for p in (tmp / "out").iterdir()] == ["talking-head-512-noaudio_whitebox_cartoon_gan_fp16.mp4"]


CLI_CASES = [
    Case("missing input", lambda t: ["image", t / "nope.jpg", "-o", t / "out"], says="no such file or folder"),
    Case("text named .jpg", lambda t: ["image", _text(t / "x.jpg"), "-o", t / "out"], says="not an image",
         check=_nothing_in("out")),
    Case("empty file", lambda t: ["image", _empty(t / "e.png"), "-o", t / "out"], says="empty file"),
    Case("png bomb", lambda t: ["image", _png_bomb(t / "bomb.png"), "-o", t / "out"], says="--max-side",
         check=_nothing_in("out")),
    Case("png bomb with --max-side", lambda t: ["image", _png_bomb(t / "bomb.png"), "-o", t / "o.png",
                                                "--max-side", "256"], code=0,
         check=lambda t: Image.open(t / "o.png").size == (256, 256)),
    Case("output is the input", lambda t: ["image", _jpeg(t / "a.jpg"), "-o", t / "a.jpg"], says="a.jpg"),
    Case("folder holding its own output name", _folder_with_its_own_output, says="is an input"),
    Case("two inputs, one output name", _same_names_two_folders, says="would both be written",
         check=_nothing_in("out")),
    Case("several inputs, -o a file name", lambda t: ["image", _jpeg(t / "a.jpg"), _jpeg(t / "b.jpg"),
                                                      "-o", t / "x.png"], says="need an output folder",
         check=lambda t: not (t / "x.png").exists()),
    Case("-o exists", lambda t: ["image", _jpeg(t / "a.jpg"), "-o", _jpeg(t / "b.jpg")], says="exists"),
    Case("earlier output kept", lambda t: ["image", _jpeg(t / "a.jpg"), "-o", _prior(t)], code=0,
         check=lambda t: sorted(p.name for p in (t / "out").iterdir()) == [
             "a_whitebox_cartoon_gan_fp16-2.jpg", "a_whitebox_cartoon_gan_fp16.jpg"]),
    Case("unwritable output folder", lambda t: ["image", _jpeg(t / "a.jpg"), "-o", _text(t / "file") / "o.png"],
         says="cannot write there"),
    Case("output permissions", lambda t: ["image", _png(t / "a.png"), "-o", t / "out"], code=0,
         check=_mode_is_normal),
    Case("animated gif", _gif, code=0, check=lambda t: len(list((t / "out").iterdir())) == 1),
    Case("video of a jpeg", lambda t: ["video", _jpeg(t / "a.jpg"), "-o", t / "o.mp4"], says="still image"),
    Case("video start past the end", lambda t: ["video", need(VIDEOS / "talking-head-512-noaudio.mp4"), "-o",
                                                t / "o.mp4", "--start", "99"], says="past the end"),
    Case("video end nan", lambda t: ["video", need(VIDEOS / "talking-head-512-noaudio.mp4"), "-o", t / "o.mp4",
                                     "--end", "nan"], says="number of seconds"),
    Case("video -o exists", lambda t: ["video", need(VIDEOS / "talking-head-512-noaudio.mp4"), "-o",
                                       _text(t / "o.mp4")], says="exists"),
    Case("stale partial from a killed run", _stale_partial, code=0, check=_no_stale, unchanged=False),
    Case("style file outside its folder", lambda t: ["image", _jpeg(t / "a.jpg"), "-o", t / "out", "--style",
                                                      _style_card(t, head={"file": "../../../../etc/passwd"})],
         says="outside the style folder"),
    Case("style file absolute", lambda t: ["image", _jpeg(t / "a.jpg"), "-o", t / "out", "--style",
                                            _style_card(t, background={"file": str(FP16)})],
         says="outside the style folder"),
    Case("style model swapped", _swapped_model, says="does not match the SHA-256"),
    Case("styles import of an escaping card", lambda t: ["styles", "import", _style_card(
        t, head={"file": "../escape.onnx"}), "--name", "evil"], says="outside the style folder"),
    Case("bad --max-side", lambda t: ["image", _jpeg(t / "a.jpg"), "-o", t / "out", "--max-side", "2"],
         says="--max-side"),
    Case("unknown style", lambda t: ["image", _jpeg(t / "a.jpg"), "-o", t / "out", "--style", "nope"],
         says="unknown style"),
]


# ------------------------------------------------------------------------------------------------
# hardening, round two (#33): what a shared file or a careless option could do


class _RunsCode:
    """Pickled, it calls ``os.system(command)`` when loaded: what a hostile shared .pt file holds."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _evil_checkpoint(tmp: Path, name: str = "evil.pt") -> Path:
    torch = pytest.importorskip("torch", reason="needs the train extra (PyTorch)")
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"G": _RunsCode(f"touch {tmp / 'pwned'}"), "g_ema": _RunsCode(f"touch {tmp / 'pwned'}"),
                "settings": {}, "step": 0}, path)
    return path


def _code_never_ran(tmp: Path) -> None:
    assert not (tmp / "pwned").exists(), "the checkpoint ran code"


def _photos(tmp: Path, n: int = 4) -> Path:
    rng = np.random.default_rng(1)
    for k in range(n):
        _jpeg(tmp / "photos" / f"p{k}.jpg", 64, int(rng.integers(40, 200)))
    return tmp / "photos"


def _corrupt_photos(tmp: Path) -> Path:
    folder = tmp / "corrupt"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for k in range(3):
        (folder / f"c{k}.jpg").write_bytes(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    return folder


def _resume_from(tmp: Path, command: str) -> list:
    """``train COMMAND --resume`` in a run folder whose checkpoint.pt is hostile."""
    _evil_checkpoint(tmp / "run", "checkpoint.pt")
    (tmp / "pwned").unlink(missing_ok=True)
    photos = _photos(tmp)
    if command == "ttn":
        return ["train", "ttn", "--photos", photos, "--styles", photos, "--out", tmp / "run", "--resume",
                "--steps", "1", "--batch", "1", "--res", "32"]
    return ["train", "distill", "--teacher", need(FP16), "--photos", photos, "--out", tmp / "run", "--resume",
            "--steps", "1", "--batch", "1", "--res", "32", "--pool", "2", "--pool-size", "64", "--threads", "1"]


def _lying_jpeg(tmp: Path, side: int) -> Path:
    """A real ~25 KB 512x512 JPEG whose frame header (SOF0) says ``side`` x ``side``."""
    import struct

    path = tmp / f"lies-{side}.jpg"
    Image.open(need(IMAGES / "portrait-512.jpg")).convert("RGB").resize((512, 512)).save(path, quality=70)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", side, side)
    path.write_bytes(bytes(data))
    return path


def _mix(n: int) -> str:
    return "+".join([str(need(FP16))] * n)


def _two_inputs_unwritable(tmp: Path) -> list:
    return ["image", _jpeg(tmp / "a.jpg"), _jpeg(tmp / "b.jpg", value=30), "-o", _text(tmp / "file") / "out"]


def _long_stream_as_gif(tmp: Path) -> list:
    pytest.importorskip("av")
    clip = _mkv_without_duration(tmp / "long.mkv", 35.0, side=32)
    return ["video", clip, "-o", tmp / "out.gif", "--max-side", "32", "-q"]


def _no_folder(name: str) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        assert not (tmp / name).exists(), f"{name} was made"
    return check


def _truncated_official(tmp: Path) -> list:
    data = need(OFFICIAL / "dctnet_anime.tflite").read_bytes()
    (tmp / "anime.tflite").write_bytes(data[: len(data) // 2])
    return ["styles", "import", tmp / "anime.tflite", "--name", "cut"]


def _random_file(tmp: Path, name: str) -> Path:
    (tmp / name).write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return tmp / name


def _distill(tmp: Path, *extra) -> list:
    return ["train", "distill", "--teacher", need(FP16), "--photos", _photos(tmp), "--out", tmp / "run", *extra]


ROUND_TWO = [
    Case("train export of a checkpoint that runs code", lambda t: ["train", "export", _evil_checkpoint(t), "--out",
                                                                   t / "style", "--name", "x"],
         says="refused: the checkpoint holds a Python object", check=_code_never_ran),
    Case("train average of checkpoints that run code", lambda t: ["train", "average", _evil_checkpoint(t),
                                                                  _evil_checkpoint(t, "b.pt"), "--out", t / "s.pt"],
         says="refused", check=_code_never_ran),
    Case("train ttn --resume from a checkpoint that runs code", lambda t: _resume_from(t, "ttn"), says="refused",
         check=_code_never_ran),
    Case("train distill --resume from a checkpoint that runs code", lambda t: _resume_from(t, "distill"),
         says="refused", check=_code_never_ran),
    Case("train ccn --ckpt that runs code", lambda t: ["train", "ccn", "--styles", _photos(t), "--ckpt",
                                                       _evil_checkpoint(t), "--out", t / "run", "--steps", "1"],
         says="refused", check=_code_never_ran),
    Case("train export of random bytes", lambda t: ["train", "export", _random_file(t, "x.pt"), "--out", t / "s",
                                                    "--name", "x"], says="not a PyTorch checkpoint"),
    Case("--threads -3", lambda t: ["image", _jpeg(t / "a.jpg"), "-o", t / "out", "--threads", "-3"],
         says="--threads must be at least 0"),
    Case("--min-face -1", lambda t: ["image", _jpeg(t / "a.jpg"), "-o", t / "out", "--min-face", "-1"],
         says="--min-face must be between 1"),
    Case("--min-face 0 on a video", lambda t: ["video", need(VIDEOS / "talking-head-512-noaudio.mp4"), "-o",
                                               t / "o.mp4", "--min-face", "0"], says="--min-face"),
    Case("--style name over 255 characters", lambda t: ["image", _jpeg(t / "a.jpg"), "-o", t / "out", "--style",
                                                        "a" * 300], says="unknown style"),
    Case("a mixture of 100 parts", lambda t: ["image", _jpeg(t / "a.jpg"), "-o", t / "out", "--style", _mix(100)],
         says="at most 8"),
    Case("a mixture of 9 parts", lambda t: ["image", _jpeg(t / "a.jpg"), "-o", t / "out", "--style", _mix(9)],
         says="at most 8", check=_nothing_in("out")),
    Case("styles import of a truncated official .tflite", _truncated_official, says="truncated TFLite model"),
    Case("random bytes named .tflite", lambda t: ["image", _jpeg(t / "a.jpg"), "-o", t / "out", "--style",
                                                  _random_file(t, "x.tflite")], says="not a TFLite model"),
    Case("train distill on a folder of corrupt images", lambda t: ["train", "distill", "--teacher", need(FP16),
                                                                   "--photos", _corrupt_photos(t), "--out",
                                                                   t / "run", "--pool", "4", "--threads", "1"],
         says="not a readable image"),
    Case("train distill --steps 0", lambda t: _distill(t, "--steps", "0"), says="--steps must be between 1",
         check=_no_folder("run")),
    Case("train distill --steps -5 --batch -1", lambda t: _distill(t, "--steps", "-5", "--batch", "-1"),
         says="--steps", check=_no_folder("run")),
    Case("train ttn --batch 0", lambda t: ["train", "ttn", "--photos", _photos(t), "--styles", t / "photos",
                                           "--out", t / "run", "--batch", "0"], says="--batch",
         check=_no_folder("run")),
    Case("-o with an unknown extension", lambda t: ["image", _jpeg(t / "a.jpg"), "-o", t / "out.xyz"],
         says="'.xyz' is not a format", check=_no_folder("out.xyz")),
    Case("video -o with an unknown extension", lambda t: ["video", need(VIDEOS / "talking-head-512-noaudio.mp4"),
                                                          "-o", t / "out.avi"], says="not a format",
         check=_no_folder("out.avi")),
    Case("bad --preset", lambda t: ["video", need(VIDEOS / "talking-head-512-noaudio.mp4"), "-o", t / "o.mp4",
                                    "--preset", "nope", "--end", "0.2", "--max-side", "64", "-q"],
         says="--preset must be one of"),
    Case("a JPEG whose header says 7000x7000 over 25 KB", lambda t: ["image", _lying_jpeg(t, 7000), "-o",
                                                                     t / "out"], says="damaged JPEG",
         check=_nothing_in("out")),
    Case("a JPEG whose header says 65000x65000, --max-side 512", lambda t: ["image", _lying_jpeg(t, 65000), "-o",
                                                                            t / "out", "--max-side", "512"],
         says="damaged JPEG", check=_nothing_in("out")),
    Case("a JPEG whose header says 1024x1024 over 512x512 data", lambda t: ["image", _lying_jpeg(t, 1024), "-o",
                                                                             t / "out"], says="data runs out",
         check=_nothing_in("out")),
    Case("two inputs into a folder that cannot be made", _two_inputs_unwritable, says="cannot write there"),
    Case("a 35 s stream without a duration as GIF", _long_stream_as_gif, says="at most 30 s",
         check=lambda t: not (t / "out.gif").exists()),
    Case("serve --port 0", lambda t: ["serve", "--port", "0"], says="--port must be between 1 and 65,535"),
    Case("serve --concurrency 0", lambda t: ["serve", "--concurrency", "0"], says="--concurrency"),
    Case("batch --retries 1000", lambda t: ["batch", _jpeg(t / "a.jpg"), "-o", t / "out", "--retries", "1000"],
         says="--retries", check=_nothing_in("out")),
]


def _text(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("not an image\n")
    return p


def _empty(p: Path) -> Path:
    p.write_bytes(b"")
    return p


def _png(p: Path) -> Path:
    Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(p)
    return p


def _prior(t: Path) -> Path:
    _jpeg(t / "out" / "a_whitebox_cartoon_gan_fp16.jpg", value=10)
    return t / "out"


@pytest.mark.parametrize("case", CLI_CASES + ROUND_TWO, ids=[c.name for c in CLI_CASES + ROUND_TWO])
def test_cli_hostile_input(case: Case, tmp_path, capsys, fp16_model):
    work = tmp_path / "w"
    work.mkdir()
    args = case.setup(work)
    if "--style" not in args and args[0] in ("image", "video"):
        args += ["--style", fp16_model]
    before = _snapshot(work)
    folders = {p for p in work.rglob("*") if p.is_dir()}
    started = time.monotonic()
    code, _, err = run(args, capsys)
    assert code == case.code, err
    if case.code == 2:
        line = one_line_error(err)
        assert case.says in line, line
        assert time.monotonic() - started < 30, "refused, but only after doing the work"
        left = [p for p in work.rglob("*") if p.is_dir() and p not in folders and not any(p.iterdir())]
        assert not left, f"a refused run left empty folders: {left}"
    else:
        assert "Traceback" not in err
    after = _snapshot(work)
    if case.unchanged:
        assert {k: v for k, v in after.items() if k in before} == before, "an input or earlier output changed"
    assert not [p for p in work.rglob("*") if p.name.endswith((".tmp", ".part")) or ".partial." in p.name]
    if case.check:
        assert case.check(work) is not False


def test_animated_gif_says_only_the_first_frame(tmp_path, capsys, fp16_model):
    code, _, err = run(_gif(tmp_path) + ["--style", fp16_model], capsys)
    assert code == 0 and "animated (3 frames): only the first" in err


def test_styles_info_is_a_summary_and_full_on_request(capsys):
    code, out, _ = run(["styles", "info", "anime"], capsys)
    assert code == 0 and len(out) < 2500 and "--full" in out
    code, full, _ = run(["styles", "info", "anime", "--full"], capsys)
    assert code == 0 and len(full) > len(out)


def test_serve_without_the_web_extra_says_so_first(tmp_path):
    fake = tmp_path / "site" / "gradio"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named gradio', name='gradio')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    r = subprocess.run([sys.executable, "-m", "dctoon", "serve", "--port", "1"], capture_output=True, text=True,
                       env=env, timeout=60)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "serving" not in r.stderr and "dctoon[web]" in lines[0]


@pytest.mark.parametrize("asked", [(os.cpu_count() or 1) + 1, 100_000])
def test_threads_beyond_the_cores_are_capped_with_a_note(asked, tmp_path, capsys, fp16_model):
    code, _, err = run(["image", _jpeg(tmp_path / "a.jpg"), "-o", tmp_path / "out", "--style", fp16_model,
                        "--threads", asked], capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 0 and len(lines) == 1, err
    assert f"--threads {asked} is more than this machine's {os.cpu_count()} cores" in lines[0]


def test_help_states_the_ranges(capsys):
    from dctoon.cli import build_parser

    def help_of(*command) -> str:
        with pytest.raises(SystemExit):
            build_parser().parse_args([*command, "--help"])
        return " ".join(capsys.readouterr().out.split())

    image, distill = help_of("image"), help_of("train", "distill")
    assert "up to this machine's cores" in image and "1 to 65500" in image and "8 to 65500" in image
    assert "training steps (between 1 and 10,000,000)" in distill and "batch size (between 1 and 1,024)" in distill
    assert "ultrafast to placebo" in help_of("video") and "1 to 65535" in help_of("serve")


def test_a_pixel_bomb_with_max_side_prints_nothing_but_its_output(tmp_path, fp16_model):
    """In a process of its own: Python prints a warning once, and pytest would catch it."""
    r = subprocess.run([sys.executable, "-m", "dctoon", "image", str(_png_bomb(tmp_path / "bomb.png")), "-o",
                        str(tmp_path / "o.png"), "--max-side", "64", "--style", str(fp16_model)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr.strip() == "" and r.stdout.strip() == str(tmp_path / "o.png"), r.stderr


def test_two_batch_runs_into_one_folder_the_second_is_refused(tmp_path):
    pytest.importorskip("ray", reason="needs the ray extra")
    out = tmp_path / "out"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "dctoon", "batch", need(VIDEOS / "talking-head-512-noaudio.mp4"),
               _jpeg(tmp_path / "a.jpg"), "-o", out, "--style", need(FP16), "--workers", "1", "--threads", "1",
               "--max-side", "64", "-q"]
    log = open(tmp_path / "first.log", "w+")
    first = subprocess.Popen([str(a) for a in command], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (out / "batch.json").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)  # the first run has the folder, its manifest is written
        assert first.poll() is None, (tmp_path / "first.log").read_text()
        second = subprocess.run([str(a) for a in command], capture_output=True, text=True, env=env, timeout=300)
        assert second.returncode == 2, second.stderr
        line = one_line_error(second.stderr)
        assert f"pid {first.pid}" in line and "another dctoon batch" in line
    finally:
        stop_server(first, log)  # SIGTERM: the first run stops as after Ctrl-C


# ------------------------------------------------------------------------------------------------
# the web API, as any HTTP client can call it

WEB = all(importlib.util.find_spec(m) for m in ("gradio", "gradio_client"))


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    if not WEB:
        pytest.skip("the web extra is not installed")
    need(FP16)
    tmp = tmp_path_factory.mktemp("hostile-serve")
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"}
    env.update(DCTOON_HOME=str(tmp / "home"), TMPDIR=str(tmp), PYTHONUNBUFFERED="1")
    proc, url, log = start_server(tmp, ["--style", str(FP16), "--max-video-seconds", "1", "--threads", "1",
                                        "--max-megapixels", "4"], env)
    from gradio_client import Client

    yield Client(url, verbose=False), tmp
    stop_server(proc, log)


def _web_error(fn) -> str:
    with pytest.raises(Exception) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg.strip() and "Traceback" not in msg, msg
    return msg


def test_web_backdrop_never_reads_server_files(api):
    from gradio_client import handle_file

    client, _ = api
    photo = handle_file(str(need(IMAGES / "portrait-512.jpg")))
    server_image = str(need(IMAGES / "dog-no-human-face.jpg"))
    calls = {
        "colour is a server image": ("color", server_image, None),
        "colour is a missing path": ("color", "/no/such/file.png", None),
        "kind is a server image": (server_image, "#ffffff", None),
        "image is a server path": ("image", "#ffffff", server_image),
    }
    messages = {}
    for name, (kind, colour, image) in calls.items():
        messages[name] = _web_error(lambda: client.predict(photo, FP16.stem, "portrait", 128, "person", kind,
                                                           colour, image, "original", api_name="/stylize_image"))
    # an existing and a missing path give the same answer: nothing to probe
    assert messages["colour is a server image"] == messages["colour is a missing path"]


def test_web_pixel_bomb_is_refused_at_once(api):
    from gradio_client import handle_file

    client, tmp = api
    bomb = _png_bomb(tmp / "bomb.png", 6000)
    started = time.monotonic()
    msg = _web_error(lambda: client.predict(handle_file(str(bomb)), FP16.stem, "portrait", 0,
                                            api_name="/stylize_image"))
    assert "MP" in msg and time.monotonic() - started < 30


def test_web_video_without_a_duration_stops_at_the_limit(api):
    import av
    from gradio_client import handle_file

    client, tmp = api
    clip = _mkv_without_duration(tmp / "long.mkv", 3.0)
    with av.open(str(clip)) as c:
        assert not c.streams.video[0].duration and not c.duration  # the header does not know
    video, summary = client.predict(handle_file(str(clip)), FP16.stem, "frame", 64, 0, 0,
                                    api_name="/stylize_video")
    path = video["video"] if isinstance(video, dict) else video
    with av.open(str(path)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    assert frames <= 10, summary  # 1 s at 10 fps, not the 3 s of the file


def _http_call(client, api_name: str, data: list) -> tuple[str, object]:
    """POST /gradio_api/call/API_NAME as any HTTP client may, no gradio_client in between: the first
    answer's (event, data). The event is closed after (a stream would wait for its next frame)."""
    import httpx

    base = client.src.rstrip("/") + "/gradio_api"
    event_id = httpx.post(f"{base}/call/{api_name}", json={"data": data}, timeout=30).json()["event_id"]
    try:
        with httpx.stream("GET", f"{base}/call/{api_name}/{event_id}", timeout=120) as r:
            event = None
            for line in r.iter_lines():
                if line.startswith("event: "):
                    event = line[len("event: "):]
                elif line.startswith("data: ") and event in ("generating", "complete", "error"):
                    return event, json.loads(line[len("data: "):])
    finally:
        httpx.post(f"{base}/stream/{event_id}/close", timeout=10)
    pytest.fail(f"/{api_name} gave no answer")


def test_web_files_it_did_not_upload_are_one_line_each_way(api):
    """A call that names a file on the server instead of uploading it: a bare path through gradio_client,
    Gradio's file record with a server path (existing or not) over plain HTTP. The client reads why,
    the same line whether the file exists; the log has one line per call, no traceback."""
    client, tmp = api
    log = tmp / "server.log"
    before = log.stat().st_size
    server_image = str(need(IMAGES / "dog-no-human-face.jpg"))
    messages = {"bare path": _web_error(lambda: client.predict(server_image, FP16.stem, "portrait", 128,
                                                               api_name="/stylize_image"))}
    for name, path in (("server file", server_image), ("missing file", "/no/such/file.jpg")):
        event, answer = _http_call(client, "all_styles", [{"path": path, "meta": {"_type": "gradio.FileData"}}, 128])
        assert event == "error", answer
        messages[name] = answer["error"]
    message = messages["bare path"]
    assert len(set(messages.values())) == 1 and "upload" in message and "\n" not in message, messages
    assert server_image not in message and "/no/such" not in message  # nothing the client sent comes back
    added = log.read_bytes()[before:].decode(errors="replace")
    assert "Traceback" not in added and added.count("it names a file it did not upload") == len(messages), added


def test_web_live_takes_the_sizes_its_api_info_lists(api):
    """/live's size as its API info states it (type and choices agree), taken by the server: a client
    that follows the API info gets a stylized frame of that size."""
    import httpx

    client, _ = api
    params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/live"]["parameters"]
    side = next(p["type"] for p in params if p["parameter_name"] == "side")
    assert side["type"] == "string" and all(isinstance(v, str) for v in side["enum"]), side
    base = client.src.rstrip("/") + "/gradio_api"
    with open(need(IMAGES / "portrait-512.jpg"), "rb") as f:
        frame = httpx.post(f"{base}/upload", files={"files": f}, timeout=30).json()[0]
    size = min(side["enum"], key=int)
    event, answer = _http_call(client, "live", [{"path": frame, "meta": {"_type": "gradio.FileData"}}, FP16.stem,
                                                "frame", 1, 1, size])
    assert event == "generating" and answer[1].endswith(f" · {size}x{size}"), answer


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KB tmpfs filled to the last few KB (root only; skipped where mounting is not allowed)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()[:80]}")
    try:
        (mnt / "filler").write_bytes(b"\0" * (256 * 1024 - 8 * 1024))
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.parametrize("kind", ["image", "video"])
def test_a_full_disk_is_one_line_and_leaves_nothing(kind, full_disk, tmp_path, capsys, fp16_model):
    if kind == "image":
        src = tmp_path / "noise.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(src)
        args = ["image", src, "-o", full_disk / "out.png"]
    else:
        args = ["video", need(VIDEOS / "talking-head-512-noaudio.mp4"), "-o", full_disk / "out.mp4", "--end", "1",
                "--max-side", "128", "-q", "--crf", "0"]
    code, _, err = run(args + ["--style", fp16_model], capsys)
    assert code == 2 and "disk is full" in one_line_error(err)
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


def test_the_tests_never_use_the_real_cache():
    from dctoon import paths

    assert paths.home().resolve() != (Path.home() / ".cache" / "dctoon").resolve()
    assert Path(tempfile.gettempdir()).resolve() in paths.home().resolve().parents
