"""``dctoon demo``: the whole product on a real portrait that ships inside a registry package.

The photo is scikit-image's ``astronaut`` (Eileen Collins, NASA, public domain). The video is
made from it: a slow camera move (zoom and pan), then stylized like any user video.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .images import write_image
from .outputs import fresh_folder
from .pipeline import load


def camera_move(photo: np.ndarray, path: Path, seconds: float = 2.0, fps: int = 25, size: int = 384) -> Path:
    """Write an H.264 clip panning and zooming slowly over ``photo`` (RGB)."""
    import av

    h, w = photo.shape[:2]
    n = int(seconds * fps)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for i in range(n):
            t = 0.5 - 0.5 * np.cos(np.pi * i / max(n - 1, 1))  # ease in and out
            side = (1.0 - 0.2 * t) * min(h, w)
            cx, cy = w / 2 + 0.08 * w * t, h / 2 - 0.05 * h * t
            m = np.array([[size / side, 0, size / 2 - cx * size / side],
                          [0, size / side, size / 2 - cy * size / side]])
            frame = cv2.warpAffine(photo, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def run(out_dir: Path = Path("dctoon-demo"), style: str | None = None, video: bool = True) -> list[Path]:
    """Stylize the astronaut photo and a camera move over it into a fresh folder (``out_dir``, or
    ``out_dir-2``, ... when it exists: an earlier run is never overwritten); return the files written."""
    from skimage import data

    cartoonizer = load(style)
    name = Path(cartoonizer.style.name).stem
    out_dir = fresh_folder(Path(out_dir))
    photo = data.astronaut()
    written = [out_dir / "astronaut.png", out_dir / f"astronaut_{name}.png"]
    write_image(written[0], photo)
    write_image(written[1], cartoonizer.stylize(photo))
    if video:
        clip = camera_move(photo, out_dir / "astronaut_move.mp4")
        result = cartoonizer.stylize_video(clip, out_dir / f"astronaut_move_{name}.mp4")
        written += [clip, result.path]
    return written
