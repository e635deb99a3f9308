"""Test media made from the shared files (used by the tests and by bench/batch.py)."""

from __future__ import annotations

from pathlib import Path

import av


def short_gop_clip(src: Path, dst: Path, seconds: float = 4.0, gop: int = 25) -> Path:
    """A real clip re-encoded with a keyframe every ``gop`` frames (the shared files have one every
    6-10 s), its real audio stream-copied."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        vi, ai = i.streams.video[0], i.streams.audio[0]
        vo = o.add_stream("libx264", rate=vi.average_rate)
        vo.width, vo.height, vo.pix_fmt = vi.codec_context.width, vi.codec_context.height, "yuv420p"
        vo.time_base = vo.codec_context.time_base = vi.time_base
        vo.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "preset": "veryfast"}
        ao = o.add_stream_from_template(ai)
        for p in i.demux(vi, ai):
            if p.pts is None or float(p.pts * p.time_base) >= seconds:
                continue
            if p.stream is ai:
                p.stream = ao
                o.mux(p)
                continue
            for f in p.decode():
                f.pict_type = av.video.frame.PictureType.NONE
                for q in vo.encode(f):
                    o.mux(q)
        for q in vo.encode(None):
            o.mux(q)
    return dst


def fake_camera(src: Path, dst: Path, seconds: float = 4.0, side: int = 384) -> Path:
    """A real clip as chromium's fake camera reads it (``--use-file-for-fake-video-capture``): a Y4M
    file, 4:2:0, 25 frames/s, the longest side ``side``."""
    import cv2

    with av.open(str(src)) as i, open(dst, "wb") as out:
        for n, frame in enumerate(i.decode(video=0)):
            if frame.time is not None and frame.time >= seconds:
                break
            bgr = frame.to_ndarray(format="bgr24")
            h, w = bgr.shape[:2]
            scale = side / max(h, w)
            bgr = cv2.resize(bgr, (round(w * scale) // 2 * 2, round(h * scale) // 2 * 2), interpolation=cv2.INTER_AREA)
            if n == 0:
                out.write(f"YUV4MPEG2 W{bgr.shape[1]} H{bgr.shape[0]} F25:1 Ip A1:1 C420jpeg\n".encode())
            out.write(b"FRAME\n" + cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes())
    return dst
