"""The CLI and image I/O on real and hostile inputs: one-line errors, exit 2, nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from dctoon.images import read_image

from conftest import FP16, IMAGES, VIDEOS, need, one_line_error, run


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    return np.asarray(Image.open(need(IMAGES / "portrait-512.jpg")).convert("RGB").resize((128, 128)))


def test_image_command_writes_output_at_input_resolution(tmp_path, capsys, fp16_model):
    src = need(IMAGES / "portrait-bw.jpg")
    code, out, err = run(["image", src, "-o", tmp_path / "out.png", "--style", fp16_model], capsys)
    assert code == 0, err
    res = cv2.imread(str(tmp_path / "out.png"))
    assert res.shape[:2] == Image.open(src).size[::-1]
    assert not list(tmp_path.glob(".*.tmp"))


def test_folder_and_glob_inputs_and_max_side(tmp_path, capsys, fp16_model):
    for i in range(2):
        Image.fromarray(np.full((40, 60, 3), 60 * i, np.uint8)).save(tmp_path / f"in{i}.png")
    out = tmp_path / "out"
    code, _, err = run(["image", tmp_path, str(tmp_path / "*.png"), "-o", out, "--style", fp16_model,
                        "--max-side", "32"], capsys)
    assert code == 0, err
    files = sorted(p.name for p in out.iterdir())
    assert files == ["in0_whitebox_cartoon_gan_fp16.png", "in1_whitebox_cartoon_gan_fp16.png"]
    assert cv2.imread(str(out / files[0])).shape[:2] == (21, 32)


def test_exif_alpha_grey_cmyk_and_16bit_inputs(tmp_path, capsys, portrait, fp16_model):
    rgba = np.dstack([portrait[:, :96], np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (128, 1))])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    Image.fromarray(portrait[:, :, 0]).save(tmp_path / "grey.jpg")
    Image.fromarray(portrait).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray((portrait[:, :, 1].astype(np.uint16) * 257)).save(tmp_path / "deep.png")
    cv2.imwrite(str(tmp_path / "deep_rgb.png"), portrait[:, :, ::-1].astype(np.uint16) * 257)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(portrait[:, :96]).save(tmp_path / "rotated.jpg", exif=exif)

    assert read_image(tmp_path / "rotated.jpg").shape == (96, 128, 3)
    assert read_image(tmp_path / "alpha.png").shape == (128, 96, 4)
    assert read_image(tmp_path / "deep.png").max() > 200  # 16-bit scaled, not clipped or truncated
    np.testing.assert_allclose(read_image(tmp_path / "deep_rgb.png").astype(int), portrait, atol=1)
    assert abs(read_image(tmp_path / "cmyk.jpg").astype(int) - portrait).mean() < 12

    code, _, err = run(["image", tmp_path / "*.*", "-o", tmp_path / "out", "--style", fp16_model], capsys)
    assert code == 0, err
    out = {p.stem.split("_whitebox")[0]: p for p in (tmp_path / "out").iterdir()}
    assert set(out) == {"alpha", "grey", "cmyk", "deep", "deep_rgb", "rotated"}
    res = np.asarray(Image.open(out["alpha"]))
    assert res.shape == (128, 96, 4) and out["alpha"].suffix == ".png"
    np.testing.assert_array_equal(res[..., 3], rgba[..., 3])  # alpha passed through untouched
    assert np.asarray(Image.open(out["rotated"])).shape[:2] == (96, 128)


def make_bad_inputs(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(good)
    data = good.read_bytes()
    bad = {
        "empty.jpg": b"",
        "text.jpg": b"this is not an image\n" * 10,
        "truncated.jpg": data[: len(data) // 3],
        "random.png": np.random.default_rng(0).bytes(500),
    }
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
    return [tmp_path / n for n in bad]


def test_bad_inputs_one_line_error_exit_2_nothing_written(tmp_path, capsys, fp16_model):
    out = tmp_path / "out"
    for src in make_bad_inputs(tmp_path):
        code, _, err = run(["image", src, "-o", out / "x.png", "--style", fp16_model], capsys)
        assert code == 2, src.name
        one_line_error(err)
    assert not out.exists() or not any(out.iterdir())
    code, _, err = run(["image", tmp_path / "missing.jpg", "--style", fp16_model], capsys)
    assert code == 2
    one_line_error(err)


def test_tiny_image_is_processed(tmp_path, capsys, fp16_model):
    Image.fromarray(np.full((1, 1, 3), 200, np.uint8)).save(tmp_path / "one.png")
    code, _, err = run(["image", tmp_path / "one.png", "-o", tmp_path / "o.png", "--style", fp16_model], capsys)
    assert code == 0, err
    assert cv2.imread(str(tmp_path / "o.png")).shape == (1, 1, 3)


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory):
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    Image.new("L", (20000, 20000), 90).save(path, quality=50)
    return path


def test_20000px_image_refused_quickly_or_processed_with_max_side(tmp_path, capsys, huge_jpeg, fp16_model):
    code, _, err = run(["image", huge_jpeg, "-o", tmp_path / "o.png", "--style", fp16_model], capsys)
    assert code == 2 and "--max-side" in err
    one_line_error(err)
    code, _, err = run(["image", huge_jpeg, "-o", tmp_path / "o.png", "--style", fp16_model,
                        "--max-side", "512"], capsys)
    assert code == 0, err
    assert cv2.imread(str(tmp_path / "o.png")).shape == (512, 512, 3)


def test_model_errors(tmp_path, capsys):
    img = tmp_path / "i.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    wrong = tmp_path / "wrong.onnx"
    wrong.write_bytes(b"garbage")
    for style in (tmp_path / "missing.onnx", wrong, tmp_path / "i.png", "no-such-style"):
        code, _, err = run(["image", img, "-o", tmp_path / "o.png", "--style", style], capsys)
        assert code == 2
        one_line_error(err)
    assert not (tmp_path / "o.png").exists()


def test_refuses_to_overwrite_the_input(tmp_path, capsys, fp16_model):
    img = tmp_path / "i.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    before = img.read_bytes()
    code, _, err = run(["image", img, "-o", img, "--style", fp16_model], capsys)
    assert code == 2 and img.read_bytes() == before


def test_console_script_entry_point_without_traceback(tmp_path):
    """The real process: exit code and stderr as a user sees them."""
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    r = subprocess.run([sys.executable, "-m", "dctoon", "image", str(bad), "--style", str(FP16)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "dctoon", "image", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--max-side" in r.stdout and "--style" in r.stdout


def test_demo_never_overwrites(tmp_path, capsys, fp16_model):
    """A second `dctoon demo` gets a fresh folder, says so, and leaves the first run's files as they were."""
    folder = tmp_path / "demo"
    code, out, err = run(["demo", "-o", folder, "--style", fp16_model, "--no-video"], capsys)
    assert code == 0, err
    first = {p: p.read_bytes() for p in folder.iterdir()}
    assert sorted(p.name for p in first) == ["astronaut.png", "astronaut_whitebox_cartoon_gan_fp16.png"]
    assert out.split() == [str(p) for p in sorted(first)] and f"in {folder}, a new folder" in err
    code, out, err = run(["demo", "-o", folder, "--style", fp16_model, "--no-video"], capsys)
    assert code == 0, err
    again = tmp_path / "demo-2"
    assert out.split() == [str(again / p.name) for p in sorted(first)] and f"in {again}, a new folder" in err
    assert {p: p.read_bytes() for p in folder.iterdir()} == first


def test_side_by_side_says_so_in_its_name(tmp_path, capsys, fp16_model):
    src = need(IMAGES / "portrait-512.jpg")
    code, out, err = run(["image", src, "-o", tmp_path, "--style", fp16_model, "--side-by-side", "--max-side", "128"],
                         capsys)
    assert code == 0, err
    dst = tmp_path / "portrait-512_whitebox_cartoon_gan_fp16_side-by-side.jpg"
    assert out.strip() == str(dst)
    both = np.asarray(Image.open(dst).convert("RGB"), np.float32)
    photo = np.asarray(Image.open(src).convert("RGB").resize((128, 128), Image.LANCZOS), np.float32)
    assert both.shape == (128, 256, 3)
    assert np.abs(both[:, :128] - photo).mean() < 4 < np.abs(both[:, 128:] - photo).mean()  # input | output
    clip = need(VIDEOS / "talking-head-512-noaudio.mp4")
    code, out, err = run(["video", clip, "-o", tmp_path, "--style", fp16_model, "--side-by-side", "--end", "0.2",
                          "--max-side", "64", "--no-faces", "-q"], capsys)
    assert code == 0, err
    assert (tmp_path / "talking-head-512-noaudio_whitebox_cartoon_gan_fp16_side-by-side.mp4").is_file()
    code, _, err = run(["image", src, "-o", tmp_path, "--style", "all", "--side-by-side"], capsys)
    assert code == 2 and "--side-by-side" in one_line_error(err)


def _help(*command: str) -> str:
    r = subprocess.run([sys.executable, "-m", "dctoon", *command, "--help"], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "1000"})  # one line per option: no word split at a hyphen
    assert r.returncode == 0, r.stderr
    return " ".join(r.stdout.split())


def test_help_is_true_and_grouped():
    from pathlib import Path

    from dctoon.styles import default_style

    image, video, batch, serve = (_help(c) for c in ("image", "video", "batch", "serve"))
    assert "`all`: a named grid" in image and "--side-by-side" in image
    for text in (video, batch, serve):
        assert "`all`" not in text and "(dctoon image)" not in text
    assert "Live (camera)" in serve and "Options" in serve
    assert f"default style ({default_style()})" in _help("demo") and "fresh folder" in _help("demo")
    for text, groups in ((image, ("input and output:", "look:", "performance:")),
                         (video, ("input and output:", "look:", "video:", "performance:")),
                         (batch, ("input and output:", "look:", "video:", "performance:")),
                         (serve, ("server:", "look (the page's defaults):", "limits:", "performance:"))):
        assert all(g in text for g in groups), (groups, text[:300])
    assert "side-by-side.mp4" in video
    top = _help()
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for command in ("image", "video", "batch", "demo", "serve", "train", "styles", "models"):
        assert f" {command} " in top and f"dctoon {command}" in readme, command


SCRIPT = """import sys, time
from dctoon.cli import main
began = time.perf_counter()
try:
    code = main(sys.argv[1:])
except SystemExit as e:  # --version
    code = e.code
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'onnxruntime', 'openvino', 'onnx', 'torch', 'av', 'cv2',
                                                            'numpy', 'gradio'})
print(code, round(time.perf_counter() - began, 3), ' '.join(heavy))
"""


@pytest.mark.parametrize("case, allowed", [
    ("version", set()),
    ("missing", {"numpy"}),
    ("exists", {"numpy", "cv2"}),
    ("not-an-image", {"numpy", "cv2"}),
    ("missing-video", {"numpy", "cv2", "av"}),
])
def test_checks_answer_before_heavy_imports_and_model_loads(tmp_path, fp16_model, case, allowed):
    """`--version` and the checks that need no model answer without importing onnxruntime, OpenVINO or
    PyTorch (and in well under a second on an idle machine: bench/startup.py)."""
    photo = need(IMAGES / "portrait-512.jpg")
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("a text file, not a picture\n")
    argv = {"version": ["--version"], "missing": ["image", tmp_path / "nothere.jpg"],
            "exists": ["image", photo, "-o", taken], "not-an-image": ["image", text, "-o", tmp_path / "o.png"],
            "missing-video": ["video", tmp_path / "nothere.mp4"]}[case]
    r = subprocess.run([sys.executable, "-c", SCRIPT, *map(str, argv)], capture_output=True, text=True)
    code, seconds, *heavy = r.stdout.splitlines()[-1].split()
    assert code == ("0" if case == "version" else "2") and set(heavy) <= allowed, (r.stdout, r.stderr)
    if case == "version":
        assert r.stdout.startswith("dctoon ")
    else:
        one_line_error(r.stderr)
    assert float(seconds) < 5, seconds  # a model load alone takes seconds here; a check, a fraction of one


EXHAUST = """import resource, sys
from dctoon.cli import main
from dctoon.pipeline import load
import av, cv2, onnxruntime  # noqa: F401 - every library in before the limit
style, command = sys.argv[1], sys.argv[2:]
load(style, device="cpu")
vm = int(next(ln for ln in open("/proc/self/status") if ln.startswith("VmSize")).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + 64 * 2**20, resource.RLIM_INFINITY))
sys.exit(main([*command, "--style", style, "--device", "cpu"]))
"""


@pytest.mark.parametrize("command", ["video", "image"])
def test_running_out_of_threads_or_memory_is_said_as_such(tmp_path, fp16_model, command):
    """A fine input on a machine that cannot start FFmpeg's decoding threads or onnxruntime's buffers
    (the address space capped just above what the loaded process holds: a real limit, no mock): one
    line says what ran out, never that the video is corrupt or the model cannot be loaded."""
    out = tmp_path / "out"
    out.mkdir()
    args = (["video", need(VIDEOS / "talking-head-512-noaudio.mp4"), "--end", "0.5", "-q"] if command == "video"
            else ["image", need(IMAGES / "portrait-color.jpg")])
    r = subprocess.run([sys.executable, "-c", EXHAUST, str(fp16_model), *map(str, args), "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    line = one_line_error(r.stderr)  # and nothing else: no onnxruntime log line, no tqdm warning
    assert r.returncode == 2 and "ran out of" in line, line
    assert not any(w in line for w in ("corrupt", "not a readable", "truncated", "cannot load")), line
    assert not list(out.iterdir())  # nothing half-written
