"""Face detection, alignment and the blend mask, checked on the real photos in ../shared."""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from dctoon.face import Face, FaceDetector, align, alignment_matrix, blend_mask, reference_points

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
IMAGES = SHARED / "media" / "images"
ALPHA = SHARED / "models" / "reference" / "dctnet_alpha.jpg"

PORTRAITS = ["portrait-color.jpg", "portrait-512.jpg", "portrait-bw.jpg", "portrait-bw-2048.jpg"]


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found: ../shared (real test data) is not beside the checkout")
    return path


@lru_cache(maxsize=None)
def _detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return _detector()


@lru_cache(maxsize=None)
def _load(name: str) -> np.ndarray:
    path = str(IMAGES / name)
    if "-bw" in name:  # decode black-and-white photos as grey, then widen to 3 channels
        return cv2.cvtColor(cv2.imread(path, cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def load(name: str) -> np.ndarray:
    need(IMAGES / name)
    return _load(name)


@lru_cache(maxsize=None)
def _faces(name: str) -> tuple[Face, ...]:
    return tuple(_detector().detect(_load(name)))


def faces_in(name: str) -> tuple[Face, ...]:
    need(IMAGES / name)
    return _faces(name)


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]


def assert_plausible(face: Face) -> None:
    """Landmarks in face order: eyes above nose above mouth, image-left before image-right."""
    (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = face.landmarks
    assert lex < rex and lmx < rmx
    assert max(ley, rey) < ny < min(lmy, rmy)
    assert lex < nx < rex
    x1, y1, x2, y2 = face.box
    assert np.all((face.landmarks >= [x1, y1]) & (face.landmarks <= [x2, y2]))
    assert 0.9 < face.score <= 1.0
    eye_distance = float(np.hypot(rex - lex, rey - ley))
    assert 0.25 < eye_distance / face.size < 0.6


# --- detection -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PORTRAITS)
def test_portrait_has_exactly_one_plausible_face(name: str) -> None:
    faces = faces_in(name)
    assert len(faces) == 1
    face = faces[0]
    assert face.box.dtype == np.float32 and face.box.shape == (4,)
    assert face.landmarks.dtype == np.float32 and face.landmarks.shape == (5, 2)
    assert_plausible(face)
    height, width = load(name).shape[:2]
    assert face.size > 0.2 * min(height, width)  # a portrait's face is big


def test_no_face_on_a_dog(detector: FaceDetector) -> None:
    assert faces_in("dog-no-human-face.jpg") == ()


@pytest.mark.parametrize(
    ("name", "centre"),
    [
        ("small-face-in-photo.jpg", (343, 330)),  # the child in the hand-held print
        ("painting-full-body.jpg", (318, 128)),  # the sitter, not the floral chair
    ],
)
def test_finds_the_face_in_harder_photos(name: str, centre: tuple[int, int]) -> None:
    faces = faces_in(name)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert x1 < centre[0] < x2 and y1 < centre[1] < y2
    assert_plausible(faces[0])


def test_faces_sorted_largest_first(detector: FaceDetector) -> None:
    small = load("portrait-bw.jpg")
    big = load("portrait-512.jpg")
    canvas = np.full((520, 520 + 380, 3), 128, np.uint8)
    canvas[: small.shape[0], : small.shape[1]] = small
    canvas[:512, 380 : 380 + 512] = big
    faces = detector.detect(canvas)
    assert len(faces) == 2
    assert faces[0].size > faces[1].size
    assert faces[0].box[0] > 380 > faces[1].box[2]  # the big face is the one on the right


def test_mirrored_view_keeps_image_left_first(detector: FaceDetector) -> None:
    """A flipped, non-contiguous view: "left eye" stays the one on the image's left."""
    image = load("portrait-color.jpg")
    face = faces_in("portrait-color.jpg")[0]
    faces = detector.detect(image[:, ::-1])
    assert len(faces) == 1
    assert_plausible(faces[0])
    mirrored = face.landmarks[[1, 0, 2, 4, 3]] * [-1, 1] + [image.shape[1] - 1, 0]
    assert np.abs(faces[0].landmarks - mirrored).max() < 0.04 * face.size


def test_large_image_maps_back_to_full_resolution(detector: FaceDetector) -> None:
    """The 2048 px photo is searched at 1024 px; boxes come back in 2048 px coordinates."""
    full = faces_in("portrait-bw-2048.jpg")[0]
    half_image = cv2.resize(load("portrait-bw-2048.jpg"), (1024, 1024), interpolation=cv2.INTER_AREA)
    # Half the min_face at half the resolution: the very same search, so the same result.
    half = FaceDetector(min_face=detector.min_face // 2).detect(half_image)[0]
    np.testing.assert_allclose(full.landmarks, 2 * half.landmarks, atol=1e-3)
    np.testing.assert_allclose(full.box, 2 * half.box, atol=1e-3)


def test_min_face_is_in_full_resolution_pixels() -> None:
    image = load("portrait-512.jpg")
    size = faces_in("portrait-512.jpg")[0].size
    # P-Net windows include context around the face, so only well above the face size is it missed.
    assert FaceDetector(min_face=int(size * 3)).detect(image) == []
    assert len(FaceDetector(min_face=int(size * 0.8), max_side=256).detect(image)) == 1


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 5, 3), (11, 300, 3), (0, 7, 3)])
def test_tiny_and_empty_images_have_no_faces(detector: FaceDetector, shape: tuple[int, int, int]) -> None:
    assert detector.detect(np.zeros(shape, np.uint8)) == []


def test_rejects_images_that_are_not_uint8_rgb(detector: FaceDetector) -> None:
    with pytest.raises(ValueError):
        detector.detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError):
        detector.detect(np.zeros((64, 64, 3), np.float32))


def test_face_arrays_are_read_only() -> None:
    face = faces_in("portrait-512.jpg")[0]
    with pytest.raises(ValueError):
        face.landmarks[0, 0] = 0.0


def test_detection_time(detector: FaceDetector, capsys: pytest.CaptureFixture[str]) -> None:
    """Reported, not asserted: CI machines vary too much."""
    lines = []
    for name in ("portrait-512.jpg", "portrait-bw-2048.jpg"):
        image = load(name)
        detector.detect(image)  # warm-up
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            detector.detect(image)
            runs.append(time.perf_counter() - start)
        height, width = image.shape[:2]
        lines.append(f"detect {name} {width}x{height}: {1000 * min(runs):.0f} ms (best of 3)")
    with capsys.disabled():
        print("\n" + "\n".join(lines))


# --- alignment -------------------------------------------------------------------------------


def test_reference_points_follow_dct_net_recipe() -> None:
    ref = reference_points()
    assert ref.dtype == np.float32 and ref.shape == (5, 2)
    # The left eye of the 96x112 template, +8 in x, pulled 25% towards the centre, at 288 px.
    expected = ((np.array([30.29459953 + 8, 51.69630051]) - 56) * 0.75 + 56) * 288 / 112
    np.testing.assert_allclose(ref[0], expected, atol=1e-4)
    np.testing.assert_allclose(reference_points(112, 1.0)[2], [56.02519989, 71.73660278], atol=1e-5)
    # Face centred horizontally, eyes level, mouth below nose below eyes.
    assert abs(ref[:, 0].mean() - 144) < 1.0
    assert ref[0, 1] < ref[2, 1] < ref[3, 1]


def test_alignment_recovers_an_exact_similarity() -> None:
    ref = reference_points().astype(np.float64)
    angle, scale, shift = np.deg2rad(23.0), 1.7, np.array([311.0, -42.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = (ref - 144) @ rotation.T + shift  # the reference face, moved into an image
    matrix = alignment_matrix(landmarks)
    assert matrix.shape == (2, 3) and matrix.dtype == np.float64
    np.testing.assert_allclose(apply(matrix, landmarks), ref, atol=1e-6)


def test_alignment_never_reflects() -> None:
    """Mirrored landmarks (eyes swapped) must rotate 180 degrees, not flip the face."""
    ref = reference_points().astype(np.float64)
    mirrored = ref * [-1.0, 1.0]
    matrix = alignment_matrix(mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


@pytest.mark.parametrize("name", ["portrait-512.jpg", "portrait-color.jpg", "portrait-bw.jpg"])
def test_aligned_crop_puts_the_face_on_the_reference_points(detector: FaceDetector, name: str) -> None:
    image, face = load(name), faces_in(name)[0]
    crop, matrix = align(image, face.landmarks)
    assert crop.shape == (288, 288, 3) and crop.dtype == np.uint8
    # A similarity: equal scale on both axes, no shear, no reflection.
    (a, b), (c, d) = matrix[:, :2]
    assert a == pytest.approx(d, abs=1e-9) and b == pytest.approx(-c, abs=1e-9) and a * d - b * c > 0
    ref = reference_points().astype(np.float64)
    mapped = apply(matrix, face.landmarks)
    # Least squares centres the five points exactly; single points keep the face's own geometry
    # (nose length, mouth width), a few pixels off the template.
    np.testing.assert_allclose(mapped.mean(axis=0), ref.mean(axis=0), atol=1e-6)
    residual = np.linalg.norm(mapped - ref, axis=1)
    assert residual.max() < 12.0 and np.sqrt(np.mean(residual**2)) < 7.0
    # The crop really shows that face there: detecting again in it finds the mapped landmarks.
    again = detector.detect(crop)
    assert len(again) >= 1
    assert np.linalg.norm(again[0].landmarks - mapped, axis=1).max() < 4.0


@pytest.mark.parametrize(("angle", "scale"), [(15.0, 0.8), (-20.0, 1.2), (30.0, 0.7), (-10.0, 0.6)])
def test_alignment_undoes_a_known_rotation_and_scale(
    detector: FaceDetector, angle: float, scale: float
) -> None:
    image = load("portrait-512.jpg")
    base = faces_in("portrait-512.jpg")[0]
    moved = cv2.getRotationMatrix2D((256.0, 256.0), angle, scale)
    moved[:, 2] += [100.0, 60.0]
    warped = cv2.warpAffine(image, moved, (712, 672), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    faces = detector.detect(warped)
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].landmarks, apply(moved, base.landmarks), atol=6.0 * max(scale, 1.0))
    # Aligning the moved face must land the original face on the same crop positions.
    found = alignment_matrix(faces[0].landmarks)
    composed = np.hstack([found[:, :2] @ moved[:, :2], (found[:, :2] @ moved[:, 2] + found[:, 2])[:, None]])
    direct = alignment_matrix(base.landmarks)
    assert np.linalg.norm(apply(composed, base.landmarks) - apply(direct, base.landmarks), axis=1).max() < 4.0


def test_align_replicates_the_border_instead_of_black_bars() -> None:
    """A face at the frame's corner: the crop reaches outside the image and must not go black."""
    image = np.full((200, 200, 3), 180, np.uint8)
    landmarks = reference_points().astype(np.float64) * 0.5 - 40  # mostly above-left of the frame
    crop, _ = align(image, landmarks)
    assert crop.min() == 180


def test_alignment_rejects_bad_landmarks() -> None:
    with pytest.raises(ValueError):
        alignment_matrix(np.zeros((4, 2)))
    with pytest.raises(ValueError):
        alignment_matrix(np.ones((5, 2)))


# --- blend mask ------------------------------------------------------------------------------


def test_blend_mask_shape_and_feathering() -> None:
    mask = blend_mask()
    assert mask.shape == (288, 288) and mask.dtype == np.float32
    assert mask.min() == 0.0 and mask.max() == 1.0
    # Exactly transparent on and near every border: no crop edge can show.
    margin = 8
    assert not mask[:margin].any() and not mask[-margin:].any()
    assert not mask[:, :margin].any() and not mask[:, -margin:].any()
    # Opaque over the face: the reference landmarks and the region around them.
    ref = np.round(reference_points()).astype(int)
    assert np.all(mask[ref[:, 1], ref[:, 0]] == 1.0)
    assert np.all(mask[60:230, 90:198] == 1.0)
    # An upright head shape, mirror-symmetric, taller than wide.
    np.testing.assert_allclose(mask, mask[:, ::-1], atol=1e-6)
    rows, cols = np.nonzero(mask > 0.5)
    assert np.ptp(rows) > 1.15 * np.ptp(cols)
    # Smooth: no step anywhere, and monotone from the centre outwards.
    assert np.abs(np.diff(mask, axis=0)).max() < 0.1 and np.abs(np.diff(mask, axis=1)).max() < 0.1
    assert np.all(np.diff(mask[144, 144:]) <= 0) and np.all(np.diff(mask[144:, 144]) <= 0)


def test_blend_mask_scales_with_size() -> None:
    small, big = blend_mask(144), blend_mask(576)
    resized = cv2.resize(big, (144, 144), interpolation=cv2.INTER_AREA)
    assert np.abs(resized - small).mean() < 0.01
    with pytest.raises(ValueError):
        blend_mask(8)


def test_blend_mask_resembles_official_alpha() -> None:
    """Close to DCT-Net's alpha.jpg, which is read from ../shared only to compare."""
    official = cv2.imread(str(need(ALPHA)), cv2.IMREAD_GRAYSCALE)
    official = cv2.resize(official, (288, 288), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    mask = blend_mask(288)
    mad = float(np.abs(mask - official).mean())
    ours, theirs = mask > 0.5, official > 0.5
    iou = float((ours & theirs).sum() / (ours | theirs).sum())
    assert mad < 0.08, mad
    assert iou > 0.85, iou
