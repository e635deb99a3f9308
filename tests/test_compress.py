"""Compression (dctoon.train.compress): a cut that keeps what the dropped channels carried.

A toy teacher (c=8, 3 blocks) with biases and weights scaled so that its channels carry mean levels,
as trained networks' do; calibration and test pictures are smooth random images.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dctoon.network import config_of, reference_forward  # noqa: E402
from dctoon.train._util import psnr  # noqa: E402
from dctoon.train.compress import activation_stats, cut, refit  # noqa: E402
from dctoon.train.model import Generator  # noqa: E402


def pictures(n: int, seed: int, size: int = 64) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        noise = rng.uniform(0, 255, (size // 8, size // 8, 3)).astype(np.float32)
        out.append(np.clip(cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="module")
def teacher() -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    g = Generator(8, 3)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.3)
            else:
                p.mul_(1.6)
    return g.numpy_weights()


def fidelity(student: dict, teacher: dict, x: np.ndarray) -> float:
    ref = reference_forward(teacher, x.astype(np.float32))
    out = reference_forward(student, x.astype(np.float32))
    return float(np.mean([psnr(a, b) for a, b in zip(out, ref)]))


def test_compensated_cut_beats_the_plain_cut_and_refit_beats_both(teacher):
    calib, test = pictures(12, 1), pictures(6, 2)
    stats = activation_stats(teacher, calib)
    small, plan = cut(teacher, calib, 6, 3, stats=stats)
    assert config_of(small) == (6, 3)
    plain = fidelity(cut(teacher, calib, 6, 3, stats=stats, compensate=False)[0], teacher, test)
    folded = fidelity(small, teacher, test)
    refitted = fidelity(refit(small, teacher, plan, calib), teacher, test)
    assert folded > plain + 1.0, (plain, folded)
    assert refitted > folded + 1.0, (folded, refitted)


def test_a_dropped_block_is_folded_into_the_trunk_readers(teacher):
    calib, test = pictures(12, 3), pictures(6, 4)
    stats = activation_stats(teacher, calib)
    small, plan = cut(teacher, calib, 8, 2, stats=stats)
    assert config_of(small) == (8, 2) and len(plan.blocks) == 2
    # without the fold, the kept blocks' readers miss the dropped residual's mean
    unfolded = fidelity(cut(teacher, calib, 8, 2, stats=stats, compensate=False)[0], teacher, test)
    folded = fidelity(small, teacher, test)
    assert folded > unfolded, (unfolded, folded)
    assert fidelity(refit(small, teacher, plan, calib), teacher, test) > folded


def test_full_width_cut_is_the_teacher(teacher):
    calib = pictures(4, 5)
    same, plan = cut(teacher, calib, 8, 3)
    for k, v in teacher.items():
        np.testing.assert_allclose(same[k], v, atol=1e-5, err_msg=k)


def test_cut_refuses_to_widen(teacher):
    from dctoon.errors import InputError

    with pytest.raises(InputError, match="cannot cut"):
        cut(teacher, pictures(2, 6), 12, 3)


def test_a_distill_run_starts_from_the_cut_and_a_later_round_from_the_shipped_student(tmp_path):
    """``--init teacher`` wider than the student: the compressed start, already close to the teacher
    (the validation logged before the first step); export records the round; a second round from the
    exported style (same width: no cut) resumes its weights, and its card keeps both rounds."""
    import json
    import shutil

    from conftest import SHARED, need
    from dctoon.styles import save_style
    from dctoon.train import distill
    from dctoon.train.export import export
    from dctoon.train.settings import DistillSettings, ExportSettings

    photos = tmp_path / "photos"
    photos.mkdir()
    for p in sorted(need(SHARED / "data" / "face-photos").glob("*.jpg"))[:16]:
        shutil.copy(p, photos / p.name)
    torch.manual_seed(0)
    save_style(tmp_path / "teacher", "teacher", Generator(8, 2).numpy_weights(), description="", license="test",
               source="test", single_file=True)
    s = DistillSettings(teacher=str(tmp_path / "teacher"), photos=[str(photos)], out=str(tmp_path / "r1"), channel=6,
                        blocks=2, steps=4, batch=2, res=64, pool=12, pool_size=96, val_images=4, sample_every=4,
                        threads=1, init="teacher", calib=8)
    first = distill.Distiller(s)
    assert first.G.channel == 6 and "cut from c=8/2 blocks to c=6/2 blocks" in first.init
    assert "pool inputs: face, zoom, scene, degraded)" in first.init  # the default calibration kinds
    export(ExportSettings(checkpoint=str(first.run()), out=str(tmp_path / "student"), name="student"))
    card = json.loads((tmp_path / "student" / "style.json").read_text())["training"]
    assert first.history[0]["step"] == 0 and first.history[0]["val_psnr"] > 25  # the cut start, before training
    best = torch.load(tmp_path / "r1" / "best.pt", weights_only=True)  # the best validated state is kept
    assert best["history"][-1]["val_psnr"] == max(h["val_psnr"] for h in first.history)
    assert [r["steps"] for r in card["rounds"]] == [4] and "cut from" in card["rounds"][0]["init"]

    second = distill.Distiller(dataclasses.replace(s, out=str(tmp_path / "r2"), init=str(tmp_path / "student")))
    shipped = {k: v.astype(np.float16).astype(np.float32) for k, v in first.G.numpy_weights().items()}
    assert all(np.array_equal(second.G.numpy_weights()[k], v) for k, v in shipped.items())
    export(ExportSettings(checkpoint=str(second.run()), out=str(tmp_path / "student2"), name="student"))
    card = json.loads((tmp_path / "student2" / "style.json").read_text())["training"]
    assert len(card["rounds"]) == 2 and card["rounds"][1]["init"].startswith("the head model of style student")


def test_calibration_draws_only_the_kinds_asked_for():
    """The cut calibrates on the pool kinds named (all four by default), each input at
    most once, and a pool without any of them is one clear error, not an empty calibration."""
    from dctoon.errors import InputError
    from dctoon.train.distill import KINDS, calibration_pick

    kinds = np.array([0, 2, 1, 3, 2, 0, 3, 1, 0, 2])
    pick = calibration_pick(kinds, ("face", "zoom"), 4, 0)
    assert len(pick) == len(set(pick)) == 4 and set(kinds[pick]) <= {0, 1} and list(pick) == sorted(pick)
    assert sorted(calibration_pick(kinds, ("scene",), 99, 0)) == [1, 4, 9]  # fewer than asked: all there are
    assert set(kinds[calibration_pick(kinds, KINDS, 10, 1)]) == {0, 1, 2, 3}
    with pytest.raises(InputError, match="holds no degraded inputs"):
        calibration_pick(np.array([0, 1, 2]), ("degraded",), 4, 0)
