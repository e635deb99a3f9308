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
