"""Quality of a trained style on held-out photos: is the face still a face, in the same place, and
does it look like the exemplars? Writes a metrics JSON and a contact sheet.

Metrics (all on 256x256 held-out photos, stylized by the exported ``head.onnx``; a prepared data set's photos
are aligned like the head crop, a raw folder's are centre squares, whose eyes sit higher, at about 0.35 of
the side against 0.47: numbers compare models on one folder, not across the two kinds):

- ``face_detected``: fraction of outputs where :class:`dctoon.face.FaceDetector` still finds a face;
- ``landmark_error_px``: mean distance (px at 256) between the 5 landmarks detected on the photo
  and on its output (largest face of each), over the pairs where both are found;
- ``style_distance``: Jensen-Shannon divergence (bits, 0 = same, 1 = disjoint) between the pooled
  histograms of the outputs and of the exemplars, for colour (8x8x8 RGB bins) and for the
  gradient magnitude of the grey image (32 log-spaced bins: how flat the regions and how strong
  the lines are). The same numbers for the unstylized photos give the "before" value: a style
  moves both towards 0. Histograms need no network (no pretrained features can be had here) and
  read directly: colour palette and flat-regions-plus-lines statistics.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dctoon.errors import InputError
from dctoon.runtime import session

from ._util import dataset_files, read_bgr, write_json
from .settings import EvalSettings


def stylize_all(session, images: list[np.ndarray]) -> list[np.ndarray]:
    name = session.get_inputs()[0].name
    return [session.run(None, {name: img[None].astype(np.float32)})[0][0] for img in images]


def colour_hist(images: list[np.ndarray]) -> np.ndarray:
    h = np.zeros(512)
    for img in images:
        q = (img // 32).reshape(-1, 3).astype(np.int64)
        h += np.bincount(q[:, 0] * 64 + q[:, 1] * 8 + q[:, 2], minlength=512)
    return h / h.sum()


GRAD_BINS = np.concatenate([[0], np.logspace(-0.5, np.log10(400), 31), [np.inf]])


def gradient_hist(images: list[np.ndarray]) -> np.ndarray:
    import cv2

    h = np.zeros(len(GRAD_BINS) - 1)
    for img in images:
        g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
        mag = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)) / 4
        h += np.histogram(mag, GRAD_BINS)[0]
    return h / h.sum()


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2

    def kl(a, b):
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / b[nz])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def face_metrics(detector, photos: list[np.ndarray], outputs: list[np.ndarray]) -> dict:
    """Over the photos with a detected face: the fraction whose output still has one, and the mean
    5-landmark distance between the two (largest face of each)."""
    import cv2

    with_face, detected, errors = 0, 0, []
    for p, o in zip(photos, outputs):
        fp = detector.detect(cv2.cvtColor(p, cv2.COLOR_BGR2RGB))
        if not fp:
            continue
        with_face += 1
        fo = detector.detect(cv2.cvtColor(o, cv2.COLOR_BGR2RGB))
        if not fo:
            continue
        detected += 1
        errors.append(float(np.linalg.norm(fp[0].landmarks - fo[0].landmarks, axis=1).mean()))
    return {"face_detected": round(detected / max(with_face, 1), 4), "photos_with_face": with_face,
            "landmark_error_px": round(float(np.mean(errors)), 2) if errors else None}


def style_metrics(outputs: list[np.ndarray], ex_colour: np.ndarray, ex_grad: np.ndarray) -> dict:
    return {"colour_js": round(js_divergence(colour_hist(outputs), ex_colour), 4),
            "gradient_js": round(js_divergence(gradient_hist(outputs), ex_grad), 4)}


def contact_sheet(path: Path, columns: list[tuple[str, list[np.ndarray]]], rows: int, groups: int,
                  cell: int) -> Path:
    import cv2

    n = min(rows * groups, len(columns[0][1]))
    head = 28
    ncol = len(columns)
    sheet = np.full((head + rows * cell, groups * ncol * cell + (groups - 1) * 8, 3), 255, np.uint8)
    for g in range(groups):
        x0 = g * (ncol * cell + 8)
        for c, (label, imgs) in enumerate(columns):
            cv2.putText(sheet, label, (x0 + c * cell + 6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                        cv2.LINE_AA)
            for r in range(rows):
                i = g * rows + r
                if i >= n:
                    continue
                img = cv2.resize(imgs[i], (cell, cell), interpolation=cv2.INTER_AREA)
                sheet[head + r * cell: head + (r + 1) * cell, x0 + c * cell: x0 + (c + 1) * cell] = img
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return path


def evaluate(settings: EvalSettings) -> dict:
    from dctoon.face import FaceDetector

    from dctoon.importers import read_any
    from dctoon.styles import resolve

    s = settings
    style = resolve(s.style)  # a name, a style folder or a model file
    head = style.head.read_bytes() if style.head.suffix == ".onnx" else \
        read_any(style.head).onnx().SerializeToString()
    card = {"name": style.name, **style.card}
    files = dataset_files(Path(s.photos), "eval", 0.1)
    if s.limit:
        files = files[: s.limit]
    photos = [read_bgr(p, 256) for p in files]
    if not photos:
        raise InputError(f"no held-out photos in {s.photos}")
    ex_files = dataset_files(Path(s.exemplars), "train")
    exemplars = [read_bgr(p, 256) for p in ex_files]
    ex_colour, ex_grad = colour_hist(exemplars), gradient_hist(exemplars)
    detector = FaceDetector(threads=s.threads)

    ours = stylize_all(session(head, s.threads), photos)
    how = "split.json eval list" if (Path(s.photos) / "split.json").exists() else \
        "10% hash hold-out, never trained on"
    result: dict = {"n_eval": len(photos), "eval_set": f"{os.path.relpath(Path(s.photos).resolve())} ({how})",
                    "n_exemplars": len(exemplars)}
    result["ours"] = face_metrics(detector, photos, ours) | style_metrics(ours, ex_colour, ex_grad)
    result["photos_unstylized"] = style_metrics(photos, ex_colour, ex_grad)
    columns = [("photo", photos), (card.get("name", "ours"), ours)]
    if s.reference:
        try:
            from dctoon.importers import read_any

            ref = read_any(Path(s.reference))
            ref_out = stylize_all(session(ref.onnx().SerializeToString(), s.threads), photos)
            result["reference_whitebox"] = face_metrics(detector, photos, ref_out) | style_metrics(
                ref_out, ex_colour, ex_grad)
            columns.append(("White-box (ref.)", ref_out))
        except ImportError as e:  # the importer is another module; skip the column without it
            result["reference_whitebox"] = f"skipped: {e}"
    if s.sheet:
        contact_sheet(Path(s.sheet), columns, s.sheet_rows, s.sheet_groups, s.sheet_cell)
        result["sheet"] = s.sheet
    out = Path(s.out) if s.out else Path(s.style).resolve().parent / f"metrics-{style.name}.json" \
        if Path(s.style).exists() else Path(f"metrics-{style.name}.json")
    write_json(out, result)
    print(table(result))
    return result


def table(result: dict) -> str:
    rows = ["| model | faces detected | landmark error (px) | colour JS | gradient JS |", "|---|---|---|---|---|"]
    for key in ("ours", "reference_whitebox", "photos_unstylized"):
        r = result.get(key)
        if isinstance(r, dict):
            rows.append(f"| {key} | {r.get('face_detected', '-')} | {r.get('landmark_error_px', '-')} | "
                        f"{r['colour_js']} | {r['gradient_js']} |")
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# against the artist: a style's output beside the drawing an artist made over the same photo

PAIR_SIZE = 256


def face_ellipse(size: int = PAIR_SIZE) -> np.ndarray:
    """Boolean mask of the central face ellipse of an aligned portrait (CelebA-HQ framing: the face
    spans about the middle 55% of the width, brows to chin): where a drawing is compared."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    return ((xx - 0.5) / 0.28) ** 2 + ((yy - 0.53) / 0.36) ** 2 <= 1.0


def dark_strokes(bgr: np.ndarray) -> np.ndarray:
    """Dark lines: where a difference of Gaussians (sigma 1.0 minus sigma 1.6) of the grey image
    falls below -3 grey levels."""
    import cv2

    g = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    dog = cv2.GaussianBlur(g, (0, 0), 1.0) - cv2.GaussianBlur(g, (0, 0), 1.6)
    return dog < -3.0


def stroke_f1(ours: np.ndarray, drawing: np.ndarray, mask: np.ndarray) -> float:
    """F1 of our dark strokes against the drawing's, each counted as found within 1 px of the other."""
    import cv2

    a, b = dark_strokes(ours) & mask, dark_strokes(drawing) & mask
    near = lambda m: cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # noqa: E731
    if not a.any() or not b.any():
        return float(a.any() == b.any())
    precision = (a & near(b)).sum() / a.sum()
    recall = (b & near(a)).sum() / b.sum()
    return float(2 * precision * recall / max(precision + recall, 1e-9))


def flat_share(bgr: np.ndarray, mask: np.ndarray) -> float:
    """Share of flat pixels inside ``mask``: grey Sobel gradient magnitude (3x3) under 8 levels. An
    artist's flat skin and fills score high, photographic shading and texture low."""
    import cv2

    g = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    magnitude = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))
    return float((magnitude[mask] < 8).mean())


def grey_ssim(ours: np.ndarray, drawing: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM of the grey images (Gaussian window sigma 1.5, the usual constants) inside ``mask``."""
    import cv2

    x, y = (cv2.cvtColor(im, cv2.COLOR_BGR2GRAY).astype(np.float64) for im in (ours, drawing))
    blur = lambda im: cv2.GaussianBlur(im, (11, 11), 1.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim = (2 * mx * my + c1) * (2 * cov + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(ssim[mask].mean())


def lab_l1(ours: np.ndarray, drawing: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute difference in CIELAB (L 0-100, a and b about -128..127), over the 3 channels."""
    import cv2

    lab = lambda im: cv2.cvtColor(im.astype(np.float32) / 255, cv2.COLOR_BGR2LAB)  # noqa: E731
    return float(np.abs(lab(ours) - lab(drawing))[mask].mean())


def artist_metrics(outputs: list[np.ndarray], drawings: list[np.ndarray]) -> dict:
    """Lab L1 (lower is better), grey SSIM and dark-stroke F1 (higher is better) of 256x256 outputs
    against the drawings, and the outputs' flat share (to compare with the drawings' own), inside the
    face ellipse, averaged over the pairs."""
    mask = face_ellipse()
    rows = [(lab_l1(o, d, mask), grey_ssim(o, d, mask), stroke_f1(o, d, mask), flat_share(o, mask))
            for o, d in zip(outputs, drawings)]
    lab, ssim, f1, flat = np.mean(rows, 0)
    return {"lab_l1": round(float(lab), 3), "ssim": round(float(ssim), 4), "stroke_f1": round(float(f1), 4),
            "flat_share": round(float(flat), 4)}


def held_out_pairs(photos: Path, drawings: Path, holdout: float = 0.1) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The hold-out split of a pair set (photo and drawing share a file name), the names a trainer
    with the same ``holdout`` never sees: (photos, drawings) as BGR centre squares at ``PAIR_SIZE``, read
    as the trainer reads them."""
    pairs = [(p, Path(drawings) / p.relative_to(photos)) for p in dataset_files(Path(photos), "eval", holdout)]
    pairs = [(p, d) for p, d in pairs if d.is_file()]
    return [read_bgr(p, PAIR_SIZE) for p, _ in pairs], [read_bgr(d, PAIR_SIZE) for _, d in pairs]


def stylize_pairs(cartoonizer, photos: list[np.ndarray]) -> list[np.ndarray]:
    """Each BGR photo through the whole pipeline (faces detected, heads pasted, background)."""
    return [cartoonizer.stylize(np.ascontiguousarray(p[..., ::-1]))[..., ::-1].copy() for p in photos]
