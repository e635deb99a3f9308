"""Fidelity of distilled students to their teachers, through the full compound pipeline.

    python bench/fidelity.py [--styles anime handdrawn ...] [--faces 100] [--sheet]

For each style, the built-in student (``dctoon.load(name)``) and its teacher (the official DCT-Net
file in ../shared/models/official, loaded the same way) stylize the same pictures with the same
settings (faces, alignment, feathered paste-back, background model: everything). Sets, none of
them trained on:

- ``faces``: held-out face photos (the 10% hash hold-out of data/face-photos and of
  data/handdrawn-portraits-photos that ``dctoon train distill`` never trains on);
- ``images``: the shared images in media/images (and scikit-image's astronaut, the demo photo);
- ``frames``: one frame per second (``--every``) of each shared video;
- ``sheet`` (only when asked, ``--sets``): the five images of the contact sheet, a quicker ``images``.

Reports the mean PSNR and SSIM of the final RGB image (student vs teacher), and the share of
held-out face photos where a face is still detected on the output (student and teacher). Teacher
outputs are cached in ``bench/.cache`` (not committed), so a rerun costs only the students.
``--sheet`` renders docs/contact-sheets/styles.png (photo | teacher | student for every style);
``--students DIR`` evaluates students exported there (``DIR/anime`` ...) instead of the built-ins;
``--strip`` only renders docs/contact-sheets/builtins.png (two portraits in every built-in style).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

import dctoon
from dctoon.train._util import dataset_files, psnr

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
OFFICIAL = SHARED / "models" / "official"
CACHE = ROOT / "bench" / ".cache"
STYLES = ["anime", "3d", "handdrawn", "sketch", "artstyle", "sd-design", "sd-illustration"]
BUILTIN = {"sd-design": "design", "sd-illustration": "illustration"}  # official name -> built-in name


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


def video_frames(path: Path, every_s: float) -> list[np.ndarray]:
    import av

    out, next_t = [], 0.0
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            if frame.time is not None and frame.time + 1e-6 >= next_t:
                out.append(frame.to_ndarray(format="rgb24"))
                next_t += every_s
    return out


def inputs(n_faces: int, every_s: float) -> dict[str, list[tuple[str, np.ndarray]]]:
    from skimage import data

    faces = []
    for folder, n in (("face-photos", n_faces), ("handdrawn-portraits-photos", n_faces // 5)):
        for p in dataset_files(SHARED / "data" / folder, "eval", 0.1)[:n]:
            faces.append((f"{folder}/{p.name}", dctoon.read_image(p)))
    images = [("astronaut", data.astronaut())]
    images += [(p.name, dctoon.read_image(p)) for p in sorted((SHARED / "media/images").glob("*.jpg"))]
    frames = []
    for v in sorted((SHARED / "media/videos").glob("*.mp4")):
        frames += [(f"{v.stem}@{i * every_s:g}s", f) for i, f in enumerate(video_frames(v, every_s))]
    sheet = [(n, im) for n, im in images if n in SHEET_IMAGES]  # the contact sheet's five: a quick images set
    return {"faces": faces, "images": images, "sheet": sheet, "frames": frames}


def stylize_all(c: dctoon.Cartoonizer, items, cache: Path | None) -> list[np.ndarray]:
    if cache is not None and cache.exists():
        z = np.load(cache, allow_pickle=False)
        if list(z["names"]) == [n for n, _ in items]:
            return [z[f"a{i}"] for i in range(len(items))]
    outs = [c.stylize(img) for _, img in items]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, names=np.array([n for n, _ in items]), **{f"a{i}": o for i, o in enumerate(outs)})
    return outs


def face_rate(detector, images: list[np.ndarray]) -> float:
    return float(np.mean([len(detector.detect(im)) > 0 for im in images]))


def student_of(style: str, folder: str | None) -> str:
    """The student of an official style: ``FOLDER/STYLE`` (e.g. runs exported with ``dctoon train
    export``), else the built-in style distilled from it."""
    return str(Path(folder) / style) if folder else BUILTIN.get(style, style)


def evaluate(style: str, sets, threads: int, students: str | None) -> tuple[dict, dict]:
    teacher = dctoon.load(str(OFFICIAL / f"dctnet_{style}.tflite"), threads=threads)
    student = dctoon.load(student_of(style, students), threads=threads)
    row, outs = {}, {}
    for name, items in sets.items():
        t0 = time.time()
        ref = stylize_all(teacher, items, CACHE / f"teacher-{style}-{name}.npz")
        t1 = time.time()
        got = stylize_all(student, items, None)
        t2 = time.time()
        scores = [psnr(a, b) for a, b in zip(got, ref)]
        row[name] = {"n": len(items), "psnr": float(np.mean(scores)), "psnr_min": float(np.min(scores)),
                     "ssim": float(np.mean([ssim(a, b) for a, b in zip(got, ref)])),
                     "student_s": round(t2 - t1, 1)}
        if name == "faces":
            row[name]["faces_teacher"] = face_rate(student.detector, ref)
            row[name]["faces_student"] = face_rate(student.detector, got)
            row[name]["faces_photo"] = face_rate(student.detector, [im for _, im in items])
        outs[name] = (ref, got)
        print(f"  {style} {name}: {row[name]} (teacher {t1 - t0:.0f} s)", flush=True)
    all_psnr = [r["psnr"] * r["n"] for r in row.values()]
    row["mean_psnr"] = float(sum(all_psnr) / sum(r["n"] for r in row.values() if isinstance(r, dict)))
    return row, outs


def sheet(rows_in: list[tuple[str, np.ndarray]], results: dict, path: Path, cell: int = 256) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from contact_sheet import grid

    names, rows = ["photo"], []
    for style in results:
        names += [f"{style}: official", f"{style}: student"]
    for i, (_, img) in enumerate(rows_in):
        row = [img]
        for style, (ref, got) in results.items():
            row += [ref[i], got[i]]
        rows.append([cv2.resize(im, (cell, round(im.shape[0] * cell / im.shape[1])), interpolation=cv2.INTER_AREA)
                     for im in row])
    dctoon.write_image(path, grid(rows, names, height=cell))
    print("wrote", path)


def builtins_strip(path: Path, cell: int = 256) -> None:
    """The README's picture: two portraits in every built-in style, as a user sees them."""
    sys.path.insert(0, str(ROOT / "bench"))
    from contact_sheet import grid
    from skimage import data

    from dctoon.styles import BUILTIN_DIR

    photos = [data.astronaut(), dctoon.read_image(SHARED / "media/images/portrait-color.jpg", max_side=768)]
    names = sorted(n for n, d in dctoon.installed().items() if d.parent == BUILTIN_DIR)
    rows = []
    for photo in photos:
        row = [photo] + [dctoon.load(n).stylize(photo) for n in names]
        rows.append([cv2.resize(im, (cell, round(im.shape[0] * cell / im.shape[1])), interpolation=cv2.INTER_AREA)
                     for im in row])
    dctoon.write_image(path, grid(rows, ["photo", *names], height=cell))
    print("wrote", path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--styles", nargs="+", default=[s for s in STYLES if BUILTIN.get(s, s) in dctoon.installed()])
    ap.add_argument("--students", help="folder of students named by official style (default: the built-ins)")
    ap.add_argument("--strip", action="store_true", help="render docs/contact-sheets/builtins.png and stop")
    ap.add_argument("--faces", type=int, default=60, help="held-out face photos of data/face-photos")
    ap.add_argument("--every", type=float, default=1.0, help="seconds between the frames taken from each video")
    ap.add_argument("--sets", default="faces,images,frames", help="comma-separated: which sets to measure (faces,"
                    " images, frames; sheet: the five images of the contact sheet alone)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--sheet", action="store_true", help="render docs/contact-sheets/styles.png")
    ap.add_argument("--json", default=str(CACHE / "fidelity.json"), help="each style's latest numbers (updated)")
    ap.add_argument("--teachers-only", action="store_true", help="only fill the teachers' cache (any style list)")
    args = ap.parse_args()
    if args.strip:
        return builtins_strip(ROOT / "docs/contact-sheets/builtins.png")
    sets = {k: v for k, v in inputs(args.faces, args.every).items() if k in args.sets.split(",")}
    if args.teachers_only:
        for style in args.styles:
            teacher = dctoon.load(str(OFFICIAL / f"dctnet_{style}.tflite"), threads=args.threads)
            for name, items in sets.items():
                stylize_all(teacher, items, CACHE / f"teacher-{style}-{name}.npz")
            print(style, "cached", flush=True)
        return
    print(f"{platform.processor() or platform.machine()}; {', '.join(f'{k} {len(v)}' for k, v in sets.items())}")
    table, sheet_rows = {}, {}
    pictures = "images" if "images" in sets else "sheet"  # where the contact sheet's rows come from
    for style in args.styles:
        table[style], outs = evaluate(style, sets, args.threads, args.students)
        if pictures in sets:
            keep = [i for i, (n, _) in enumerate(sets[pictures]) if n in SHEET_IMAGES]
            sheet_rows[style] = tuple([o[i] for i in keep] for o in outs[pictures])
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    kept = json.loads(Path(args.json).read_text()) if Path(args.json).exists() else {}  # the other styles' last run
    Path(args.json).write_text(json.dumps(kept | table, indent=1) + "\n")
    faces = "faces" in sets
    print("\n| style | " + " | ".join(f"{k} PSNR / SSIM" for k in sets) + " | mean PSNR |"
          + (" faces detected: teacher / student / photo |" if faces else ""))
    print("|---|" + "---|" * (len(sets) + 1 + faces))
    for style, r in table.items():
        cells = [f"{r[k]['psnr']:.2f} / {r[k]['ssim']:.3f}" for k in sets] + [f"{r['mean_psnr']:.2f}"]
        if faces:
            f = r["faces"]
            cells.append(f"{f['faces_teacher']:.1%} / {f['faces_student']:.1%} / {f['faces_photo']:.1%}")
        print(f"| {style} | " + " | ".join(cells) + " |")
    if args.sheet:
        rows_in = [(n, im) for n, im in sets[pictures] if n in SHEET_IMAGES]
        sheet(rows_in, sheet_rows, ROOT / "docs/contact-sheets/styles.png")


SHEET_IMAGES = ("astronaut", "portrait-color.jpg", "portrait-512.jpg", "portrait-bw.jpg", "painting-full-body.jpg")

if __name__ == "__main__":
    main()
