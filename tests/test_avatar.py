"""The built-in ``avatar`` style against the artist: on the held-out AvatarHQ pairs (the 10% hash
hold-out, never trained on), through the whole pipeline, it must beat the official handdrawn style
it was fine-tuned from on all three numbers, draw more of the artist's strokes than the photo shows and
be nearly as flat as the drawings, and its model card must say where it comes from."""

from __future__ import annotations

from conftest import OFFICIAL, SHARED, need
from dctoon import load
from dctoon.styles import resolve
from dctoon.train.evaluate import artist_metrics, held_out_pairs, stylize_pairs

PAIRS = SHARED / "data" / "handdrawn-portraits-photos", SHARED / "data" / "handdrawn-portraits"


def test_avatar_beats_its_start_against_the_artist():
    photos, drawings = held_out_pairs(need(PAIRS[0]), need(PAIRS[1]))
    assert len(photos) == len(drawings) == 18
    ours = artist_metrics(stylize_pairs(load("avatar", threads=1), photos), drawings)
    start = artist_metrics(stylize_pairs(load(str(need(OFFICIAL / "dctnet_handdrawn.tflite")), threads=1), photos),
                           drawings)
    assert ours["lab_l1"] < start["lab_l1"] and ours["ssim"] > start["ssim"], (ours, start)
    assert ours["stroke_f1"] > start["stroke_f1"], (ours, start)
    photo = artist_metrics(photos, drawings)  # the aims: more of the artist's strokes than the photo has,
    assert ours["stroke_f1"] > photo["stroke_f1"], (ours, photo)  # and nearly the drawings' share of flat pixels
    assert ours["flat_share"] > artist_metrics(drawings, drawings)["flat_share"] - 0.05, ours


def test_avatar_model_card():
    card = resolve("avatar").card
    assert "CC BY-NC-SA" in card["license"] and "Apache-2.0" in card["license"]
    assert card["flat_fills"] == {"radius": 4}
    training = card["training"]
    assert training["data"]["pairs"]["n_train"] == 145 and training["init"].startswith("the head model of style")
    assert {"lab_l1", "ssim", "stroke_f1"} <= training["metrics"]["against_the_artist"].keys()
    assert training["data"]["pairs"]["paper"] == "skip"
    runs = training["average"]  # two runs from the start, averaged
    assert len(runs) == 2 and all(r["step"] > 0 for r in runs)  # early stopping kept trained steps, not the start
