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
from dctoon.cpu import cpu_info
from dctoon.runtime import Choice, auto_choice, choose, cpu_device, providers, uses_openvino

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
    c = load("anime")  # the default, auto, on a CPU-only onnxruntime: what the rule says for this CPU
    expected = choose([], cpu_info()[1], importlib.util.find_spec("openvino") is not None)
    assert c.device == "auto" and auto_choice() == expected
    assert c.head.session.get_providers() == (OPENVINO if expected.device == "openvino" else CPU)
    assert load("anime", device="cpu").head.session.get_providers() == CPU  # onnxruntime, whatever is installed
    assert cpu_device() == expected.device  # batch's auto on CPUs
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
    monkeypatch.setattr(runtime, "cpu_info", lambda: ("a CPU with bf16", {"avx2", "avx512_bf16"}))
    assert auto_choice().device == "openvino"  # what auto would take, were it not broken

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


def test_auto_picks_by_what_the_cpu_offers():
    """``auto``'s rule on the flags of each CPU kind, installed runtimes or not: OpenVINO where it was
    measured faster (bf16 CPUs, and AVX2 ones in fp32), onnxruntime where nobody measured it."""
    zen5, epyc = {"avx2", "fma", "avx512f", "avx512_bf16"}, {"avx2", "fma"}
    sapphire_rapids, old = {"avx2", "avx512f", "amx_bf16", "amx_tile"}, {"sse4_2", "avx"}
    assert choose(CPU, zen5, True)[:2] == ("openvino", "bf16")
    assert choose(CPU, sapphire_rapids, True)[:2] == ("openvino", "bf16")
    assert "amx_bf16" in choose(CPU, sapphire_rapids, True).reason
    assert choose(CPU, epyc, True)[:2] == ("openvino", "fp32")
    assert choose(CPU, old, True)[:2] == choose(CPU, None, True)[:2] == ("cpu", "fp32")  # not measured
    assert "not known" in choose(CPU, None, True).reason and "without AVX2" in choose(CPU, old, True).reason
    for flags in (zen5, epyc, old, None):
        assert choose(CPU, flags, False)[:2] == ("cpu", "fp32")  # nothing else installed
        assert choose(GPU, flags, True) == Choice("cuda", "fp32", "onnxruntime has a CUDA provider: the GPU first")
    assert "pip install 'dctoon[openvino]' runs bf16 here" in choose(CPU, zen5, False).reason
    assert "runs fp32 here" in choose(CPU, epyc, False).reason and "pip" not in choose(CPU, old, False).reason


def test_doctor_says_this_machines_cpu_runtimes_and_auto(capsys):
    import onnxruntime as ort

    code, out, err = run(["doctor"], capsys)
    assert code == 0 and not err, err
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert list(lines) == ["dctoon", "cpu", "vector", "runtimes", "auto", "why"]
    flags = cpu_info()[1]
    assert lines["cpu"].strip().startswith(cpu_info()[0]) and (flags is None or ("avx2" in lines["cpu"]) == (
        "avx2" in flags))
    bf16 = f"avx512_bf16 {'yes' if 'avx512_bf16' in (flags or ()) else 'no'}"
    assert (bf16 in lines["vector"]) == (flags is not None)
    assert f"onnxruntime {ort.__version__}" in lines["runtimes"]
    assert ("openvino not installed" in lines["runtimes"]) == (importlib.util.find_spec("openvino") is None)
    choice = auto_choice()
    assert lines["auto"].strip().endswith(f"{choice.precision} (--device {choice.device})")
    assert lines["why"].strip() == choice.reason


def test_cpu_info_reads_the_model_and_flags(tmp_path):
    listing = tmp_path / "cpuinfo"
    listing.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R45\nflags\t\t: fpu avx2 fma avx512f avx512_bf16\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC 9R45\nflags\t\t: fpu avx2 fma avx512f avx512_bf16\n")
    model, flags = cpu_info(listing)
    assert model == "AMD EPYC 9R45" and {"avx2", "avx512_bf16"} <= flags and "sse" not in flags
    assert choose(CPU, flags, True).precision == "bf16"
    assert cpu_info(tmp_path / "none")[1] is None  # not Linux: flags not known, and auto stays on onnxruntime
