"""``dctoon train export``: a checkpoint of either trainer (``ttn`` or ``distill``), or an installed
style, written as a style folder with its model card; ``dctoon train average``: runs from one start
averaged into one checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dctoon.errors import InputError
from dctoon.network import DEFAULT_SHARPNESS

from ._util import read_bgr, relative, save_checkpoint
from .distill import distill_card
from .gan import load_generator, training_card
from .settings import AverageSettings, ExportSettings


def export(settings: ExportSettings) -> Path:
    """A checkpoint, or a style (re-exported with its card's training record kept), as a style folder."""
    from dctoon.importers import ImportedTTN, read_any
    from dctoon.styles import resolve, save_style
    from dctoon.network import DEFAULT_EPS, DEFAULT_RADIUS, reference_forward

    s = settings
    metrics = json.loads(Path(s.metrics).read_text()) if s.metrics else None
    if str(s.checkpoint).endswith(".pt"):  # one network and one filter: one model.onnx serves head and background
        g, st = load_generator(s.checkpoint)
        trained = st["settings"]
        radius, eps = st.get("gf", (DEFAULT_RADIUS, DEFAULT_EPS))  # a student keeps its teacher's filter
        head = bg = ImportedTTN(g.numpy_weights(), radius, eps, trained.get("bands", 0),
                                trained.get("band_sharpness", DEFAULT_SHARPNESS), trained.get("fill_radius", 0))
        single = True
        if st.get("kind") == "distill":
            training = distill_card(st, metrics, s.command)
            card = {"description": "", "source": "dctoon train distill", "license": training["license"]}
        else:
            training = training_card(st, metrics, s.command)
            card = {"description": "", "license": "", "source": "dctoon train ttn"}
        if st.get("average"):  # the runs it averages: steps and wall time are theirs (the time summed)
            training.pop("held_out", None)
            training["average"] = st["average"]
    else:  # e.g. a built-in style given tone bands: same models, same record, the new metrics
        style = resolve(s.checkpoint)
        head = read_any(style.head)
        bg = head if style.background == style.head else read_any(style.background)
        single = (bg.radius, bg.eps) == (head.radius, head.eps) and head.weights.keys() == bg.weights.keys() and \
            all(np.array_equal(head.weights[k], bg.weights[k]) for k in head.weights)  # one file serves both
        card, training = style.card, dict(style.card.get("training", {}))
        if metrics:
            training["metrics"] = metrics
            if training.get("rounds") and "mean_psnr" in metrics:  # the last round's fidelity, now measured
                training["rounds"] = [*training["rounds"][:-1], {**training["rounds"][-1],
                                                                 "fidelity_psnr_db": metrics["mean_psnr"]}]
        if s.command:
            training["command"] = " ; ".join(c for c in (training.get("command"), s.command) if c)
    bands = head.bands if s.bands is None else s.bands
    sharpness = head.band_sharpness if s.band_sharpness is None else s.band_sharpness
    fills = head.fill_radius if s.fill_radius is None else s.fill_radius
    preview = None
    if s.preview:
        bgr = read_bgr(Path(s.preview), 256)
        preview = reference_forward(head.weights, bgr[None].astype(np.float32), head.radius, head.eps, bands,
                                    sharpness, fills)[0][..., ::-1].copy()
    pick = lambda key: card.get(key, "") if getattr(s, key) is None else getattr(s, key)  # noqa: E731
    return save_style(Path(s.out), s.name, head.weights, None if single else bg.weights,
                      description=pick("description"),
                      license=pick("license"), source=pick("source"), training=training, radius=head.radius,
                      eps=head.eps, background_filter=(bg.radius, bg.eps), preview=preview, bands=bands,
                      band_sharpness=sharpness, single_file=single, half=True, fill_radius=fills)


def average(settings: AverageSettings) -> Path:
    """A weight average of runs fine-tuned from one start (a "model soup"): each run moves the start's
    weights a little, so their average is a network too, and usually keeps what each run learnt best
    (e.g. the strokes of one and the faces of another). Writes a checkpoint that ``export`` takes; its
    card lists the runs, their weights and how their settings differ."""
    s = settings
    paths = list(s.checkpoints)
    weights = list(s.weights) if s.weights else [1.0] * len(paths)
    if len(paths) < 2 or len(weights) != len(paths) or min(weights) < 0 or sum(weights) <= 0:
        raise InputError(f"train average: give two or more checkpoints and as many weights, none negative"
                         f" ({len(paths)} checkpoints, {len(weights)} weights)")
    weights = [w / sum(weights) for w in weights]
    states = [load_generator(p)[1] for p in paths]
    if len({tuple((k, tuple(v.shape)) for k, v in st["G"].items()) for st in states}) != 1:
        raise InputError("train average: the checkpoints are networks of different widths or depths")
    if len({st.get("init") for st in states}) != 1:
        raise InputError("train average: the runs started from different weights (--init); only runs from one"
                         " start average into a working network")
    first = states[0]
    varying = sorted(k for k in first["settings"] if len({repr(st["settings"].get(k)) for st in states}) > 1)
    out = dict(first, G={k: sum(w * st["G"][k].float() for w, st in zip(weights, states)) for k in first["G"]},
               elapsed=sum(st["elapsed"] for st in states),
               average=[{"checkpoint": relative(p), "weight": round(w, 4), "step": st["step"],
                         **{k: st["settings"].get(k) for k in varying if k != "out"}}
                        for p, w, st in zip(paths, weights, states)])
    for key in ("opt_g", "opt_d", "Ds", "Dt"):  # an average is an end point, not a run to resume
        out.pop(key, None)
    Path(s.out).parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(out, Path(s.out))
