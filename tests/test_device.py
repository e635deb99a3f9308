"""Where the style models run: provider choice for cpu, cuda, tensorrt and auto, checked against
provider lists, and the real CPU-only onnxruntime of this machine (no GPU is ever needed)."""

from __future__ import annotations

import pytest

from conftest import IMAGES, need, one_line_error, run
from dctoon import load
from dctoon.batch import _gpu_share
from dctoon.errors import InputError
from dctoon.runtime import providers

CPU = ["CPUExecutionProvider"]
GPU = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def names(chosen) -> list[str]:
    return [p if isinstance(p, str) else p[0] for p in chosen]


def test_provider_choice(tmp_path, monkeypatch):
    assert providers("cpu", GPU) == CPU
    assert providers("auto", CPU) == CPU
    assert names(providers("auto", GPU)) == names(providers("cuda", GPU)) == ["CUDAExecutionProvider", *CPU]
    monkeypatch.setenv("DCTOON_HOME", str(tmp_path))
    trt = providers("tensorrt", GPU)
    assert names(trt) == GPU  # TensorRT, then CUDA for what it cannot take, the CPU last
    assert trt[0][1]["trt_fp16_enable"] and trt[0][1]["trt_engine_cache_path"] == str(tmp_path / "tensorrt")
    with pytest.raises(InputError, match=r"--device cuda: this onnxruntime has no CUDA provider: pip install"):
        providers("cuda", CPU)
    with pytest.raises(InputError, match="no TensorRT provider"):
        providers("tensorrt", ["CUDAExecutionProvider", *CPU])
    with pytest.raises(InputError, match="--device must be one of auto, cpu, cuda, tensorrt"):
        providers("gpu", GPU)


def test_this_machines_onnxruntime(tmp_path, capsys):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has a CUDA provider: the CPU-only answers do not apply")
    c = load("anime", device="auto")  # auto on a CPU-only onnxruntime: the CPU, and it runs
    assert c.head.session.get_providers() == CPU
    with pytest.raises(InputError, match="no CUDA provider"):
        load("anime", device="cuda")
    with pytest.raises(TypeError, match="only be set when loading"):
        c.configure(device="cuda")
    photo = need(IMAGES / "portrait-512.jpg")
    code, _, err = run(["image", photo, "-o", tmp_path / "out.png", "--device", "cuda"], capsys)
    assert code == 2 and "pip install 'dctoon[gpu]'" in one_line_error(err)
    assert not (tmp_path / "out.png").exists()
    code, out, err = run(["image", photo, "-o", tmp_path / "out.png", "--device", "auto", "--max-side", "256"],
                         capsys)
    assert code == 0 and (tmp_path / "out.png").is_file(), err


def test_batch_shares_the_gpus_among_workers():
    assert _gpu_share(0, 4, "cpu") == _gpu_share(2, 4, "cpu") == _gpu_share(0, 4, "auto") == 0
    assert _gpu_share(1, 4, "auto") == _gpu_share(1, 4, "cuda") == 0.25
    with pytest.raises(InputError, match="--device tensorrt: the Ray cluster has no GPU"):
        _gpu_share(0, 2, "tensorrt")
