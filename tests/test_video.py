"""Video on real files and real audio: timing, audio, VFR, rotation, trimming, odd sizes, bad input,
interruption, and the temporal-stability gain. Clips are short and small to keep this file fast."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from dctoon.cli import main
from dctoon.errors import InputError
from dctoon.pipeline import load

from conftest import FP16, VIDEOS, need

TALK_AUDIO = "talking-head-512-audio.mp4"
TALK = "talking-head-512-noaudio.mp4"


@pytest.fixture(scope="module")
def fast():
    """Background model only, tiny frames: exercises the video plumbing in milliseconds a frame."""
    return load(str(need(FP16)), max_side=96, faces=False)


@pytest.fixture(scope="module")
def videos() -> Path:
    return need(VIDEOS)


def frames_of(path, audio=False):
    """(times in seconds, frames as RGB arrays) of the first video stream; or audio samples."""
    with av.open(str(path)) as c:
        if audio:
            chunks = [f.to_ndarray() for f in c.decode(audio=0)]
            rate = c.streams.audio[0].codec_context.sample_rate
            return np.concatenate(chunks, axis=1).astype(np.float64), rate
        times, images = [], []
        for f in c.decode(video=0):
            times.append(float(f.pts * f.time_base))
            images.append(f.to_ndarray(format="rgb24"))
        return times, images


def duration_of(path) -> float:
    times, _ = frames_of(path)
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return float(v.duration * v.time_base) if v.duration else times[-1] - times[0]


def make_clip(path, times, size=(64, 48), rotation=0, audio=False, rate=Fraction(25), audio_codec="aac"):
    """A synthetic H.264 clip with frames at ``times`` (seconds); optional display rotation and tone."""
    w, h = size
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.time_base = Fraction(1, 1000)
        s.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            s.set_display_rotation(rotation)
        a = c.add_stream(audio_codec, rate=44100) if audio else None
        if a is not None:
            a.layout = "stereo"
        sample_fmt = "fltp" if audio_codec == "aac" else "s16"
        for i, t in enumerate(times):
            img = np.zeros((h, w, 3), np.uint8)
            img[:, :, 0] = np.linspace(0, 255, w, dtype=np.uint8)[None]
            img[: h // 3, : w // 3] = 255  # a white corner marks the stored top-left
            img[h // 2 :, :, 1] = (i * 20) % 255
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = round(t * 1000)
            f.time_base = Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
        if a is not None:
            n = int(44100 * (times[-1] + 0.1))
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 44100)).astype(np.float32)
            for k in range(0, n, 1024):
                chunk = np.stack([tone[k:k + 1024]] * 2)
                if sample_fmt == "s16":
                    chunk = (chunk.T.reshape(1, -1) * 32767).astype(np.int16)
                af = av.AudioFrame.from_ndarray(chunk, format=sample_fmt, layout="stereo")
                af.sample_rate = 44100
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)
    return Path(path)


# --- timing and audio on the real files -----------------------------------------------------------


def test_full_video_frames_duration_and_audio_samples(fast, videos, tmp_path):
    src = videos / TALK_AUDIO
    dst = tmp_path / "out.mp4"
    calls = []
    r = fast.stylize_video(src, dst, progress=lambda d, t: calls.append((d, t)), bar=False)
    t_in, _ = frames_of(src)
    t_out, out = frames_of(dst)
    assert r.frames == len(t_in) == len(t_out)
    assert np.allclose(t_out, np.array(t_in) - t_in[0], atol=1e-3)
    assert abs(duration_of(dst) - duration_of(src)) <= 1 / 25 + 1e-3
    assert out[0].shape[:2] == (96, 96) and r.audio == "copied"
    assert calls[-1][0] == len(t_in) and all(d <= t for d, t in calls)
    # Audio: stream-copied, so every decoded sample is the same.
    a_in, rate_in = frames_of(src, audio=True)
    a_out, rate_out = frames_of(dst, audio=True)
    assert rate_in == rate_out and a_in.shape == a_out.shape
    assert np.abs(a_in - a_out).max() < 1e-6
    # The output opens as H.264 yuv420p.
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"


def test_trim_cuts_video_and_audio_to_the_same_span(fast, videos, tmp_path):
    src = videos / TALK_AUDIO
    dst = tmp_path / "trim.mp4"
    r = fast.stylize_video(src, dst, start=2.0, end=3.0, bar=False)
    t_in, _ = frames_of(src)
    kept = [t for t in t_in if 2.0 - 1e-6 <= t < 3.0 - 1e-6]
    t_out, _ = frames_of(dst)
    assert len(t_out) == len(kept) == r.frames == 25
    assert t_out[0] == pytest.approx(0.0, abs=1e-3)
    assert np.allclose(t_out, np.array(kept) - kept[0], atol=1e-3)
    a_in, rate = frames_of(src, audio=True)
    a_out, _ = frames_of(dst, audio=True)
    assert abs(a_out.shape[1] / rate - 1.0) < 0.06  # one second, to an AAC packet
    # The audio is the input's 2..3 s: find the offset by cross-correlation, expect ~2 s.
    ref = a_in[0, int(1.8 * rate): int(3.2 * rate)]
    seg = a_out[0, 4096: 4096 + rate // 2]
    corr = np.correlate(ref, seg, mode="valid")
    lag = int(np.argmax(corr))
    start_s = 1.8 + (lag - 4096) / rate
    assert abs(start_s - 2.0) < 0.03
    best = ref[lag: lag + len(seg)]
    assert np.corrcoef(best, seg)[0, 1] > 0.99


# --- timestamps, rotation, odd sizes on synthetic clips -------------------------------------------


def test_variable_frame_rate_timestamps_are_kept(fast, tmp_path):
    times = [0.0, 0.04, 0.08, 0.2, 0.25, 0.5, 0.52, 0.9, 1.0]
    src = make_clip(tmp_path / "vfr.mp4", times, audio=True)
    dst = tmp_path / "vfr-out.mp4"
    r = fast.stylize_video(src, dst, bar=False)
    t_out, _ = frames_of(dst)
    assert r.frames == len(times)
    assert np.allclose(t_out, times, atol=2e-3)
    assert abs(duration_of(dst) - duration_of(src)) <= 0.1 + 1e-3  # within one (the last) frame


def test_audio_the_container_cannot_copy_is_reencoded(fast, tmp_path):
    src = make_clip(tmp_path / "pcm.mkv", [i / 25 for i in range(10)], audio=True, audio_codec="pcm_s16le")
    dst = tmp_path / "pcm-out.mp4"
    r = fast.stylize_video(src, dst, bar=False)
    assert r.audio == "re-encoded"
    with av.open(str(dst)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
    a_in, rate = frames_of(src, audio=True)
    a_out, _ = frames_of(dst, audio=True)
    a_in = a_in.reshape(-1, 2).T / 32767 if a_in.shape[0] == 1 else a_in
    # AAC adds a priming delay: align by cross-correlation, then the tone must match closely.
    ref, seg = a_in[0], a_out[0, 2048: 2048 + 2048]
    lag = int(np.argmax(np.correlate(ref, seg, mode="valid")))
    assert abs(lag - 2048) < 2048
    assert np.corrcoef(ref[lag: lag + len(seg)], seg)[0, 1] > 0.99
    assert abs(a_out.shape[1] - a_in.shape[1]) < 4096


def test_rotation_metadata_is_applied_upright(fast, tmp_path):
    src = make_clip(tmp_path / "rot.mp4", [0.0, 0.04, 0.08], size=(64, 48), rotation=90)
    with av.open(str(src)) as c:
        stored = next(c.decode(video=0))
        assert stored.rotation == 90 and (stored.width, stored.height) == (64, 48)
    dst = tmp_path / "rot-out.mp4"
    r = fast.stylize_video(src, dst, bar=False)
    with av.open(str(dst)) as c:
        f = next(c.decode(video=0))
        assert f.rotation == 0  # no rotation flag left: what is stored is what is shown
    assert r.size == (48, 64) and (f.width, f.height) == (48, 64)
    # The white corner (stored top-left) is where a player shows it: rotated 90 degrees
    # counter-clockwise it lands bottom-left.
    lum = f.to_ndarray(format="gray").astype(float)
    corners = {"tl": lum[:16, :12].mean(), "tr": lum[:16, -12:].mean(),
               "bl": lum[-16:, :12].mean(), "br": lum[-16:, -12:].mean()}
    assert max(corners, key=corners.get) == "bl"


@pytest.mark.parametrize("size", [(375, 500), (77, 45)])
def test_odd_sizes_round_up_to_even(tmp_path, size):
    cartoonizer = load(str(need(FP16)), faces=False)
    src = make_clip(tmp_path / "odd.mp4", [0.0, 0.04], size=(size[0] + size[0] % 2, size[1] + size[1] % 2))
    # libx264 cannot store odd sizes, so build the odd input as MJPEG in Matroska.
    odd = tmp_path / "odd.mkv"
    with av.open(str(src)) as c, av.open(str(odd), "w") as o:
        s = o.add_stream("mjpeg", rate=25)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuvj444p"
        for f in c.decode(video=0):
            img = f.to_ndarray(format="rgb24")[: size[1], : size[0]]
            nf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            for p in s.encode(nf.reformat(format="yuvj444p")):
                o.mux(p)
        for p in s.encode(None):
            o.mux(p)
    dst = tmp_path / "odd-out.mp4"
    r = cartoonizer.stylize_video(odd, dst, bar=False)
    want = (size[0] + size[0] % 2, size[1] + size[1] % 2)
    _, out = frames_of(dst)
    assert r.size == want and out[0].shape[1::-1] == want and len(out) == 2


# --- bad input ------------------------------------------------------------------------------------


def _audio_only(path):
    with av.open(str(path), "w") as c:
        a = c.add_stream("aac", rate=44100)
        tone = np.zeros((2, 1024), np.float32)
        for _ in range(20):
            f = av.AudioFrame.from_ndarray(tone, format="fltp", layout="stereo")
            f.sample_rate = 44100
            for p in a.encode(f):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)
    return path


def _zero_frames(path):
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height = 64, 48
    return path


def _truncated(path, videos):
    data = (videos / TALK).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("kind", ["text", "unknown", "audio-only", "zero-frames", "truncated", "missing"])
def test_bad_input_is_one_line_exit_2(kind, videos, tmp_path, capsys):
    p = tmp_path / "in.mp4"
    if kind == "text":
        p.write_text("this is not a video\n" * 50)
    elif kind == "unknown":
        p = tmp_path / "in.xyz"
        p.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif kind == "audio-only":
        p = _audio_only(tmp_path / "in.m4a")
    elif kind == "zero-frames":
        _zero_frames(p)
    elif kind == "truncated":
        _truncated(p, videos)
    dst = tmp_path / "out.mp4"
    code = main(["video", str(p), "-o", str(dst), "--style", str(FP16), "--max-side", "64",
                 "--no-faces", "-q"])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.startswith("dctoon: error: ") and err.count("\n") == 1, err
    assert not dst.exists() and not [q for q in tmp_path.iterdir() if ".partial" in q.name]


def test_api_raises_input_error(fast, tmp_path):
    p = tmp_path / "in.mp4"
    p.write_text("not a video")
    with pytest.raises(InputError):
        fast.stylize_video(p, tmp_path / "o.mp4", bar=False)
    with pytest.raises(InputError, match="unknown video format"):
        fast.stylize_video(p, tmp_path / "o.avi", bar=False)  # .gif/.webp are animations now


# --- interruption ---------------------------------------------------------------------------------


def _stop_at(n):
    def progress(done, total):
        if done >= n:
            raise KeyboardInterrupt
    return progress


def test_interrupt_leaves_nothing_under_the_final_name(fast, videos, tmp_path):
    dst = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        fast.stylize_video(videos / TALK_AUDIO, dst, progress=_stop_at(5), bar=False)
    assert list(tmp_path.iterdir()) == []


def test_keep_partial_leaves_a_playable_file(fast, videos, tmp_path):
    dst = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt) as info:
        fast.stylize_video(videos / TALK_AUDIO, dst, progress=_stop_at(10), keep_partial=True, bar=False)
    r = info.value.result
    assert r.partial and r.path == dst and "partial" in r.describe()
    assert list(tmp_path.iterdir()) == [dst]
    t_out, _ = frames_of(dst)
    assert len(t_out) == r.frames >= 10
    a_out, rate = frames_of(dst, audio=True)  # the audio is cut to the video written
    assert abs(a_out.shape[1] / rate - r.duration) < 0.1


def test_kill_cli_leaves_nothing(videos, tmp_path):
    dst = tmp_path / "out.mp4"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dctoon", "video", str(videos / TALK_AUDIO), "-o", str(dst),
         "--style", str(need(FP16)), "--max-side", "64", "--no-faces", "-q"],
        stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    deadline = time.time() + 60
    while time.time() < deadline and not [q for q in tmp_path.iterdir() if ".partial" in q.name]:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"nothing written" in err
    assert list(tmp_path.iterdir()) == []


# --- temporal stability ---------------------------------------------------------------------------


def test_temporal_path_is_steadier_than_per_frame(videos):
    from dctoon.track import crop_corners, warp_error
    from dctoon.video import FrameStylizer

    cartoonizer = load(str(need(FP16)), max_side=256)
    with av.open(str(videos / TALK)) as c:
        frames = []
        for f in c.decode(video=0):
            frames.append((f.to_ndarray(format="bgr24"), float(f.pts * f.time_base)))
            if len(frames) == 10:
                break
    import cv2

    frames = [(cv2.resize(b, (256, 256), interpolation=cv2.INTER_AREA), t) for b, t in frames]
    scores = {}
    for temporal in (False, True):
        run = FrameStylizer(cartoonizer, temporal=temporal)
        outs, corners = [], []
        for bgr, t in frames:
            outs.append(run(bgr, t))
            assert run.last_faces, "the talking head is found on every frame"
            corners.append(crop_corners(run.last_faces[0].landmarks))
        err = np.mean([warp_error(frames[i - 1][0], frames[i][0], outs[i - 1], outs[i])
                       for i in range(1, len(frames))])
        jitter = np.abs(np.diff(np.array(corners), 2, axis=0)).mean()
        scores[temporal] = (err, jitter)
    (e0, j0), (e1, j1) = scores[False], scores[True]
    assert e1 <= 0.7 * e0, scores
    assert j1 <= 0.7 * j0, scores


def test_tracker_fades_faces_in_and_out_and_keeps_identity():
    from dctoon.face import Face
    from dctoon.track import FaceTracker

    lm = np.array([[40, 50], [60, 50], [50, 60], [42, 70], [58, 70]], np.float32)
    visible = {"on": False}
    tracker = FaceTracker(lambda rgb: [Face([30, 35, 70, 80], 0.99, lm)] if visible["on"] else [])
    image = np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8)
    weights, ids = [], set()
    for i in range(50):
        visible["on"] = 5 <= i < 25
        _, w, track_ids = tracker.update(image, i / 25)
        weights.append(w[0] if w else 0.0)
        ids.update(track_ids)
    assert weights[:5] == [0.0] * 5
    assert 0 < weights[5] < weights[6] < weights[7] < 1.0  # fades in over ~0.3 s
    assert weights[12:25] == [1.0] * 13
    assert weights[-1] == 0.0 and 0 < min(w for w in weights[30:] if w > 0) < 1.0  # fades out, no pop
    assert ids == {0}  # one face, one identity throughout
