"""``dctoon train export``: a checkpoint of either trainer (``ttn`` or ``distill``), or an installed
style, written as a style folder with its model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dctoon.network import DEFAULT_SHARPNESS

from ._util import read_bgr
from .distill import distill_card
from .settings import ExportSettings
from .gan import load_generator, training_card


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
                                trained.get("band_sharpness", DEFAULT_SHARPNESS))
        single = True
        if st.get("kind") == "distill":
            training = distill_card(st, metrics, s.command)
            card = {"description": "", "source": "dctoon train distill", "license": training["license"]}
        else:
            training = training_card(st, metrics, s.command)
            card = {"description": "", "license": "", "source": "dctoon train ttn"}
    else:  # e.g. a built-in style given tone bands: same models, same record, the new metrics
        style = resolve(s.checkpoint)
        head = read_any(style.head)
        bg = head if style.background == style.head else read_any(style.background)
        single = style.background == style.head
        card, training = style.card, dict(style.card.get("training", {}))
        if metrics:
            training["metrics"] = metrics
        if s.command:
            training["command"] = " ; ".join(c for c in (training.get("command"), s.command) if c)
    bands = head.bands if s.bands is None else s.bands
    sharpness = head.band_sharpness if s.band_sharpness is None else s.band_sharpness
    preview = None
    if s.preview:
        bgr = read_bgr(Path(s.preview), 256)
        preview = reference_forward(head.weights, bgr[None].astype(np.float32), head.radius, head.eps, bands,
                                    sharpness)[0][..., ::-1].copy()
    pick = lambda key: card.get(key, "") if getattr(s, key) is None else getattr(s, key)  # noqa: E731
    return save_style(Path(s.out), s.name, head.weights, None if single else bg.weights,
                      description=pick("description"),
                      license=pick("license"), source=pick("source"), training=training, radius=head.radius,
                      eps=head.eps, background_filter=(bg.radius, bg.eps), preview=preview, bands=bands,
                      band_sharpness=sharpness, single_file=single)
