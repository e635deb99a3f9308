"""Data set preparation: detect, align and filter face photos and style exemplars.

Every image goes through the inference pipeline's face detector and 5-point alignment
(:func:`dctoon.face.alignment_matrix`, the same reference points and ratio, here at 256x256), so
the trainer sees faces framed as the stylizer will show them. Pixels beyond the frame are
reflected by default (inference replicates edges; on tightly cropped selfies that draws streaks
the trainer would learn). Output layout::

    OUT/photos/*.jpg  split.json  landmarks.json     aligned photos, 10% held out (split.json)
    OUT/styles/*.jpg  split.json  landmarks.json     aligned (or centre-cropped) exemplars
    OUT/report.json                                  what was kept, dropped and why

Photos are dropped when unreadable, without a face, with a face smaller than ``min_face`` px,
or with more than one face (a second face at least ``multi_face`` times the largest one's size).
Style exemplars without a detected face (MTCNN rarely finds anime faces) are kept, centre-cropped
and resized, and the report lists them. The hold-out split is computed on the sorted SHA-256 of
the source file names (:func:`dctoon.train._util.holdout_split`), before filtering, so it does not
move when detection changes.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np

from ._util import (
    LANDMARKS_FILE,
    SPLIT_FILE,
    center_square,
    holdout_split,
    list_images,
    write_json,
)
from .settings import PrepareSettings

REASONS = ("unreadable", "no_face", "face_too_small", "multiple_faces")


def _process(files: list[Path], root: Path, dest: Path, s: PrepareSettings, detector, is_style: bool):
    import cv2

    from dctoon.face import alignment_matrix

    border = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE}[s.border]

    dest.mkdir(parents=True, exist_ok=True)
    kept: dict[str, str] = {}  # source name -> written name
    landmarks: dict[str, list] = {}
    dropped: dict[str, str] = {}
    centre_cropped: list[str] = []
    for path in files:
        name = str(path.relative_to(root))
        out_name = name.replace("/", "__").rsplit(".", 1)[0] + ".jpg"
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None or img.size == 0:
            dropped[name] = "unreadable"
            continue
        faces = detector.detect(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        reason = None
        if not faces:
            reason = "no_face"
        elif faces[0].size < s.min_face:
            reason = "face_too_small"
        elif not is_style and len(faces) > 1 and faces[1].size >= s.multi_face * faces[0].size:
            reason = "multiple_faces"
        if reason is None:
            matrix = alignment_matrix(faces[0].landmarks, size=s.size, ratio=s.ratio)
            crop = cv2.warpAffine(img, matrix, (s.size, s.size), flags=cv2.INTER_LINEAR, borderMode=border)
            lm = np.c_[faces[0].landmarks, np.ones(5)] @ matrix.T
            landmarks[out_name] = np.round(lm, 2).tolist()
        elif is_style and reason in ("no_face", "face_too_small"):
            sq = center_square(img)
            crop = cv2.resize(sq, (s.size, s.size), interpolation=cv2.INTER_AREA if sq.shape[0] > s.size
                              else cv2.INTER_CUBIC)
            centre_cropped.append(name)
        else:
            dropped[name] = reason
            continue
        cv2.imwrite(str(dest / out_name), crop, [cv2.IMWRITE_JPEG_QUALITY, s.quality])
        kept[name] = out_name
    write_json(dest / LANDMARKS_FILE, landmarks)
    return kept, dropped, centre_cropped


def prepare(settings: PrepareSettings) -> dict:
    """Write the data set; returns (and writes to OUT/report.json) the report."""
    from dctoon.face import FaceDetector

    s = settings
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    detector = FaceDetector(threads=1)
    report: dict = {"settings": {k: getattr(s, k) for k in s.__dataclass_fields__}, "alignment":
                    f"dctoon.face.align(size={s.size}, ratio={s.ratio})"}
    t0 = time.time()
    for role, folder in (("photos", s.photos), ("styles", s.styles)):
        if not folder:
            continue
        root = Path(folder)
        files = list_images(root)
        if s.limit:
            files = files[: s.limit]
        kept, dropped, centred = _process(files, root, out / role, s, detector, role == "styles")
        if role == "photos":
            train_src, eval_src = holdout_split([str(p.relative_to(root)) for p in files], s.holdout)
        else:
            train_src, eval_src = [str(p.relative_to(root)) for p in files], []
        split = {"train": sorted(kept[n] for n in train_src if n in kept),
                 "eval": sorted(kept[n] for n in eval_src if n in kept),
                 "method": f"sorted sha256 of source file names, first {s.holdout:.0%} held out"
                 if role == "photos" else "all exemplars train", "source": str(root.resolve())}
        write_json(out / role / SPLIT_FILE, split)
        report[role] = {
            "source": str(root.resolve()), "found": len(files), "kept": len(kept),
            "dropped": dict(Counter(dropped.values())), "dropped_files": dropped,
            "kept_centre_cropped_no_face": centred, "train": len(split["train"]), "eval": len(split["eval"]),
        }
    report["wall_time_s"] = round(time.time() - t0, 1)
    write_json(out / "report.json", report)
    print(summary(report))
    return _short(report)


def _short(report: dict) -> dict:
    return {role: {k: v for k, v in r.items() if k not in ("dropped_files", "kept_centre_cropped_no_face")}
            | {"centre_cropped": len(r["kept_centre_cropped_no_face"])}
            for role, r in report.items() if role in ("photos", "styles")}


def summary(report: dict) -> str:
    lines = []
    for role in ("photos", "styles"):
        r = report.get(role)
        if not r:
            continue
        drops = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sorted(r["dropped"].items())) or "none"
        lines.append(f"{role}: {r['found']} found, {r['kept']} kept ({r['train']} train, {r['eval']} eval); "
                     f"dropped: {drops}")
        if r["kept_centre_cropped_no_face"]:
            lines.append(f"  {len(r['kept_centre_cropped_no_face'])} exemplars had no detectable face: kept "
                         f"centre-cropped and resized")
    return "\n".join(lines)
