"""Auto-crop on real photos and videos with the real MTCNN detector, plus synthetic planner cases.

Video checks run the detector on *every* frame (ground truth, at 360 px to keep this file
fast) and plan from the every-third-frame subset of it (``Sightings.thinned``, shown to equal a real
``analyze(every=3)`` run), so the face-inside check covers frames the planner never saw.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

import dctoon
from dctoon.camera import Sightings, motion_stats, plan
from dctoon.framing import Window, crop_window, parse_aspect, photo_crop, window_size
from dctoon.video.analyze import analyze, plan_video
from dctoon.errors import InputError
from dctoon.face import Face, FaceDetector

from conftest import IMAGES, VIDEOS, need

ASPECTS = ["9:16", "1:1", "4:5", "16:9"]
TRUTH_SIDE = 360  # detection resolution (long side) for the ground truth and the planner alike
# (video, aspect): every shared video with each of 9:16 and 1:1 that differs from its own shape.
CASES = [
    ("vertical-720x1280.mp4", "1:1"),
    ("boy-fullbody-720p.mp4", "9:16"),
    ("boy-fullbody-720p.mp4", "1:1"),
    ("upper-body-720p-audio.mp4", "9:16"),
    ("upper-body-720p-audio.mp4", "1:1"),
    ("talking-head-512-audio.mp4", "9:16"),
]
REPORT: list[str] = []


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def truth(detector):
    """Every-frame detections per video, computed once per module."""
    cache: dict[str, Sightings] = {}

    def get(name: str) -> Sightings:
        if name not in cache:
            cache[name] = analyze(need(VIDEOS / name), detector, every=1, max_side=TRUTH_SIDE)
        return cache[name]

    return get


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if REPORT:
        print("\n" + "\n".join(REPORT))


# --- aspect strings ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, ratio", [
    ("9:16", 9 / 16), ("4:5", 0.8), ("1:1", 1.0), ("16:9", 16 / 9), ("1.91:1", 1.91),
    (" 9/16 ", 9 / 16), ("4x5", 0.8), ("0.5625", 0.5625), ("1080:1920", 0.5625),
])
def test_parse_aspect_accepts_social_formats(text, ratio):
    assert parse_aspect(text) == pytest.approx(ratio)


@pytest.mark.parametrize("text", ["original", "none", ""])
def test_parse_aspect_original_means_no_crop(text):
    assert parse_aspect(text) is None


@pytest.mark.parametrize("text", ["9:0", "0:1", "wide", "9:16:1", "-9:16", "abc:def", "1:100", "nan", "9;16",
                                  "9:16\nrm -rf"])
def test_parse_aspect_rejects_bad_input_in_one_line(text):
    with pytest.raises(InputError) as e:
        parse_aspect(text)
    message = str(e.value)
    assert "\n" not in message and "9:16" in message and "1:1" in message and "original" in message


# --- windows and photos -----------------------------------------------------------------------

def test_window_size_is_the_largest_even_window_of_the_aspect():
    assert window_size((720, 1280), 9 / 16) == (404, 720)
    assert window_size((1280, 720), 1.0) == (720, 720)
    assert window_size((720, 1280), 16 / 9) == (1280, 720)
    assert window_size((375, 501), 1.0) == (374, 374)  # odd frames: even sides inside
    w, h = window_size((500, 375), 4 / 5)
    assert (w, h) == (374, 468) and w <= 375 and h <= 500
    with pytest.raises(ValueError):
        Window(0, 0, 3, 4)


def test_window_apply_scaled_and_crop_window():
    image = np.arange(40 * 60 * 3, dtype=np.uint32).reshape(40, 60, 3)
    win = Window(10, 4, 20, 30)
    assert win.apply(image).shape == (30, 20, 3) and win.apply(image)[0, 0, 0] == image[4, 10, 0]
    assert np.shares_memory(win.apply(image), image)
    assert crop_window(image, (10, 4, 20, 30)).shape == (30, 20, 3)
    half = crop_window(image.astype(np.float32), (10.5, 4.0, 20, 30))  # subpixel: bilinear
    assert half[0, 0, 0] == pytest.approx((image[4, 10, 0] + image[4, 11, 0]) / 2)
    big = win.scaled((40, 60), (80, 120))
    assert (big.w, big.h) == (40, 60) and big.inside((80, 120))
    with pytest.raises(ValueError):
        Window(50, 0, 20, 30).apply(image)


def _face(cx: float, cy: float, size: float) -> Face:
    """A synthetic face: box about the centre, eyes 10% of the size above it."""
    box = [cx - size / 2, cy - 0.6 * size, cx + size / 2, cy + 0.6 * size]
    s = size
    points = [[cx - 0.2 * s, cy - 0.1 * s], [cx + 0.2 * s, cy - 0.1 * s], [cx, cy + 0.1 * s],
              [cx - 0.15 * s, cy + 0.3 * s], [cx + 0.15 * s, cy + 0.3 * s]]
    return Face(box, 0.99, points)


def test_photo_crop_without_faces_is_centred():
    win = photo_crop((720, 1280), [], 9 / 16)
    assert (win.x, win.y, win.w, win.h) == ((1280 - 404) // 2, 0, 404, 720)


def test_photo_crop_keeps_the_biggest_face_and_as_many_as_fit():
    big, near, far = _face(300, 360, 160), _face(470, 380, 120), _face(1100, 360, 150)
    win = photo_crop((720, 1280), [far, near, big], 9 / 16)  # a 404 px wide window
    assert win.contains(big.box) and win.contains(near.box) and not win.contains(far.box)
    # Centred between the two kept faces (both prominent), within the margins.
    group_cx = (big.box[0] + near.box[2]) / 2
    assert abs(win.x + win.w / 2 - group_cx) <= 1
    # A wide crop takes all three, with the third's margin.
    wide = photo_crop((1080, 1920), [far, near, big], 16 / 9)
    assert all(wide.contains(f.box) for f in (big, near, far))


def test_photo_crop_puts_the_eyes_on_the_upper_third():
    face = _face(640, 700, 120)  # a small face low in a tall frame
    win = photo_crop((1600, 1280), [face], 1.0)
    eye = float(face.landmarks[:2, 1].mean())
    assert abs((eye - win.y) / win.h - 1 / 3) < 0.01
    assert abs(win.x + win.w / 2 - 640) <= 1


@pytest.fixture(scope="module")
def photos(detector):
    paths = sorted(need(IMAGES).glob("*.jpg"))
    assert paths
    out = []
    for path in paths:
        rgb = dctoon.read_image(path)[..., :3]
        out.append((path.name, rgb.shape[:2], detector.detect(rgb)))
    return out


@pytest.mark.parametrize("aspect", ASPECTS)
def test_photo_crops_of_real_images(photos, aspect):
    ratio = parse_aspect(aspect)
    faced = placed = 0
    for name, hw, faces in photos:
        win = photo_crop(hw, faces, ratio)
        assert win == photo_crop(hw, faces, ratio), name  # deterministic
        assert win.w % 2 == 0 and win.h % 2 == 0, name
        assert abs(win.w - win.h * ratio) <= 1.0 + 1e-9, (name, win)  # exact to the pixel
        assert win.inside(hw), (name, win)
        # The largest window of the aspect: one side is the frame's (to the even pixel).
        assert win.w >= hw[1] - 2 - 1 or win.h >= hw[0] - 2 - 1, (name, win)
        if not faces:
            assert abs(win.x - (hw[1] - win.w) / 2) <= 1 and abs(win.y - (hw[0] - win.h) / 2) <= 1
            continue
        faced += 1
        for face in faces:
            x1, y1, x2, y2 = np.clip(face.box, 0, [hw[1], hw[0], hw[1], hw[0]])
            if x2 - x1 <= win.w and y2 - y1 <= win.h:
                assert win.contains((x1, y1, x2, y2)), (name, aspect, win, face.box)
        eye = float(faces[0].landmarks[:2, 1].mean())
        if win.h < hw[0] - 1:  # the crop can move vertically: the eyes go to the upper half
            assert (eye - win.y) / win.h < 0.5 or win.y == hw[0] - win.h, (name, aspect, win)
            placed += 1
    assert faced >= 5  # the shared images are portraits (one is a dog)
    assert placed >= (0 if aspect == "9:16" else 1)  # no shared image is taller than 9:16


# --- video: analysis --------------------------------------------------------------------------

def test_analyze_matches_every_frame_truth_thinned(detector, truth):
    name = "talking-head-512-audio.mp4"
    seen = []
    track = analyze(need(VIDEOS / name), detector, every=3, max_side=TRUTH_SIDE,
                    progress=lambda done, total: seen.append((done, total)))
    full = truth(name)
    assert track.frame_hw == (512, 512) and track.n_frames == full.n_frames == 183
    assert track.fps == pytest.approx(25) and np.all(np.diff(track.times) > 0)
    assert seen[-1][0] == 183 and len(seen) == 183
    assert set(range(0, 183, 3)) <= set(track.detected.tolist())
    # This head moves fast: the refinement detected most in-between frames too.
    assert len(track.detected) > 183 // 3 + 20
    thin = full.thinned(3)
    assert np.array_equal(track.detected, thin.detected)
    for mine, theirs in zip(track.faces, thin.faces):
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs):
            np.testing.assert_allclose(a.box, b.box, atol=1e-3)


def test_analyze_applies_rotation_metadata(detector, truth, tmp_path):
    """A clip stored sideways with a 90-degree display matrix is analysed upright."""
    name = "vertical-720x1280.mp4"
    src = tmp_path / "sideways.mp4"
    with av.open(str(need(VIDEOS / name))) as cin, av.open(str(src), "w") as cout:
        s = cout.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 1280, 720, "yuv420p"
        s.time_base = s.codec_context.time_base = Fraction(1, 30)
        s.options = {"crf": "12", "preset": "ultrafast"}
        s.set_display_rotation(90)
        for i, frame in enumerate(cin.decode(video=0)):
            if i == 6:
                break
            upright = frame.to_ndarray(format="rgb24")
            stored = np.ascontiguousarray(np.rot90(upright, -1))  # shown turned back by 90 CCW
            out = av.VideoFrame.from_ndarray(stored, format="rgb24")
            out.pts = i
            for packet in s.encode(out):
                cout.mux(packet)
        for packet in s.encode(None):
            cout.mux(packet)
    track = analyze(src, detector, every=1, max_side=TRUTH_SIDE)
    assert track.frame_hw == (1280, 720) and track.n_frames == 6
    reference = truth(name)
    for i in range(6):
        a, b = track.faces[i][0], reference.faces[i][0]
        assert np.abs(a.box - b.box).max() < 0.06 * b.size, (i, a.box, b.box)


def test_analyze_bad_input_is_one_line(detector, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n")
    for path in (fake, tmp_path / "missing.mp4"):
        with pytest.raises(InputError) as e:
            analyze(path, detector)
        assert "\n" not in str(e.value)
    with pytest.raises(InputError):
        analyze(need(VIDEOS / "boy-fullbody-720p.mp4"), detector, every=0)


# --- video: the plan on real footage ------------------------------------------------------------

def naive_path(track: Sightings, frame_hw, aspect: float) -> np.ndarray:
    """The baseline: every frame centred on that frame's biggest face, eyes on the upper third."""
    fh, fw = frame_hw
    w, h = window_size(frame_hw, aspect)
    x, y = (fw - w) / 2, (fh - h) / 2
    out = []
    for found in track.faces:
        if found:
            f = found[0]
            x = np.clip((f.box[0] + f.box[2]) / 2 - w / 2, 0, fw - w)
            y = np.clip(float(f.landmarks[:2, 1].mean()) - h / 3, 0, fh - h)
        out.append([round(x), round(y), w, h])
    return np.array(out)


def inside_margin(windows: np.ndarray, track: Sightings) -> tuple[float, float]:
    """Smallest distance from a detected subject face box to the window edge over all frames
    (negative: outside), in pixels and as a fraction of that face's size."""
    worst_px, worst_rel = np.inf, np.inf
    for (x, y, w, h), found in zip(windows, track.faces):
        if not found:
            continue
        main = found[0].size
        for f in found:
            if f.size < 0.5 * main:
                continue  # not a subject: a small face in the background may be cropped
            x1, y1, x2, y2 = np.clip(f.box, 0, [track.frame_hw[1], track.frame_hw[0]] * 2)
            d = min(x1 - x, y1 - y, x + w - x2, y + h - y2)
            worst_px = min(worst_px, d)
            worst_rel = min(worst_rel, d / f.size)
    return float(worst_px), float(worst_rel)


@pytest.mark.parametrize("name, aspect", CASES)
def test_video_camera_keeps_the_face_in_and_is_smooth(truth, name, aspect):
    full = truth(name)
    ratio = parse_aspect(aspect)
    planned = full.thinned(3)
    windows = plan(planned, None, ratio)
    n = full.n_frames
    fh, fw = full.frame_hw
    w, h = window_size(full.frame_hw, ratio)
    assert windows.shape == (n, 4) and windows.dtype == np.int64
    assert np.all(windows[:, 2] == w) and np.all(windows[:, 3] == h)  # fixed size: no zoom pumping
    assert windows[:, 0].min() >= 0 and windows[:, 1].min() >= 0
    assert windows[:, 0].max() <= fw - w and windows[:, 1].max() <= fh - h
    assert np.array_equal(windows, plan(planned, None, ratio))  # deterministic

    # Every frame, including the ones the planner did not see: the face is inside.
    px, rel = inside_margin(windows, full)
    ours, naive = motion_stats(windows), motion_stats(naive_path(full, full.frame_hw, ratio))
    reduction = 1 - ours["mean_accel"] / naive["mean_accel"]
    REPORT.append(
        f"{name} {aspect}: {len(planned.detected)}/{n} frames detected, min face margin {px:.1f} px "
        f"({rel:+.3f} of face size); ours max move {ours['max_speed']:.0f} px/frame, max accel "
        f"{ours['max_accel']:.0f}, mean |accel| {ours['mean_accel']:.3f}; naive {naive['max_speed']:.0f}, "
        f"{naive['max_accel']:.0f}, {naive['mean_accel']:.3f}: {reduction:.0%} less jitter")
    assert rel >= -0.025, f"face outside the window by {-px:.1f} px"

    # Smooth: far less acceleration than centring on the face frame by frame, never worse peaks.
    assert reduction >= 0.7, REPORT[-1]
    assert ours["max_accel"] <= 0.5 * naive["max_accel"], REPORT[-1]
    assert ours["max_speed"] <= naive["max_speed"], REPORT[-1]
    slack = (w - full.faces[0][0].size) / full.faces[0][0].size
    if slack > 0.5:  # room around the face: a calm camera (the talking head in 9:16 has ~15%)
        assert ours["max_speed"] <= 4 and ours["max_accel"] <= 2, REPORT[-1]


@pytest.mark.parametrize("name, aspect", [("vertical-720x1280.mp4", "9:16"), ("talking-head-512-audio.mp4", "1:1")])
def test_video_in_its_own_shape_keeps_the_whole_frame(truth, name, aspect):
    full = truth(name)
    windows = plan(full.thinned(3), None, parse_aspect(aspect))
    fh, fw = full.frame_hw
    assert np.all(windows == [0, 0, fw, fh])


def test_plan_video_end_to_end(detector):
    path = need(VIDEOS / "boy-fullbody-720p.mp4")
    calls = []
    windows, info = plan_video(path, 9 / 16, detector, progress=lambda d, t: calls.append(d))
    assert windows.shape == (126, 4) and info.n_frames == 126 and info.frame_hw == (720, 1280)
    assert info.window == (404, 720) and info.subject_frames == 126 and calls[-1] == 126
    assert info.motion["max_speed"] <= 4
    # The windows for downscaled frames (as the stylizer may use) follow the same subject.
    half = plan(info.track, (360, 640), 9 / 16)
    assert np.all(half[:, 2:] == [202, 360])
    assert np.abs(half[:, 0] * 2 - windows[:, 0]).max() <= 8
    REPORT.append(f"plan_video boy-fullbody-720p 9:16 (every 3, 640 px): analysis {info.analysis_seconds:.2f} s "
                  f"for {info.n_frames} frames, plan {info.plan_seconds * 1000:.0f} ms")


# --- video: planner behaviour on synthetic tracks -----------------------------------------------

def synthetic(n: int, faces_at, cuts=(0,), hw=(720, 1280), fps=30.0, every=3) -> Sightings:
    detected = [i for i in range(n) if i % every == 0 or i in cuts]
    return Sightings(hw, fps, np.arange(n) / fps, np.array(detected), [faces_at(i) for i in detected],
                 np.array(cuts), every)


def test_plan_does_not_switch_between_people():
    # The main person is missed for 10 frames in every 100; a smaller one far away stays.
    def faces_at(i):
        out = [_face(1100, 300, 90)]
        if not 50 <= i % 100 < 60:
            out.insert(0, _face(250, 320, 150))
        return out

    windows = plan(synthetic(300, faces_at), None, 9 / 16)
    assert len(np.unique(windows[:, 0])) == 1
    assert Window(*windows[0]).contains(_face(250, 320, 150).box)


def test_plan_ignores_a_flickering_false_positive():
    # MTCNN's false positives (a shoulder, a shirt) score 0.8-0.92 and come and go; a real face ~1.
    main = _face(700, 250, 260)

    def faces_at(i):
        fake = Face(_face(420, 450, 210).box, 0.85, _face(420, 450, 210).landmarks)
        return [main, fake] if (i // 20) % 2 else [main]

    windows = plan(synthetic(300, faces_at), None, 1.0)
    assert len(np.unique(windows[:, 0])) == 1 and Window(*windows[0]).contains(main.box)
    assert abs(windows[0, 0] + 360 - 700) <= 1


def test_plan_frames_a_group_that_fits():
    a, b = _face(500, 300, 150), _face(700, 320, 130)
    windows = plan(synthetic(90, lambda i: [a, b]), None, 9 / 16)
    win = Window(*windows[45])
    assert win.contains(a.box) and win.contains(b.box)
    assert abs(win.x + win.w / 2 - (a.box[0] + b.box[2]) / 2) <= 1


def test_plan_holds_when_the_face_goes_and_centres_before_it_comes():
    windows = plan(synthetic(300, lambda i: [_face(300 + 2 * i, 300, 150)] if i < 100 else []), None, 9 / 16)
    assert np.all(windows[130:, 0] == windows[130, 0])  # held, not drifting back
    assert Window(*windows[99]).contains(_face(498, 300, 150).box)
    late = plan(synthetic(300, lambda i: [_face(200, 300, 150)] if i >= 150 else []), None, 9 / 16)
    assert late[0, 0] == (1280 - 404) // 2 and Window(*late[160]).contains(_face(200, 300, 150).box)


def test_plan_cuts_with_the_shot():
    windows = plan(synthetic(300, lambda i: [_face(250, 300, 150)] if i < 150 else [_face(1000, 300, 150)],
                             cuts=(0, 150)), None, 9 / 16)
    assert np.all(windows[:150, 0] == windows[0, 0]) and np.all(windows[150:, 0] == windows[150, 0])
    assert Window(*windows[149]).contains(_face(250, 300, 150).box)
    assert Window(*windows[150]).contains(_face(1000, 300, 150).box)


def test_plan_pans_smoothly_with_a_walking_subject():
    rng = np.random.default_rng(0)
    track = synthetic(300, lambda i: [_face(200 + 800 * i / 300 + rng.normal(0, 3), 300 + rng.normal(0, 3), 150)])
    windows = plan(track, None, 9 / 16)
    stats = motion_stats(windows)
    assert stats["max_speed"] <= 4 and stats["max_accel"] <= 1.0
    for i in range(0, 300, 7):
        assert Window(*windows[i]).contains(_face(200 + 800 * i / 300, 300, 150).box, tolerance=10)
    smooth = plan(track, None, 9 / 16, subpixel=True)
    assert smooth.dtype == np.float64 and motion_stats(smooth)["max_accel"] < 0.5


def test_plan_without_faces_is_a_still_centre_crop():
    windows = plan(synthetic(60, lambda i: []), None, 1.0)
    assert np.all(windows == [280, 0, 720, 720])
