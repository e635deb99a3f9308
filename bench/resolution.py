"""Native resolution: time, peak memory, detail and seams on a 4K photo and a 1080p video.

    python bench/resolution.py [--style PATH] [--seconds 0.5] [--no-video] [--sheet PNG]

Inputs are made on the fly, no data files are added to the repository:

* 4K photo, 3840x2160: ``../shared/media/images/portrait-bw-2048.jpg`` (a real 2048 px photo,
  so the detail is real, not interpolated) scaled to 2160x2160 (Lanczos, x1.055) and padded to
  3840 wide by mirroring its left and right parts (``BORDER_REFLECT_101``; the mirrored parts are
  backdrop and sleeves, no second face).
* 1080p video: the first ``--seconds`` of ``../shared/media/videos/upper-body-720p-audio.mp4``
  scaled to 1920x1080 (Lanczos) and re-encoded with PyAV (H.264 CRF 16, no audio) in a temp dir.

Paths, all with the same weights and the same face handling (detection, head model on aligned
crops as large as the face, up to 768 px):

* ``tiled``: dctoon as shipped: the background model at native resolution in tiles of at most
  1536 px, as few as that allows, each only as long as needed for 96 px of overlap with its
  neighbour (96 px linear ramps, tile origins on multiples of 4; ``dctoon.model._tiles``).
* ``untiled``: the background model on the whole frame in one call (tile larger than the frame).
* ``guided``: the background model untiled at half scale (INTER_AREA), its output brought back to
  full resolution by guided upsampling with the full-resolution input as guide (He's fast guided
  filter, per-channel like White-box's: A, b fitted at half scale with radius ``--gf-radius`` and
  ``--gf-eps``, upsampled bilinearly, applied to the full-resolution input).
* ``720p``: the reference, like the original DCT-Net: the frame scaled so its short side is 720
  (INTER_AREA), a fixed 288 px head crop, then scaled back to native size (bicubic) for the
  comparison at 100%.

Each (input, path) runs in a fresh subprocess, so its peak RSS (``ru_maxrss``: the high-water
mark, model and input included) is its own; time is one cold call, as from the command line
(``Cartoonizer.stylize`` for the photo including face detection, ``Cartoonizer.stylize_video``
for the video from opening the input to the closed output), model loading excluded. Ratios are
against ``720p`` measured in the same run.

Detail and seams (photo): every path's output, and its background-model output before the
faces are pasted, against ``untiled``'s, in the face box, the hair above it, the shirt below it
and the whole frame: gradient ratio (mean Sobel magnitude / untiled's; 1 = as much detail),
high-frequency correlation (correlation of ``x - GaussianBlur(x, 1.5)`` with untiled's; 1 = the
same fine detail) and mean absolute difference (0-255). Seams: d(p) = mean |O[:, p] - O[:, p-1]|
(and the same for rows) at every tile edge and ramp end, divided by d averaged over all
non-border positions ("global"), over non-border positions within 24 px ("local"), and by d of
the untiled output at the same position ("vs untiled"). ~1 means no seam.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FP16 = SHARED / "models/reference/whitebox_cartoon_gan_fp16.tflite"
PHOTO = SHARED / "media/images/portrait-bw-2048.jpg"
VIDEO = SHARED / "media/videos/upper-body-720p-audio.mp4"
PATHS = ["tiled", "untiled", "guided", "720p"]
NAMES = {"tiled": "ours: tiled, native", "untiled": "untiled, native", "guided": "half scale + guided upsampling",
         "720p": "720p-capped (DCT-Net), upscaled"}
UNTILED = 1 << 30
TILE, OVERLAP = 1536, 96  # dctoon.model.TTN's defaults


# --- inputs --------------------------------------------------------------------------------

def make_photo_4k(path: Path = PHOTO) -> np.ndarray:
    """RGB 2160x3840: the 2048 px portrait at 2160 px, mirrored out to 3840 wide."""
    import dctoon

    img = dctoon.read_image(path)[..., :3]
    img = cv2.resize(img, (2160, 2160), interpolation=cv2.INTER_LANCZOS4)
    pad = (3840 - 2160) // 2
    return cv2.copyMakeBorder(img, 0, 0, pad, pad, cv2.BORDER_REFLECT_101)


def make_video_1080p(src: Path, dst: Path, seconds: float) -> int:
    """The first ``seconds`` of ``src`` scaled to 1920x1080; returns the frame count."""
    import av

    n = 0
    with av.open(str(src)) as vin, av.open(str(dst), "w") as vout:
        vs = vin.streams.video[0]
        rate = vs.average_rate or Fraction(30)
        ovs = vout.add_stream("libx264", rate=rate)
        ovs.width, ovs.height, ovs.pix_fmt = 1920, 1080, "yuv420p"
        ovs.options = {"crf": "16", "preset": "veryfast"}
        for frame in vin.decode(vs):
            if frame.time is not None and frame.time >= seconds - 1e-6:
                break
            big = cv2.resize(frame.to_ndarray(format="rgb24"), (1920, 1080), interpolation=cv2.INTER_LANCZOS4)
            out = av.VideoFrame.from_ndarray(big, format="rgb24")
            out.pts = n
            out.time_base = 1 / Fraction(rate)
            for packet in ovs.encode(out):
                vout.mux(packet)
            n += 1
        for packet in ovs.encode():
            vout.mux(packet)
    return n


# --- the paths -------------------------------------------------------------------------------

def guided_upsample(ttn, bgr: np.ndarray, scale: float, r: int, eps: float) -> np.ndarray:
    """The background model at ``scale``, brought back to full size by a guided filter whose
    guide is the full-resolution input (per channel, as White-box's in-network filter)."""
    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, (max(4, round(w * scale)), max(4, round(h * scale))), interpolation=cv2.INTER_AREA)
    y = ttn.run_batch(small[None])[0].astype(np.float32) / 255
    x = small.astype(np.float32) / 255
    k = (2 * r + 1, 2 * r + 1)

    def box(t):
        return cv2.boxFilter(t, -1, k, borderType=cv2.BORDER_REFLECT)

    mx, my = box(x), box(y)
    a = (box(x * y) - mx * my) / (box(x * x) - mx * mx + eps)
    b = my - a * mx
    a = cv2.resize(box(a), (w, h), interpolation=cv2.INTER_LINEAR)
    b = cv2.resize(box(b), (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip((a * (bgr.astype(np.float32) / 255) + b) * 255 + 0.5, 0, 255).astype(np.uint8)


class Capture:
    """Wraps the background model; keeps its last full-size output."""

    def __init__(self, fn):
        self.fn, self.last = fn, None

    def __call__(self, bgr):
        self.last = self.fn(bgr)
        return self.last


def prepare(path: str, style: str, gf_radius: int, gf_eps: float):
    """A Cartoonizer set up for one path; returns (cartoonizer, capture of the background output)."""
    sys.path.insert(0, str(ROOT / "src"))
    import dctoon
    from dctoon.face import Face

    options = {"untiled": {"tile": UNTILED}, "guided": {"tile": UNTILED}, "720p": {"max_head_size": 288}}
    c = dctoon.load(style, **options.get(path, {}))
    ttn = c.background
    if path == "guided":
        cap = Capture(lambda bgr: guided_upsample(ttn, bgr, 0.5, gf_radius, gf_eps))
    else:
        cap = Capture(ttn)
    c.background = cap
    if path == "720p":
        inner = c.stylize_bgr

        def capped(bgr, faces, weights=None):
            h, w = bgr.shape[:2]
            s = 720 / min(h, w)
            if s >= 1:
                return inner(bgr, faces, weights)
            small = cv2.resize(bgr, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
            faces = [Face(f.box * s, f.score, f.landmarks * s) for f in faces]
            out = cv2.resize(inner(small, faces, weights), (w, h), interpolation=cv2.INTER_CUBIC)
            cap.last = cv2.resize(cap.last, (w, h), interpolation=cv2.INTER_CUBIC)
            return out

        c.stylize_bgr = capped
    c.detector  # noqa: B018 - load the face detector before timing
    return c, cap


def worker(args) -> dict:
    c, cap = prepare(args.worker, args.style, args.gf_radius, args.gf_eps)
    out_dir = Path(args.out_dir)
    if args.media == "image":
        rgb = make_photo_4k()
        t0 = time.perf_counter()
        out = c.stylize(rgb)
        wall = time.perf_counter() - t0
        faces = c.detector.detect(rgb)
        np.save(out_dir / f"{args.worker}.npy", out)
        np.save(out_dir / f"{args.worker}-bg.npy", np.ascontiguousarray(cap.last[..., ::-1]))
        extra = {"faces": [f.box.tolist() for f in faces], "crop": [c.crop_size(f) for f in faces]}
    else:
        dst = out_dir / f"{args.worker}.mp4"
        t0 = time.perf_counter()
        res = c.stylize_video(args.input, dst, bar=False)
        wall = time.perf_counter() - t0
        extra = {"frames": res.frames, "size": f"{res.size[0]}x{res.size[1]}"}
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"wall": wall, "rss_mib": rss_kib / 1024, **extra}


# --- measurements ------------------------------------------------------------------------------

def grey(x: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float32) if x.ndim == 3 else x.astype(np.float32)


def gradient(x: np.ndarray) -> np.ndarray:
    g = grey(x)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))


def highpass(x: np.ndarray) -> np.ndarray:
    g = grey(x)
    return g - cv2.GaussianBlur(g, (0, 0), 1.5)


def detail(out: np.ndarray, ref: np.ndarray) -> tuple[float, float, float]:
    """(gradient ratio, high-frequency correlation, mean abs difference) of ``out`` vs ``ref``."""
    ratio = gradient(out).mean() / gradient(ref).mean()
    corr = float(np.corrcoef(highpass(out).ravel(), highpass(ref).ravel())[0, 1])
    return float(ratio), corr, float(np.abs(out.astype(np.float32) - ref).mean())


def regions(shape, face) -> dict[str, tuple[slice, slice]]:
    """Face box, the hair above it, the shirt below it, the whole frame (row, column slices)."""
    h, w = shape[:2]
    x1, y1, x2, y2 = face
    fw, fh = x2 - x1, y2 - y1

    def box(a, b, c, d):
        return slice(int(max(0, b)), int(min(h, d))), slice(int(max(0, a)), int(min(w, c)))

    return {"face": box(x1, y1, x2, y2),
            "hair": box(x1 - 0.35 * fw, y1 - 0.75 * fh, x2 + 0.35 * fw, y1 + 0.1 * fh),
            "shirt": box(x1 - 0.6 * fw, y2 + 0.5 * fh, x2 + 0.6 * fw, y2 + 1.6 * fh),
            "frame": (slice(0, h), slice(0, w))}


def tile_spans(h: int, w: int, tile: int = TILE, overlap: int = OVERLAP):
    """dctoon's tiles for an h x w frame: the (start, end) rows and columns."""
    from dctoon.model import _tiles

    t = list(_tiles(h, w, tile, overlap))
    return sorted({(a, b) for a, b, _, _ in t}), sorted({(a, b) for _, _, a, b in t})


def borders(spans, size: int, overlap: int = OVERLAP) -> dict[int, str]:
    """Position p (the step between p-1 and p) -> kind, for every tile edge and ramp end."""
    out = {}
    for a, b in spans:
        if a > 0:
            out[a], out[a + overlap] = "tile start", "ramp end"
        if b < size:
            out[b - overlap], out[b] = "ramp start", "tile end"
    return out


def steps(x: np.ndarray, axis: int) -> np.ndarray:
    """d(p) = mean |x[p] - x[p-1]| along ``axis`` (1: columns, 0: rows); index 0 unused."""
    x = x.astype(np.float32)
    d = np.abs(np.diff(x, axis=axis))
    other = tuple(i for i in range(d.ndim) if i != axis)
    return np.concatenate([[np.nan], d.mean(axis=other)])


def seam_ratios(out: np.ndarray, ref: np.ndarray, spans_y, spans_x, radius: int = 24) -> list[dict]:
    rows = []
    for axis, spans in ((1, spans_x), (0, spans_y)):
        size = out.shape[axis]
        pos = borders(spans, size)
        d, dref = steps(out, axis), steps(ref, axis)
        plain = np.ones(size, bool)
        plain[0] = False
        for p in pos:
            plain[max(0, p - 2): p + 3] = False
        base = d[plain].mean()
        idx = np.arange(size)
        for p, kind in sorted(pos.items()):
            near = plain & (np.abs(idx - p) <= radius)
            rows.append({"axis": "column" if axis == 1 else "row", "pos": p, "kind": kind,
                         "global": d[p] / base, "local": d[p] / d[near].mean(), "vs_untiled": d[p] / dref[p],
                         "untiled_global": dref[p] / dref[plain].mean()})
    return rows


# --- contact sheet -------------------------------------------------------------------------------

def put(img, text, org, scale=0.6, color=(0, 0, 0), thick=1):
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)


def textured_spot(img: np.ndarray, xs, ys, avoid: np.ndarray, crop: int) -> tuple[int, int]:
    """The top-left corner of the crop centred on one of the candidate (x, y) with the most
    gradient energy, among those that stay (nearly) clear of the ``avoid`` mask."""
    g = gradient(img)
    best, where = -1.0, (xs[0], ys[0])
    for x in xs:
        for y in ys:
            x0, y0 = int(np.clip(x - crop // 2, 0, img.shape[1] - crop)), int(np.clip(y - crop // 2, 0, img.shape[0] - crop))
            if avoid[y0:y0 + crop, x0:x0 + crop].mean() > 0.02:
                continue
            e = g[y0:y0 + crop, x0:x0 + crop].mean()
            if e > best:
                best, where = e, (x0, y0)
    return where


def wrap(text: str, width: int, scale: float) -> list[str]:
    """``text`` in lines no wider than ``width`` px when drawn by ``put`` at ``scale``."""
    lines = [""]
    for word in text.split():
        line = f"{lines[-1]} {word}".strip()
        if lines[-1] and cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > width:
            lines.append(word)
        else:
            lines[-1] = line
    return lines


def sheet(path: Path, rgb: np.ndarray, outs: dict[str, np.ndarray], pasted: np.ndarray, face, spans_y, spans_x,
          notes: list[str] = (), crop: int = 360, overview: int = 1152):
    """A small overview with tile edges and crop boxes beside the notes, then 100% crops at the
    face, at a tile border and where two borders cross (the last two away from ``pasted``, the
    head model's region) of the input, the tiled, guided and 720p outputs and |tiled - untiled|."""
    h, w = rgb.shape[:2]
    fx1, fy1, fx2, fy2 = face
    fc = (int((fx1 + fx2) / 2), int(fy1 + 0.45 * (fy2 - fy1)))
    spots = {"face": (int(np.clip(fc[0] - crop // 2, 0, w - crop)), int(np.clip(fc[1] - crop // 2, 0, h - crop)))}
    avoid = pasted.copy()
    xe = [b for _, b in spans_x[:-1]] + [a for a, _ in spans_x[1:]]
    ye = [b for _, b in spans_y[:-1]] + [a for a, _ in spans_y[1:]]
    spots["tile border"] = textured_spot(rgb, xe, list(range(crop // 2, h - crop // 2, 24)), avoid, crop)
    x0, y0 = spots["tile border"]
    avoid[y0:y0 + crop, x0:x0 + crop] = True
    spots["borders crossing"] = textured_spot(rgb, xe, ye, avoid, crop)
    colours = {"face": (230, 30, 30), "tile border": (20, 110, 230), "borders crossing": (0, 160, 60)}

    cols = [("input", rgb)] + [(NAMES[k], outs[k]) for k in ("tiled", "guided", "720p") if k in outs]
    diff = np.clip(np.abs(outs["tiled"].astype(np.int16) - outs["untiled"]).max(2) * 8, 0, 255).astype(np.uint8)
    cols.append(("|tiled - untiled| x8 (white: 0)", np.dstack([255 - diff] * 3)))
    gap, margin, head = 8, 12, 44
    width = len(cols) * (crop + margin + gap) + gap

    # overview: the whole 4K input, scaled, tile edges dashed, crop boxes; the notes beside it
    s = overview / w
    ov = cv2.resize(rgb, (overview, round(h * s)), interpolation=cv2.INTER_AREA)
    for spans, axis in ((spans_x, 1), (spans_y, 0)):
        for a, b in spans:
            for e in (a, b):
                if 0 < e < (w if axis else h):
                    for t in range(0, ov.shape[0] if axis else ov.shape[1], 12):
                        p, q = (round(e * s), t), (round(e * s), t + 6)
                        if not axis:
                            p, q = p[::-1], q[::-1]
                        cv2.line(ov, p, q, (255, 200, 0), 1)
    for name, (x0, y0) in spots.items():
        cv2.rectangle(ov, (round(x0 * s), round(y0 * s)), (round((x0 + crop) * s), round((y0 + crop) * s)), colours[name], 2)
        put(ov, name, (round(x0 * s), round(y0 * s) - 6), 0.5, colours[name], 1)
    paragraphs = [f"input: portrait-bw-2048 at 2160 px, mirrored to {w}x{h} (4K UHD), here at {s:.0%}; dashed: "
                  f"dctoon's tile edges (tiles of at most 1536 px, {OVERLAP} px ramps); boxes: the {crop}x{crop} "
                  "crops below.",
                  "Crops are at 100% (one output pixel = one sheet pixel, no resampling); ticks beside a crop mark "
                  "tile edges (dark) and ramp ends (light).", *notes]
    tx, scale, lh = 2 * gap + overview + 16, 0.5, 22
    lines = [line for para in paragraphs for line in wrap(para, width - tx - gap, scale) + [""]]
    top = np.full((max(ov.shape[0], lh * len(lines)) + 2 * gap, width, 3), 255, np.uint8)
    top[gap:gap + ov.shape[0], gap:gap + overview] = ov
    for i, line in enumerate(lines):
        put(top, line, (tx, gap + 14 + lh * i), scale)
    parts = [top]

    for name, (x0, y0) in spots.items():
        row = np.full((head + margin + crop + gap, width, 3), 255, np.uint8)
        put(row, f"{name}: x {x0}-{x0 + crop}, y {y0}-{y0 + crop}", (gap, 18), 0.6, colours[name], 2)
        for i, (label, img) in enumerate(cols):
            cx = gap + i * (crop + margin + gap) + margin
            put(row, label, (cx, head - 6), 0.45)
            row[head + margin: head + margin + crop, cx: cx + crop] = img[y0:y0 + crop, x0:x0 + crop, :3]
            for spans, axis in ((spans_x, 1), (spans_y, 0)):
                for p, kind in borders(spans, w if axis else h).items():
                    off = p - (x0 if axis else y0)
                    if 0 <= off < crop:
                        c = (40, 40, 40) if "tile" in kind else (170, 170, 170)
                        if axis:
                            row[head + 2: head + margin - 2, cx + off - 1: cx + off + 1] = c
                        else:
                            row[head + margin + off - 1: head + margin + off + 1, cx - margin + 2: cx - 2] = c
        parts.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.vstack(parts), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {path}")
    return spots


# --- driver ---------------------------------------------------------------------------------------

def run_worker(path: str, media: str, out_dir: Path, args, src: Path | None = None) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", path, "--media", media, "--out-dir", str(out_dir),
           "--style", args.style, "--gf-radius", str(args.gf_radius), "--gf-eps", str(args.gf_eps)]
    if src:
        cmd += ["--input", str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        print(f"# {media} {path} failed: {proc.stderr.strip().splitlines()[-3:]}", flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |", flush=True)


def machine() -> str:
    import onnxruntime

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} cores, onnxruntime {onnxruntime.__version__} (CPU), "
            f"load average {os.getloadavg()[0]:.1f} at start")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--style", default=str(FP16))
    ap.add_argument("--seconds", type=float, default=0.5, help="length of the 1080p video (default 0.5)")
    ap.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated subset of {','.join(PATHS)}")
    ap.add_argument("--no-video", action="store_true")
    ap.add_argument("--no-image", action="store_true")
    ap.add_argument("--sheet", type=Path, help="also write the contact sheet here (needs the image paths)")
    ap.add_argument("--gf-radius", type=int, default=1)
    ap.add_argument("--gf-eps", type=float, default=1e-3)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--media", help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    paths = [p for p in args.paths.split(",") if p]
    print(f"# {machine()}; style {Path(args.style).name}; one cold run per cell, each in a fresh process")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.no_image:
            image_section(paths, tmp, args)
        if not args.no_video:
            video_section(paths, tmp, args)
    return 0


def ratio_cells(res: dict, path: str, key: str, ref: dict | None) -> str:
    r = res.get(path)
    if not r:
        return "failed"
    unit = " s" if key == "wall" else " MiB"
    v = f"{r[key]:.1f}{unit}" if key == "wall" else f"{r[key]:.0f}{unit}"
    return f"{v} ({r[key] / ref[key]:.2f}x)" if ref else v


def image_section(paths, tmp: Path, args) -> None:
    rgb = make_photo_4k()
    h, w = rgb.shape[:2]
    print(f"\n## 4K photo: {w}x{h} (portrait-bw-2048.jpg scaled to 2160 px, mirror-padded to 3840)\n", flush=True)
    res = {p: run_worker(p, "image", tmp, args) for p in paths}
    ref = res.get("720p")
    face = next((r["faces"][0] for r in res.values() if r and r["faces"]), None)
    crops = {p: r["crop"] for p, r in res.items() if r}
    table(["path", "time (vs 720p)", "peak RSS (vs 720p)", "head crop"],
          [[NAMES[p], ratio_cells(res, p, "wall", ref), ratio_cells(res, p, "rss_mib", ref),
            ",".join(str(c) for c in crops.get(p, []))] for p in paths])
    if "untiled" not in paths or face is None:
        return
    outs = {p: np.load(tmp / f"{p}.npy") for p in paths if res.get(p)}
    bgs = {p: np.load(tmp / f"{p}-bg.npy") for p in paths if res.get(p)}
    reg = regions(rgb.shape, face)
    print("\ndetail vs untiled (gradient ratio / high-frequency correlation / mean abs diff), "
          "background-model output | final output\n")
    rows = []
    for p in paths:
        if p == "untiled" or p not in outs:
            continue
        cells = []
        for name, (ys, xs) in reg.items():
            a = detail(bgs[p][ys, xs], bgs["untiled"][ys, xs])
            b = detail(outs[p][ys, xs], outs["untiled"][ys, xs])
            cells.append(f"{a[0]:.2f} / {a[1]:.3f} / {a[2]:.2f} \\| {b[0]:.2f} / {b[1]:.3f} / {b[2]:.2f}")
        rows.append([NAMES[p]] + cells)
    table(["path"] + [f"{k} ({s[1].stop - s[1].start}x{s[0].stop - s[0].start})" for k, s in reg.items()], rows)

    notes = None
    if "tiled" in outs:
        sy, sx = tile_spans(h, w)
        print(f"\nseams, {NAMES['tiled']} (tiles x {sx}, y {sy}): d(border) / d(elsewhere); "
              "untiled output at the same positions for comparison\n")
        rows = []
        for out_kind, o, u in (("background model", bgs["tiled"], bgs["untiled"]),
                               ("final", outs["tiled"], outs["untiled"])):
            s = seam_ratios(o, u, sy, sx)
            diff = np.abs(o.astype(np.int16) - u)
            rows.append([out_kind, str(len(s)), f"{max(r['global'] for r in s):.3f}",
                         f"{np.mean([r['global'] for r in s]):.3f}", f"{max(r['local'] for r in s):.3f}",
                         f"{max(r['vs_untiled'] for r in s):.3f}", f"{max(r['untiled_global'] for r in s):.3f}",
                         f"{diff.mean():.3f}", f"{np.percentile(diff, 99.9):.0f}", f"{diff.max()}"])
        table(["output", "borders", "max global", "mean global", "max local", "max vs untiled",
               "untiled: max global", "mean abs diff vs untiled", "p99.9", "max"], rows)
        notes = rows[1]
        worst = sorted(seam_ratios(bgs["tiled"], bgs["untiled"], sy, sx), key=lambda r: -r["local"])[:4]
        print("\nworst borders (background model, by local ratio): " + "; ".join(
            f"{r['axis']} {r['pos']} ({r['kind']}): global {r['global']:.2f}, local {r['local']:.2f}, "
            f"vs untiled {r['vs_untiled']:.2f}" for r in worst))
    if args.sheet and notes:
        pasted = np.abs(outs["tiled"].astype(np.int16) - bgs["tiled"]).max(2) > 0
        r = notes
        lines = [f"seams (final output, {r[1]} tile edges and ramp ends): step across a border / untiled output's "
                 f"step there: max {r[5]}; step / average step elsewhere: max {r[2]} (untiled: {r[6]}, "
                 f"the content); |tiled - untiled|: mean {r[7]}, max {r[9]} of 255"]
        for p in ("guided", "720p"):
            if p in outs:
                ys, xs = reg["hair"]
                g = detail(bgs[p][ys, xs], bgs["untiled"][ys, xs])
                lines.append(f"{NAMES[p]}: hair (background model) vs untiled native: gradient ratio {g[0]:.2f}, "
                             f"high-frequency correlation {g[1]:.3f}, mean abs diff {g[2]:.2f} (tiled: 1.00, 1.000, "
                             f"{detail(bgs['tiled'][ys, xs], bgs['untiled'][ys, xs])[2]:.2f})")
        lines.append("time / peak RSS on this run's machine: " + ", ".join(
            f"{p} {res[p]['wall']:.0f} s / {res[p]['rss_mib'] / 1024:.1f} GiB" for p in paths if res.get(p)))
        spots = sheet(args.sheet, rgb, outs, pasted, face, sy, sx, lines)
        print(f"\nwrote {args.sheet}: crops at {spots}")


def video_section(paths, tmp: Path, args) -> None:
    src = tmp / "upper-body-1080p.mp4"
    n = make_video_1080p(VIDEO, src, args.seconds)
    print(f"\n## 1080p video: {VIDEO.name} scaled to 1920x1080, first {args.seconds:g} s ({n} frames), "
          "Cartoonizer.stylize_video (tracking, temporal blending, H.264)\n", flush=True)
    res = {p: run_worker(p, "video", tmp, args, src) for p in paths}
    ref = res.get("720p")
    rows = []
    for p in paths:
        r = res.get(p)
        fps = f"{r['frames'] / r['wall']:.2f}" if r else "failed"
        rows.append([NAMES[p], ratio_cells(res, p, "wall", ref), fps, ratio_cells(res, p, "rss_mib", ref),
                     r["size"] if r else ""])
    table(["path", "time (vs 720p)", "frames/s", "peak RSS (vs 720p)", "output"], rows)


if __name__ == "__main__":
    sys.exit(main())
