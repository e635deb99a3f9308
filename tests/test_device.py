"""Where the style models run: provider choice for cpu, cuda, tensorrt and auto, checked against
provider lists, and the real CPU-only onnxruntime of this machine (no GPU is ever needed)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import IMAGES, OFFICIAL, VIDEOS, need, one_line_error, run
from dctoon import load
from dctoon.batch import _gpu_share
from dctoon.errors import InputError
from dctoon.runtime import cpu_device, providers, uses_openvino

CPU = ["CPUExecutionProvider"]
GPU = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
OPENVINO = ["OpenVINO CPU (bf16)"] if "avx512_bf16" in open("/proc/cpuinfo").read() else ["OpenVINO CPU (f32)"]


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
    assert providers("openvino", GPU) == CPU  # OpenVINO runs the style models; the helpers stay on the CPU
    with pytest.raises(InputError, match="--device must be one of auto, cpu, openvino, cuda, tensorrt"):
        providers("gpu", GPU)


def test_this_machines_onnxruntime(tmp_path, capsys):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has a CUDA provider: the CPU-only answers do not apply")
    c = load("anime")  # the default, auto, on a CPU-only onnxruntime: OpenVINO when installed, else the CPU
    assert c.device == "auto"
    assert c.head.session.get_providers() == (OPENVINO if importlib.util.find_spec("openvino") else CPU)
    assert load("anime", device="cpu").head.session.get_providers() == CPU  # onnxruntime, whatever is installed
    assert cpu_device() == ("openvino" if importlib.util.find_spec("openvino") else "cpu")  # batch's auto on CPUs
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
    assert _gpu_share(0, 4, "openvino") == _gpu_share(2, 4, "openvino") == 0  # a CPU runtime
    assert _gpu_share(1, 4, "auto") == _gpu_share(1, 4, "cuda") == 0.25
    with pytest.raises(InputError, match="--device tensorrt: the Ray cluster has no GPU"):
        _gpu_share(0, 2, "tensorrt")


def test_openvino_stays_within_the_guard_of_onnxruntime_fp32():
    """--device openvino (bf16 where the CPU has it) against onnxruntime fp32, the official network
    through the whole pipeline: at least 35 dB PSNR on every shared image and on frames of a video,
    and no pixel far off (the guided filter stays in fp32: in bf16 some were 21-65 levels off); the
    face detector stays in onnxruntime."""
    pytest.importorskip("openvino")
    import av

    import dctoon

    style = str(need(OFFICIAL / "dctnet_anime.tflite"))
    fp32, ov = load(style, device="cpu"), load(style, device="openvino")
    assert ov.head.session.get_providers() == OPENVINO and ov.background.session.get_providers() == OPENVINO
    assert ov.detector._pnet.get_providers() == CPU
    pictures = [dctoon.read_image(p, max_side=384)[..., :3] for p in sorted(need(IMAGES).glob("*.jpg"))]
    with av.open(str(need(VIDEOS / "upper-body-720p-audio.mp4"))) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(30), c.decode(video=0))]
    pictures += [f[::2, ::2] for f in frames[::15]]
    for rgb in pictures:
        d = fp32.stylize(rgb).astype(np.float64) - ov.stylize(rgb)
        psnr = 10 * np.log10(255 ** 2 / max((d ** 2).mean(), 1e-12))
        assert psnr >= 35 and np.abs(d).max() <= 8, (rgb.shape, psnr, np.abs(d).max())


def test_auto_falls_back_to_onnxruntime_where_openvino_cannot_load(monkeypatch):
    """The default device must always run: an OpenVINO that fails to compile the model (an unsupported
    CPU, a broken install) leaves ``auto`` on onnxruntime; ``--device openvino`` says why in one line."""
    pytest.importorskip("openvino")
    import onnxruntime as ort

    from dctoon import runtime
    from dctoon.errors import ModelError

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has a CUDA provider: auto picks it before OpenVINO")

    def broken(self, model, threads=0, what="the model"):
        raise ModelError(f"OpenVINO cannot load {what}: no plugin for this CPU")

    monkeypatch.setattr(runtime.OpenVINOSession, "__init__", broken)
    assert load("anime").head.session.get_providers() == CPU
    with pytest.raises(ModelError, match="OpenVINO cannot load .*: no plugin for this CPU"):
        load("anime", device="openvino")


def test_openvino_missing_is_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    with pytest.raises(InputError, match=r"--device openvino: OpenVINO is not installed: pip install"):
        uses_openvino("openvino", CPU)
    assert not uses_openvino("auto", CPU) and not uses_openvino("cpu", CPU)
    assert not uses_openvino("auto", GPU)  # a GPU first
