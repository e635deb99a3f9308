"""Person modes, backdrops and auto-crop through the API and the CLI, on real photos and videos."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

import dctoon
from dctoon.errors import InputError
from dctoon.matte import parse_backdrop

from conftest import IMAGES, VIDEOS, need, one_line_error, run


@pytest.fixture(scope="module")
def base(fp16_model):
    return dctoon.load(str(fp16_model), max_side=512)


@pytest.fixture(scope="module")
def photo():
    return dctoon.read_image(need(IMAGES / "portrait-color.jpg"), max_side=512)


@pytest.fixture(scope="module")
def mask(base, photo):
    return base.segmenter(photo)


@pytest.fixture(scope="module")
def everything(base, photo):
    return base.stylize(photo).astype(int)


def regions(mask):
    return mask > 0.98, mask < 0.02


def mixed(mask, fg, bg):
    """What the matte should give: the person mask blending two layers."""
    m = mask[..., None]
    return m * np.asarray(fg, np.float64) + (1 - m) * np.asarray(bg, np.float64)


def test_person_mode_keeps_the_original_background(base, photo, mask, everything):
    out = base.configure(part="person").stylize(photo).astype(int)
    person, back = regions(mask)
    assert person.mean() > 0.2 and back.mean() > 0.1, "the portrait has both a person and a background"
    assert np.abs(out - mixed(mask, everything, photo)).max() <= 1
    assert np.abs(everything[back] - photo[back]).mean() > 5, "the background really was stylized in 'all'"


def test_background_mode_keeps_the_person_as_photographed(base, photo, mask, everything):
    out = base.configure(part="background").stylize(photo).astype(int)
    # the head model does not run in this mode: the background is the whole-frame background model's
    whole = cv2.cvtColor(base.background(np.ascontiguousarray(photo[..., ::-1])), cv2.COLOR_BGR2RGB).astype(int)
    assert np.abs(out - mixed(mask, photo, whole)).max() <= 1


@pytest.mark.parametrize("value, rgb", [("#00ff00", (0, 255, 0)), ("navy", (0, 0, 128))])
def test_colour_backdrop(base, photo, mask, everything, value, rgb):
    out = base.configure(backdrop=value).stylize(photo).astype(int)
    assert np.abs(out - mixed(mask, everything, np.broadcast_to(rgb, photo.shape))).max() <= 1


def test_transparent_backdrop_gives_rgba_with_the_mask_as_alpha(base, photo, mask, everything):
    out = base.configure(backdrop="transparent").stylize(photo)
    assert out.shape == photo.shape[:2] + (4,)
    assert np.abs(out[..., 3].astype(int) - np.round(mask * 255).astype(int)).max() <= 1
    np.testing.assert_array_equal(out[..., :3].astype(int), everything)


def test_blur_backdrop_is_smooth_and_has_no_halo_of_the_person(base, photo, mask):
    out = base.configure(backdrop="blur").stylize(photo).astype(np.float32)
    person, back = regions(mask)
    grad = lambda im: np.abs(np.diff(im, axis=1)).sum(2)[:, :][back[:, 1:]].mean()  # noqa: E731
    assert grad(out) < 0.5 * grad(photo.astype(np.float32))
    # no halo: the blurred background near the person is not pulled toward the person's colours
    ring = cv2.dilate(person.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool) & back
    person_mean = photo[person].mean(0)
    assert np.abs(out[ring] - person_mean).mean() > 0.8 * np.abs(photo[ring].astype(np.float32) - person_mean).mean()


def test_image_backdrop_covers_the_frame(base, photo, mask, everything, tmp_path):
    bg = np.zeros((100, 300, 3), np.uint8)
    bg[:, :150] = (255, 0, 0)
    bg[:, 150:] = (0, 0, 255)
    path = tmp_path / "bg.png"
    dctoon.write_image(path, bg)
    out = base.configure(backdrop=str(path)).stylize(photo).astype(int)
    h, w = photo.shape[:2]  # square photo, 3:1 backdrop: scaled to the height, centre cut, half red half blue
    want = np.zeros_like(photo)
    want[:, : w // 2] = (255, 0, 0)
    want[:, w // 2:] = (0, 0, 255)
    sure = np.ones((h, w), bool)
    sure[:, w // 2 - 8: w // 2 + 8] = False  # the 5x upscale blends red into blue here
    assert np.abs(out - mixed(mask, everything, want))[sure].max() <= 1


def test_auto_crop_photo(base, photo):
    for aspect, ratio in (("9:16", 9 / 16), ("1:1", 1.0), ("16:9", 16 / 9)):
        c = base.configure(crop=aspect)
        out = c.stylize(photo)
        h, w = out.shape[:2]
        assert abs(w / h - ratio) < 0.02, (aspect, out.shape)
        before, after = c.before_after(photo)
        assert before.shape == out.shape and np.array_equal(after, out)
        assert any(np.array_equal(before, photo[y: y + h, x: x + w])  # a window of the photo, not resampled
                   for y in range(photo.shape[0] - h + 1) for x in range(photo.shape[1] - w + 1))


def test_bad_settings_fail_before_any_work(base):
    with pytest.raises(InputError):
        base.configure(part="people")
    with pytest.raises(InputError):
        base.configure(part="background", backdrop="blur")
    with pytest.raises(InputError):
        parse_backdrop("no-such-colour-or-file")
    with pytest.raises(InputError):
        base.configure(crop="tall")


@pytest.mark.parametrize("args", [
    ["--backdrop", "notacolour"],
    ["--part", "background", "--backdrop", "blur"],
    ["--crop", "9x16x2"],
])
def test_cli_bad_mode_options_one_line(args, tmp_path, capsys, fp16_model):
    code, _, err = run(["image", need(IMAGES / "portrait-512.jpg"), "-o", tmp_path, "-s", fp16_model, *args],
                       capsys)
    assert code == 2
    one_line_error(err)
    assert not list(tmp_path.iterdir())


def test_cli_transparent_png_and_video_refusal(tmp_path, capsys, fp16_model):
    code, out, err = run(["image", need(IMAGES / "portrait-512.jpg"), "-o", tmp_path, "-s", fp16_model,
                          "--backdrop", "transparent"], capsys)
    assert code == 0, err
    written = tmp_path / out.strip().split("/")[-1]
    assert written.suffix == ".png" and dctoon.read_image(written).shape[2] == 4
    code, _, err = run(["video", need(VIDEOS / "talking-head-512-audio.mp4"), "-o", tmp_path / "v.mp4",
                        "-s", fp16_model, "--backdrop", "transparent"], capsys)
    assert code == 2 and "transparent" in one_line_error(err)
    assert not (tmp_path / "v.mp4").exists()


def test_video_person_over_blur_cropped_to_9_16_keeps_audio(tmp_path, capsys, fp16_model):
    src = need(VIDEOS / "upper-body-720p-audio.mp4")
    dst = tmp_path / "short.mp4"
    code, out, err = run(["video", src, "-o", dst, "-s", fp16_model, "--part", "person", "--backdrop", "blur",
                          "--crop", "9:16", "--end", "1", "--max-side", "640", "-q"], capsys)
    assert code == 0, err
    with av.open(str(dst)) as c:
        v = c.streams.video[0]
        assert abs(v.width / v.height - 9 / 16) < 0.02 and max(v.width, v.height) <= 640
        assert c.streams.audio, "audio kept"
        frames = sum(1 for _ in c.decode(video=0))
    assert abs(frames - 30) <= 1


def test_models_command_lists_imports_and_explains(mask, tmp_path, capsys):
    code, out, _ = run(["models"], capsys)
    assert code == 0 and out.split("\n")[0].split()[:2] == ["selfie", "installed"]
    code, _, err = run(["models", "import", tmp_path / "missing.tgz"], capsys)
    assert code == 2 and "not found" in one_line_error(err)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\0\0\0\0TFL3" + b"\0" * 64)
    code, _, err = run(["models", "import", bad], capsys)
    assert code == 2 and "not a known" in one_line_error(err)
