"""Short shareable animations: a stylized clip as an animated GIF or WebP, size-capped.

The clip is stylized into a hidden H.264 file first (the same path as any video), then its frames
are sampled down to at most ``FPS`` frames per second and ``SIDE`` pixels on the long side. GIF
gets one 256-colour palette for the whole clip, chosen from frames spread over it, and
Floyd-Steinberg dithering: no banding in gradients, no palette flicker between frames. If the
file is over ``MAX_BYTES`` it is made again smaller (the side times 0.8, then fewer frames per
second) until it fits. Written under a temp name and renamed into place.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..images import publish, temp_beside
from .reader import measured_duration, probe

ANIMATION_FORMATS = (".gif", ".webp")
MAX_SECONDS = 30.0   # longer clips belong in a video file
FPS = 15.0
SIDE = 480
MAX_BYTES = 8 << 20  # fits the upload limits of the common messengers


def animate(make_mp4, src: Path, dst: Path, start: float | None, end: float | None):
    """``make_mp4(path, end)`` stylizes the clip up to ``end`` into an H.264 file (returns its
    VideoResult); the result becomes the animation ``dst``. Returns the VideoResult describing ``dst``."""
    cap = (start or 0) + MAX_SECONDS + 1e-3
    known = probe(src)["duration"]
    duration = known or measured_duration(src, cap)  # a container that does not say: its packets, up to the cap
    length = (min(end, duration) if end else duration) - (start or 0)
    if length > MAX_SECONDS + 1e-3:
        raise InputError(f"{dst}: {dst.suffix[1:].upper()} is for short clips (at most {MAX_SECONDS:g} s, this "
                         f"span is {f'{length:.1f} s' if known else 'longer'}): trim it with --start/--end, or"
                         " write an .mp4")
    fd, name = temp_beside(dst, ".partial.mp4")
    os.close(fd)
    mp4 = Path(name)
    try:
        result = make_mp4(mp4, min(end, cap) if end else cap)  # the cap holds while decoding too
        frames, durations = _sample(mp4, FPS)
        side, fps = SIDE, FPS
        while True:
            data = _encode(frames, durations, side, dst.suffix.lower())
            if len(data) <= MAX_BYTES or side <= 96:
                break
            if side > 240:
                side = int(side * 0.8)
            else:  # keep a watchable size: fewer frames instead
                fps /= 1.5
                frames, durations = _sample(mp4, fps)
        fd, tmp = temp_beside(dst, ".partial" + dst.suffix)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        publish(tmp, dst)
    finally:
        mp4.unlink(missing_ok=True)
    h, w = _fit(frames[0].shape[:2], side)
    return dataclasses.replace(result, path=dst, frames=len(frames), size=(w, h), audio=None)


def _sample(mp4: Path, fps: float) -> tuple[list[np.ndarray], list[int]]:
    """RGB frames at most ``fps`` per second and how long each is shown (ms, rounded so the total
    stays the clip's length)."""
    import av

    import cv2

    times, frames, due = [], [], 0.0
    with av.open(str(mp4)) as c:
        for f in c.decode(video=0):
            t = float(f.pts * f.time_base)
            if t > MAX_SECONDS + 1e-3:  # at most MAX_SECONDS * fps frames, each at most SIDE: bounded memory
                break
            if t >= due - 1e-6:  # the first frame at or after each tick of a 1/fps clock
                times.append(t)
                rgb = f.to_ndarray(format="rgb24")
                h, w = _fit(rgb.shape[:2], SIDE)
                frames.append(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA) if (h, w) != rgb.shape[:2]
                              else rgb)
                due = max(due + 1.0 / fps, t)
        end = float(c.streams.video[0].duration * c.streams.video[0].time_base) if c.streams.video[0].duration \
            else (times[-1] + 1.0 / fps)
    ms = np.round(np.array([*times, end]) * 1000).astype(int)
    return frames, [max(20, int(d)) for d in np.diff(ms)]


def _fit(hw: tuple[int, int], side: int) -> tuple[int, int]:
    h, w = hw
    s = min(1.0, side / max(h, w))
    return max(2, round(h * s)), max(2, round(w * s))


def _encode(frames: list[np.ndarray], durations: list[int], side: int, ext: str) -> bytes:
    import io

    import cv2
    from PIL import Image

    h, w = _fit(frames[0].shape[:2], side)
    images = [Image.fromarray(cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) if (h, w) != f.shape[:2] else f)
              for f in frames]
    buf = io.BytesIO()
    if ext == ".gif":
        picks = images[:: max(1, len(images) // 16)][:16]  # the palette from frames spread over the clip
        sheet = Image.new("RGB", (w, h * len(picks)))
        for k, im in enumerate(picks):
            sheet.paste(im, (0, h * k))
        palette = sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        gif = [im.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG) for im in images]
        gif[0].save(buf, format="GIF", save_all=True, append_images=gif[1:], duration=durations, loop=0,
                    optimize=False, disposal=1)
    else:
        images[0].save(buf, format="WEBP", save_all=True, append_images=images[1:], duration=durations, loop=0,
                       quality=80, method=4)
    return buf.getvalue()
