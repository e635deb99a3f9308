"""Beyond the peers: style strength (per region), style mixing, every style at once, GIF/WebP
animations and side-by-side video, on real photos and clips."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

import dctoon
from dctoon.errors import ModelError
from dctoon.styles import installed, parse_mix

from conftest import FP16, IMAGES, OFFICIAL, VIDEOS, need, one_line_error, run


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return dctoon.read_image(need(IMAGES / "portrait-512.jpg"), max_side=256)[..., :3]


@pytest.fixture(scope="module")
def anime():
    return dctoon.load(str(need(OFFICIAL / "dctnet_anime.tflite")))


def test_strength_one_is_the_style_and_zero_the_photo(anime, photo):
    full = anime.stylize(photo)
    assert np.array_equal(anime.configure(strength=1.0).stylize(photo), full)
    assert np.array_equal(anime.configure(strength=0.0).stylize(photo), photo)
    dist = [np.abs(anime.configure(strength=s).stylize(photo).astype(int) - photo).mean() for s in (0.25, 0.5, 0.75)]
    whole = np.abs(full.astype(int) - photo).mean()
    assert 0 < dist[0] < dist[1] < dist[2] < whole  # less cartoon, step by step


def test_strength_keeps_the_photos_edges(anime, photo):
    """Half strength is not a cross-fade that ghosts: where the photo is flat, the result is as
    flat as the full-strength cartoon's own surfaces (no second set of edges)."""
    import cv2

    def edges(rgb):
        g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))

    flat = edges(photo) < np.percentile(edges(photo), 50)
    half, full = anime.configure(strength=0.5).stylize(photo), anime.stylize(photo)
    assert edges(half)[flat].mean() <= 0.75 * edges(full)[flat].mean() + edges(photo)[flat].mean()


def test_face_and_background_strength_apart(anime, photo):
    from dctoon.face import FaceDetector

    face = FaceDetector().detect(photo)[0]
    x0, y0, x1, y1 = face.box.astype(int)
    inner = (slice(y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4), slice(x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4))
    out = anime.configure(face_strength=0.0, background_strength=1.0).stylize(photo).astype(int)
    full = anime.stylize(photo).astype(int)
    assert np.abs(out[inner] - photo[inner]).mean() < 0.3 * np.abs(full[inner] - photo[inner]).mean()
    corner = (slice(0, 40), slice(0, 40))  # background: untouched by the face's strength
    assert np.abs(out[corner] - full[corner]).max() <= 1


def test_bad_strength_is_one_line(tmp_path, capsys):
    code, _, err = run(["image", need(IMAGES / "portrait-512.jpg"), "-o", tmp_path, "-s", FP16,
                        "--strength", "1.5"], capsys)
    assert code == 2 and "strength must be between 0 and 1" in one_line_error(err)


def test_mix_is_the_weighted_mix_of_the_styles(photo):
    anime, d3 = str(need(OFFICIAL / "dctnet_anime.tflite")), str(need(OFFICIAL / "dctnet_3d.tflite"))
    a = dctoon.load(anime, faces=False).stylize(photo).astype(float)
    b = dctoon.load(d3, faces=False).stylize(photo).astype(float)
    mixed = dctoon.load(f"{anime}+{d3}:0.3", faces=False)
    assert mixed.style.name == "dctnet_anime+dctnet_3d"
    assert np.abs(mixed.stylize(photo) - (0.7 * a + 0.3 * b)).max() <= 1.0


def test_mix_spec():
    assert parse_mix("a+b:0.3") == [("a", pytest.approx(0.7)), ("b", pytest.approx(0.3))]
    assert parse_mix("a+b+c") == [(n, pytest.approx(1 / 3)) for n in "abc"]
    for bad in ("a:0.6+b:0.7", "a+b:x", "a+b:0", "+b"):
        with pytest.raises(ModelError):
            parse_mix(bad)


def test_all_styles_grid(tmp_path, capsys):
    code, out, err = run(["image", need(IMAGES / "portrait-512.jpg"), "-o", tmp_path, "--style", "all"], capsys)
    assert code == 0, err
    grid = dctoon.read_image(out.strip())
    n = 1 + len(installed())
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    assert grid.shape[:2] == (rows * (320 + 30), cols * 320)
    tiles = [grid[r * 350:r * 350 + 320, c * 320:(c + 1) * 320] for r in range(rows) for c in range(cols)][:n]
    assert all(np.abs(t.astype(int) - tiles[0]).mean() > 3 for t in tiles[1:])  # each style differs from the photo


@pytest.fixture(scope="module")
def fast():
    return dctoon.load(str(need(FP16)), max_side=160, faces=False)


def _durations(path) -> list[int]:
    """Each frame's display time (ms): Pillow's for GIF; WebP's from its ANMF chunks (Pillow does
    not report them)."""
    data = path.read_bytes()
    if data[:3] == b"GIF":
        with Image.open(path) as im:
            return [(im.seek(k), im.info["duration"])[1] for k in range(im.n_frames)]
    out, i = [], 12
    while i + 8 <= len(data):
        kind, size = data[i:i + 4], int.from_bytes(data[i + 4:i + 8], "little")
        if kind == b"ANMF":
            out.append(int.from_bytes(data[i + 8 + 12:i + 8 + 15], "little"))
        i += 8 + size + (size & 1)
    return out


@pytest.mark.parametrize("ext", [".gif", ".webp"])
def test_short_animations(fast, tmp_path, ext):
    src = need(VIDEOS / "talking-head-512-noaudio.mp4")
    dst = tmp_path / f"clip{ext}"
    result = fast.stylize_video(src, dst, end=2.0, bar=False)
    assert result.path == dst and dst.is_file() and not list(tmp_path.glob(".*"))
    assert dst.stat().st_size <= 8 << 20
    with Image.open(dst) as im:
        assert im.n_frames == result.frames and 28 <= im.n_frames <= 31  # 2 s at 15 frames/s
        assert max(im.size) == 160
        frames = []
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.asarray(im.convert("RGB"), np.float32))
    assert abs(sum(_durations(dst)) - 2000) <= 80
    # against the same clip as video, frame 0: a global palette with dithering stays close (no banding)
    ref = tmp_path / "ref.mp4"
    fast.stylize_video(src, ref, end=2.0, bar=False, crf=0)
    with av.open(str(ref)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32)
    assert np.abs(frames[0] - first).mean() < 6


def test_animation_of_a_long_clip_is_refused(tmp_path, capsys, monkeypatch):
    from dctoon.video import animation

    monkeypatch.setattr(animation, "MAX_SECONDS", 1.0)  # the shared clips are all short
    code, _, err = run(["video", need(VIDEOS / "talking-head-512-noaudio.mp4"), "-o", tmp_path / "y.gif",
                        "-s", FP16, "--max-side", 96], capsys)
    assert code == 2 and "short clips" in one_line_error(err) and not list(tmp_path.iterdir())


def test_side_by_side(fast, tmp_path):
    src = need(VIDEOS / "talking-head-512-noaudio.mp4")
    plain = fast.stylize_video(src, tmp_path / "plain.mp4", end=1.0, bar=False, crf=0)
    both = fast.stylize_video(src, tmp_path / "both.mp4", end=1.0, bar=False, crf=0, side_by_side=True)
    assert both.size == (2 * plain.size[0], plain.size[1]) and both.frames == plain.frames
    with av.open(str(both.path)) as a, av.open(str(plain.path)) as b:
        fa = next(a.decode(video=0)).to_ndarray(format="rgb24").astype(int)
        fb = next(b.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    w = plain.size[0]
    assert np.abs(fa[:, w:] - fb).mean() < 1.5  # right: the stylized frame
    assert np.abs(fa[:, :w] - fb).mean() > 5  # left: the input, not the cartoon


def test_live_frames_are_the_video_path_with_its_state(tmp_path):
    """The web app's live camera: each frame through the video path's FrameStylizer (tracking and
    blending carried between frames), sized to the live side, rebuilt when the style or a strength
    changes; a bad frame or size from the client is one line."""
    pytest.importorskip("gradio")
    from dctoon.errors import InputError
    from dctoon.video.temporal import FrameStylizer
    from dctoon.web import App

    app = App(str(need(FP16)), workdir=tmp_path / "web")
    label = next(iter(app.styles))
    with av.open(str(need(VIDEOS / "talking-head-512-audio.mp4"))) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(4), c.decode(video=0))]
    reference = FrameStylizer(app.cartoonizer(label, "portrait", None))
    session = None
    for i, rgb in enumerate(frames):
        out, status, session = app.live(rgb, label, "portrait", (1.0, 1.0), 256, session)
        small = np.asarray(Image.fromarray(rgb).resize((256, 256), Image.BOX))  # 512x512 to 256: an area average
        want = reference(np.ascontiguousarray(small[..., ::-1]), session.times[-1][0] - session.began)[..., ::-1]
        assert out.shape == (256, 256, 3) and np.abs(out.astype(int) - want).mean() < 2.0, i
        assert status.startswith(f"{label} · ") and status.endswith(" · 256x256")
    kept = session
    _, _, session = app.live(frames[0], label, "portrait", (0.5, 1.0), 256, session)
    assert session.stylizer is not kept.stylizer and session.began > kept.began  # a new strength: fresh state
    out, _, _ = app.live(frames[0], label, "portrait", (0.0, 0.0), 384, None)
    photo = np.asarray(Image.fromarray(frames[0]).resize((384, 384), Image.BOX))
    assert np.abs(out.astype(int) - photo).mean() < 2.0  # strength 0: the camera's own picture
    _, _, whole = app.live(frames[0], label, "frame", (1.0, 1.0), 256, session)
    assert whole.stylizer.tracker is None  # whole frame: one pass, no head model, no face tracks
    assert app.live(None, label)[0] is None  # no frame yet: nothing to do
    big = tmp_path / "big.png"  # a frame file is read as uploads are: the header checked first
    Image.new("RGB", (9000, 9000)).save(big)
    app.limits.max_megapixels = 16
    out, _, _ = app.live(str(big), label, "portrait", (1.0, 1.0), 256)
    assert out.shape == (256, 256, 3)
    for bad, size in ((np.zeros((8, 8, 3), np.uint8), 384), (np.zeros((64, 64), np.uint8), 384),
                      (frames[0].astype(np.float32), 384), (frames[0], 1000), (frames[0], "x")):
        with pytest.raises(InputError) as e:
            app.live(bad, label, "portrait", (1.0, 1.0), size)
        assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="faces must be"):
        app.live(frames[0], label, "everything", (1.0, 1.0), 256)
    app.cleanup()
