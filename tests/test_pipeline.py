"""The compound pipeline on real photos: faces by the head model, seamless paste-back, no face = background."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import dctoon
from dctoon.face import Face, blend_mask
from dctoon.pipeline import compose

from conftest import IMAGES, need


@pytest.fixture(scope="module")
def cartoonizer(fp16_model):
    return dctoon.load(str(fp16_model))


def rgb(name: str) -> np.ndarray:
    return dctoon.read_image(need(IMAGES / name))


def test_no_face_gives_background_result_at_input_size(cartoonizer):
    img = rgb("dog-no-human-face.jpg")
    out = cartoonizer.stylize(img)
    assert out.shape == img.shape
    whole = cv2.cvtColor(cartoonizer.background(np.ascontiguousarray(img[..., ::-1])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(out, whole)


def test_face_region_uses_head_model_and_rest_is_background(tmp_path, fp16_model):
    """A style whose head and background models differ: the face shows the head model's output."""
    from dctoon.importers import read_tflite
    from dctoon.styles import save_style
    from test_ttn import random_weights

    head = read_tflite(fp16_model).weights
    folder = save_style(tmp_path / "two", "two", head, random_weights(channel=32, blocks=4),
                        description="test", license="test", source="test")
    c = dctoon.load(str(folder))
    img = rgb("portrait-512.jpg")
    faces = c.detector.detect(img)
    assert len(faces) == 1
    out = c.stylize(img).astype(int)
    whole = c.background(np.ascontiguousarray(img[..., ::-1]))[..., ::-1].astype(int)
    head_only = c.head(np.ascontiguousarray(img[..., ::-1]))[..., ::-1].astype(int)
    x1, y1, x2, y2 = faces[0].box.astype(int)
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    inner = (slice(cy - 30, cy + 30), slice(cx - 30, cx + 30))
    assert np.abs(out[inner] - whole[inner]).mean() > 20  # not the background model ...
    assert np.abs(out[inner] - head_only[inner]).mean() < 6  # ... but the head model's look
    far = np.zeros(img.shape[:2], bool)
    far[:, :10] = far[:, -10:] = True
    np.testing.assert_array_equal(out[far], whole[far])  # outside the pasted region: untouched


def test_no_visible_seam_at_the_mask_edge(cartoonizer):
    """Gradients along the blend ring are no stronger than the same ring in the whole-image result."""
    img = rgb("portrait-color.jpg")
    bgr = np.ascontiguousarray(img[..., ::-1])
    face = cartoonizer.detector.detect(img)[0]
    out = cartoonizer.stylize_bgr(bgr, [face])
    whole = cartoonizer.background(bgr)
    from dctoon.face import alignment_matrix

    size = cartoonizer.crop_size(face)
    inv = cv2.invertAffineTransform(alignment_matrix(face.landmarks, size))
    m = cv2.warpAffine(cartoonizer.mask(size), inv, img.shape[1::-1])
    ring = (m > 0.02) & (m < 0.98)

    def grad(x):
        g = cv2.cvtColor(x, cv2.COLOR_BGR2GRAY).astype(np.float32)
        return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))

    ratio = grad(out)[ring].mean() / grad(whole)[ring].mean()
    print(f"seam gradient ratio {ratio:.3f}")
    assert ratio < 1.25


def test_overlapping_faces_blend_independently_of_order(cartoonizer):
    img = rgb("portrait-512.jpg")
    bgr = np.ascontiguousarray(img[..., ::-1])
    f = cartoonizer.detector.detect(img)[0]
    shifted = Face(f.box + [25, 5, 25, 5], f.score, f.landmarks + [25, 5])
    a = cartoonizer.stylize_bgr(bgr, [f, shifted])
    b = cartoonizer.stylize_bgr(bgr, [shifted, f])
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_compose_weight_zero_is_a_no_op():
    bg = np.full((100, 100, 3), 50, np.uint8)
    heads = np.full((1, 288, 288, 3), 200, np.uint8)
    m = np.array([[2.88, 0, 0], [0, 2.88, 0]], np.float64)  # image -> crop: the crop covers the frame
    np.testing.assert_array_equal(compose(bg, heads, [m], blend_mask(288), [0.0]), bg)
    out = compose(bg, heads, [m], blend_mask(288), [1.0])
    assert out.max() > 150 and out[0, 0, 0] == 50


def test_faces_below_min_face_are_left_to_the_background(fp16_model):
    c = dctoon.load(str(fp16_model), min_face=10_000)
    img = rgb("portrait-512.jpg")
    whole = cv2.cvtColor(c.background(np.ascontiguousarray(img[..., ::-1])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(c.stylize(img), whole)


def test_api_accepts_grey_and_rgba_and_max_side(fp16_model, cartoonizer):
    grey = rgb("portrait-bw.jpg")[..., 0]
    assert cartoonizer.stylize(grey).shape == grey.shape + (3,)
    rgba = np.dstack([rgb("portrait-512.jpg"), np.full((512, 512), 7, np.uint8)])
    out = cartoonizer.stylize(rgba)
    assert out.shape == (512, 512, 4) and (out[..., 3] == 7).all()
    small = dctoon.load(str(fp16_model), max_side=256).stylize(rgb("portrait-512.jpg"))
    assert small.shape == (256, 256, 3)
    with pytest.raises(ValueError):
        cartoonizer.stylize(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(TypeError):
        dctoon.load(str(fp16_model), no_such_option=1)


def test_big_faces_get_a_crop_as_sharp_as_the_frame(fp16_model, cartoonizer):
    """A 2048 px portrait's face is not squeezed into 288 px; small faces keep DCT-Net's 288."""
    from dctoon.face import alignment_matrix

    for name, lo, hi in [("portrait-bw-2048.jpg", 600, 768), ("painting-full-body.jpg", 288, 288)]:
        face = cartoonizer.detector.detect(rgb(name))[0]
        size = cartoonizer.crop_size(face)
        assert lo <= size <= hi and size % 4 == 0
        scale = np.hypot(*alignment_matrix(face.landmarks, size)[:, 0])
        assert scale >= 0.99 or size == 768 or size == 288  # crop pixels >= frame pixels unless capped
    fixed = dctoon.load(str(fp16_model), max_head_size=288)
    assert fixed.crop_size(face) == 288


def test_the_cartoonizer_contract(cartoonizer, fp16_model):
    """Settings are frozen and never changed under the caller; configure() and fork() share the
    loaded models; fork() gives a concurrent job its own face detector; unknown options are refused."""
    import dataclasses

    mine = dctoon.Settings(max_side=256)
    c = dctoon.load(str(fp16_model), mine, faces=False)
    assert mine == dctoon.Settings(max_side=256) and c.settings.faces is False and c.settings.max_side == 256
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.settings.max_side = 10
    with pytest.raises(TypeError, match="unknown option 'colour'"):
        dctoon.load(str(fp16_model), colour="red")
    job = cartoonizer.configure(max_side=128)
    assert job.head is cartoonizer.head and job.settings.max_side == 128 and cartoonizer.settings.max_side is None
    detector = cartoonizer.detector
    forked = cartoonizer.fork()
    assert forked.head is cartoonizer.head and forked.detector is not detector and cartoonizer.detector is detector
    img = rgb("portrait-512.jpg")
    np.testing.assert_array_equal(forked.stylize(img), cartoonizer.stylize(img))
