"""Native resolution on a real 2048 px photo: tiles leave no seam, no silent size cap, big faces
are stylized at a big crop (bench/resolution.py measures the same at 4K and 1080p video)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import dctoon
import dctoon.pipeline
from dctoon.model import TTN, _tiles

from conftest import IMAGES, need


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return dctoon.read_image(need(IMAGES / "portrait-bw-2048.jpg"))


def steps(x: np.ndarray, axis: int) -> np.ndarray:
    """d[p] = mean |x[p] - x[p-1]| across ``axis`` (1: between columns, 0: between rows)."""
    d = np.abs(np.diff(x.astype(np.float32), axis=axis))
    return np.concatenate([[np.nan], d.mean(axis=tuple(i for i in range(3) if i != axis))])


def borders(starts_ends, size: int, overlap: int) -> set[int]:
    """Every position where tiling could show: tile edges and the ends of the blend ramps."""
    out = set()
    for a, b in starts_ends:
        if a > 0:
            out |= {a, a + overlap}
        if b < size:
            out |= {b - overlap, b}
    return out


def seam_ratios(out: np.ndarray, ref: np.ndarray, spans: dict[int, list], overlap: int) -> list[tuple]:
    """For every border position p: (axis, p, s_out(p), s_ref(p)), where s(p) is the step
    across p relative to the average step over all non-border positions of the same image."""
    rows = []
    for axis, sp in spans.items():
        size = out.shape[axis]
        pos = borders(sp, size, overlap)
        plain = np.ones(size, bool)
        plain[0] = False
        for p in pos:
            plain[max(0, p - 2): p + 3] = False
        d, dref = steps(out, axis), steps(ref, axis)
        for p in sorted(pos):
            rows.append((axis, p, d[p] / d[plain].mean(), dref[p] / dref[plain].mean()))
    return rows


def test_tiles_leave_no_seam_on_a_real_high_resolution_photo(fp16_model, photo):
    """768x768 pixels of the 2048 px portrait (hair, forehead, eyes, backdrop, at their native
    sampling) with 384 px tiles: 3x3 tiles, each only as long as a 96 px overlap needs (324 px,
    overlapping by 100-104 px), so 8 border positions (tile edges, ramp ends) per axis.

    At every border the step between the two straddling columns (rows), relative to the
    average step elsewhere, is within 1.25x of the same ratio for the untiled output at that
    place: the picture's own content puts some borders at 1.6x the average with or without
    tiles, so the untiled output is the yardstick for what the content does there. Tiled and
    untiled outputs also agree to rounding almost everywhere. Hard-stitched tiles (no
    overlap, no blending) fail the same check, so the check can see a seam."""
    bgr = np.ascontiguousarray(photo[420:1188, 660:1428, ::-1])
    h, w = bgr.shape[:2]
    model = TTN(fp16_model, tile=384, overlap=96)
    tiles = list(_tiles(h, w, 384, 96))
    spans = {0: sorted({(a, b) for a, b, _, _ in tiles}), 1: sorted({(a, b) for _, _, a, b in tiles})}
    assert len(tiles) == 9 and all((a % 4, b % 4) == (0, 0) for a, _, b, _ in tiles)
    assert all(96 <= e - b < 2 * 96 for sp in spans.values() for (_, e), (b, _) in zip(sp, sp[1:]))

    tiled = model(bgr)
    whole = model.run_batch(bgr[None])[0]
    ratios = seam_ratios(tiled, whole, spans, 96)
    assert len(ratios) == 16
    for axis, p, s_tiled, s_whole in ratios:
        print(f"{'row' if axis == 0 else 'column'} {p}: step / elsewhere tiled {s_tiled:.3f}, "
              f"untiled {s_whole:.3f}, ratio {s_tiled / s_whole:.3f}")
        assert s_tiled <= 1.25 * s_whole, (axis, p, s_tiled, s_whole)
    diff = np.abs(tiled.astype(int) - whole)
    print(f"tiled vs untiled: mean {diff.mean():.3f}, p99.9 {np.percentile(diff, 99.9):.0f}, max {diff.max()}")
    assert diff.mean() < 0.5 and np.percentile(diff, 99.9) <= 8

    # negative control: 2x2 independent 384 px tiles pasted side by side
    hard = np.zeros_like(bgr)
    for y in (0, 384):
        for x in (0, 384):
            hard[y:y + 384, x:x + 384] = model.run_batch(bgr[None, y:y + 384, x:x + 384])[0]
    ratios = seam_ratios(hard, whole, {0: [(0, 384), (384, 768)], 1: [(0, 384), (384, 768)]}, 0)
    worst = max(s / s_whole for _, p, s, s_whole in ratios if p == 384)
    print(f"hard-stitched: step at 384 / untiled's: {worst:.2f}")
    assert worst > 1.25


def test_native_resolution_kept_max_side_caps_and_big_face_gets_big_crop(fp16_model, photo, monkeypatch):
    """A 2048x800 band of the 2048 px portrait through the face: wider than 1920, so the
    background runs in two tiles (at most 1536 px each). Without max_side the output has the
    input's size; the face goes through the head model at a crop far above 288 and keeps more
    detail than at 288. With max_side the output is capped."""
    band = np.ascontiguousarray(photo[560:1360])
    assert band.shape == (800, 2048, 3)
    c = dctoon.load(str(fp16_model))
    sizes = []
    align = dctoon.pipeline.align

    def spy(image, landmarks, size):
        sizes.append(size)
        return align(image, landmarks, size)

    monkeypatch.setattr(dctoon.pipeline, "align", spy)
    background, kept = c.background, []
    c.background = lambda bgr: kept.append(background(bgr)) or kept[-1]
    out = c.stylize(band)
    assert out.shape == band.shape
    assert len(sizes) == 1 and 600 <= sizes[0] <= c.settings.max_head_size

    # the same frame with the face squeezed into DCT-Net's 288 crop: the background is the same
    c.background = lambda bgr: kept[0]
    c = c.configure(max_head_size=288)
    small_crop = c.stylize(band)
    assert sizes[-1] == 288
    face = c.detector.detect(band)[0]
    x1, y1, x2, y2 = face.box.astype(int)

    def fine_detail(img):  # energy above about a third of the frame's Nyquist frequency
        g = cv2.cvtColor(img[y1:y2, x1:x2], cv2.COLOR_RGB2GRAY).astype(np.float32)
        return ((g - cv2.GaussianBlur(g, (0, 0), 1.0)) ** 2).mean()

    print(f"face fine detail: crop {sizes[0]} {fine_detail(out):.2f}, crop 288 {fine_detail(small_crop):.2f}")
    assert fine_detail(out) > 1.5 * fine_detail(small_crop)

    capped = dctoon.load(str(fp16_model), max_side=1024).stylize(band)
    assert capped.shape == (400, 1024, 3)
