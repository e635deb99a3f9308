"""Compression (dctoon.train.compress): a cut that keeps what the dropped channels carried.

A toy teacher (c=8, 3 blocks) with biases and weights scaled so that its channels carry mean levels,
as trained networks' do; calibration and test pictures are smooth random images.
"""

from __future__ import annotations

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
