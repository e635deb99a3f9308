"""The one place that makes an inference session: every model dctoon runs goes through
:func:`session`, so threads, graph optimisation and the execution provider (or OpenVINO) are chosen once."""

from __future__ import annotations

import os
import threading
from collections import namedtuple
from pathlib import Path

from .cpu import BF16_FLAGS, cpu_info
from .errors import InputError, ModelError, check_range, exhausted

DEVICES = ("auto", "cpu", "openvino", "cuda", "tensorrt")
CPU_DEVICES = ("cpu", "openvino")  # devices that run on the CPU alone: no GPU provider, no GPU share
OPENVINO_HINT = "pip install 'dctoon[openvino]'"
GPU_HINT = ("pip install 'dctoon[gpu]' (onnxruntime-gpu, in place of onnxruntime) on a machine with an NVIDIA GPU,"
            " CUDA 12 and cuDNN 9")


def providers(device: str = "cpu", available: list[str] | None = None) -> list:
    """ONNX Runtime execution providers for ``device``, best first, the CPU always last.

    ``auto``: CUDA when this onnxruntime has it, else the CPU (where :func:`session` takes OpenVINO
    where :func:`choose` says so). ``openvino``: the CPU (OpenVINO runs the style models; the helpers stay
    here). ``cuda``: CUDA or a one-line error.
    ``tensorrt``: TensorRT in fp16 with its engines cached (the first run at a new size builds one:
    slow once), then CUDA. ``available`` defaults to what the installed onnxruntime offers.
    """
    if device not in DEVICES:
        raise InputError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    cpu = ["CPUExecutionProvider"]
    if device in CPU_DEVICES or (device == "auto" and "CUDAExecutionProvider" not in available):
        return cpu
    if "CUDAExecutionProvider" not in available:
        raise InputError(f"--device {device}: this onnxruntime has no CUDA provider: {GPU_HINT}")
    cuda = [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})]
    if device != "tensorrt":
        return cuda + cpu
    if "TensorrtExecutionProvider" not in available:
        raise InputError("--device tensorrt: this onnxruntime has no TensorRT provider (install TensorRT 10 "
                         "beside onnxruntime-gpu; --device cuda works without it)")
    from .paths import engines_dir

    trt = {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(engines_dir())}
    return [("TensorrtExecutionProvider", trt)] + cuda + cpu


def cap_threads(threads: int) -> int:
    """``threads`` within this machine's cores (0: all of them), with a note on stderr when capped:
    more only oversubscribes, and a huge number exhausts the machine's thread limit for every
    process. Negative is refused."""
    import sys

    check_range("--threads", threads, 0)
    cores = os.cpu_count() or 1
    if threads > cores:
        print(f"dctoon: note: --threads {threads} is more than this machine's {cores} cores: using {cores}",
              file=sys.stderr)
    return min(int(threads), cores)


def session(model: bytes | str | Path, threads: int = 0, *, helper: bool = False, what: str = "the model",
            device: str = "cpu"):
    """An ``onnxruntime.InferenceSession`` for a model file or serialized bytes, on ``device``
    (:func:`providers`; the helper models always run on the CPU).

    ``threads`` 0 lets onnxruntime use every core. ``helper`` is for the small models that share the
    CPU with stylization (face detection, segmentation): one sequential thread pool that does not
    spin while idle (measured: spinning workers made detection 3x slower on a busy 2-core machine).
    A model onnxruntime cannot load is a one-line :class:`ModelError` naming ``what``. A style model
    on ``openvino`` (or ``auto`` where :func:`choose` picks it) is an :class:`OpenVINOSession`;
    where OpenVINO cannot load it, ``auto`` falls back to onnxruntime (``openvino`` says so in one line).
    """
    import onnxruntime as ort

    if not helper and uses_openvino(device, ort.get_available_providers()):
        try:
            return OpenVINOSession(model, threads, what)
        except ModelError:
            if device != "auto":
                raise

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 4  # fatal only: an error comes back as an exception, said by dctoon in one line
    if threads:
        opts.intra_op_num_threads = int(threads)
    if helper:
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = str(model) if isinstance(model, Path) else model
    chosen = providers("cpu" if helper else device)  # a device that is not here: its own one-line error
    try:  # no fallback: onnxruntime's would print a banner, and a device asked for is never silently another
        return ort.InferenceSession(source, sess_options=opts, providers=chosen, enable_fallback=0)
    except Exception as e:  # onnxruntime raises its own exception types
        raise exhausted(e) or ModelError(f"onnxruntime cannot load {what}: {str(e).splitlines()[0]}") from None


# What ``--device auto`` runs the style models on, in which precision, and why (`dctoon doctor`); a
# namedtuple, not typing's: the CLI's parser imports this module, and typing costs it 11 ms.
Choice = namedtuple("Choice", ["device", "precision", "reason"])


def choose(available: list[str], flags: set[str] | None, openvino: bool) -> Choice:
    """``auto``'s rule, a pure function of onnxruntime's providers, the CPU's flags (``None``: not
    known) and whether OpenVINO is installed, so that it is tested with any CPU's flags.

    A GPU first. On the CPU, OpenVINO where it was measured faster than onnxruntime fp32 (bench/RESULTS.md):
    in bf16 where the CPU computes it natively (AVX512-BF16 or AMX; Zen 5: 402 against 740 ms per 720p
    frame), in fp32 on an AVX2 CPU without them (AMD EPYC: 0.77x and 0.94x onnxruntime's time at the two
    widest networks). A CPU with neither, or whose flags are not known (not Linux), was not measured:
    onnxruntime, which runs everywhere.
    """
    if "CUDAExecutionProvider" in available:
        return Choice("cuda", "fp32", "onnxruntime has a CUDA provider: the GPU first")
    have = flags or set()
    bf16 = " and ".join(f for f in BF16_FLAGS if f in have)
    if openvino and bf16:
        return Choice("openvino", "bf16", f"OpenVINO is installed and the CPU has {bf16}: bf16 there is measured "
                                          "faster than onnxruntime fp32")
    if openvino and "avx2" in have:
        return Choice("openvino", "fp32", "OpenVINO is installed; the CPU has AVX2 but no AVX512-BF16 or AMX: "
                                          "OpenVINO fp32 is measured faster than onnxruntime fp32 there")
    if openvino:
        why = "not known (not Linux)" if flags is None else "without AVX2"
        return Choice("cpu", "fp32", f"this CPU's flags are {why}: OpenVINO was not measured on such a CPU, "
                                     "onnxruntime fp32 runs everywhere (--device openvino asks for OpenVINO)")
    if bf16 or "avx2" in have:
        return Choice("cpu", "fp32", f"OpenVINO is not installed: onnxruntime fp32 ({OPENVINO_HINT} runs "
                                     f"{'bf16' if bf16 else 'fp32'} here, measured faster)")
    return Choice("cpu", "fp32", "OpenVINO is not installed: onnxruntime fp32")


def auto_choice(available: list[str] | None = None) -> Choice:
    """:func:`choose` on this machine (``available``: onnxruntime's providers, asked when not given)."""
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    return choose(available, cpu_info()[1], has_openvino())


def uses_openvino(device: str, available: list[str]) -> bool:
    """Whether the style models run in OpenVINO: asked for (``openvino``: installed, or a one-line
    error), or ``auto`` where :func:`choose` picks it."""
    if device == "openvino" and not has_openvino():
        raise InputError(f"--device openvino: OpenVINO is not installed: {OPENVINO_HINT}")
    return device == "openvino" or (device == "auto" and auto_choice(available).device == "openvino")


def cpu_device() -> str:
    """What ``auto`` means where no GPU is to be used (a batch worker on a CPU-only cluster)."""
    return auto_choice([]).device


def has_openvino() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class OpenVINOSession:
    """A style model (a graph of :func:`dctoon.network.build_onnx`) in OpenVINO on the CPU, behind
    the call dctoon makes of an ONNX Runtime session (``run``, ``get_providers``).

    The U-Net computes in bf16 where the CPU does so natively (AVX512-BF16 or AMX), else in fp32; the
    guided filter after it always in fp32, as a second graph: its variance, mean(x^2) - mean(x)^2,
    cancels in bf16's 8-bit mantissa. Measured on this project's Zen 5 (bench/runtimes.py): the
    official network at 720p in 402 ms against onnxruntime's 740 ms fp32 (396 with the filter in
    bf16 too); on a 512 px portrait the output is 57 dB PSNR from fp32's (at most 1 level off) with
    the filter in fp32, 47 dB (39 levels off at worst, and more flicker in video) with it in bf16.
    """

    def __init__(self, model: bytes | str | Path, threads: int = 0, what: str = "the model"):
        import openvino as ov

        core = ov.Core()
        self.precision = "bf16" if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            generator, guided_filter = _split_at_generator(Path(model).read_bytes() if isinstance(model, (str, Path))
                                                           else model)
            self.parts = [core.compile_model(core.read_model(part), "CPU", {**config, "INFERENCE_PRECISION_HINT": p})
                          for part, p in ((generator, self.precision), (guided_filter, "f32"))]
        except Exception as e:  # OpenVINO and onnx raise their own exception types
            raise exhausted(e) or ModelError(f"OpenVINO cannot load {what}: {str(e).splitlines()[0]}") from None
        self._local = threading.local()  # infer requests per thread: a request is not shared

    def get_providers(self) -> list[str]:
        return [f"OpenVINO CPU ({self.precision})"]

    def run(self, output_names: list[str] | None, feeds: dict) -> list:
        from .network import GENERATOR_OUTPUT, INPUT_NAME, OUTPUT_NAME

        requests = getattr(self._local, "requests", None)
        if requests is None:
            requests = self._local.requests = [part.create_infer_request() for part in self.parts]
        generator, guided_filter = requests
        generator.infer(feeds)
        guided_filter.infer({INPUT_NAME: feeds[INPUT_NAME], GENERATOR_OUTPUT: generator.get_output_tensor(0).data})
        return [guided_filter.get_tensor(name).data.copy() for name in output_names or [OUTPUT_NAME]]


def _split_at_generator(model: bytes) -> tuple[bytes, bytes]:
    """A style graph cut in two: photo -> U-Net output, and (photo, U-Net output) -> the result."""
    import onnx
    from onnx.utils import Extractor

    from .network import GENERATOR_OUTPUT, INPUT_NAME, OUTPUT_NAME

    graph = Extractor(onnx.shape_inference.infer_shapes(onnx.load_from_string(model)))
    return (graph.extract_model([INPUT_NAME], [GENERATOR_OUTPUT]).SerializeToString(),
            graph.extract_model([INPUT_NAME, GENERATOR_OUTPUT], [OUTPUT_NAME]).SerializeToString())


def doctor() -> list[tuple[str, str]]:
    """`dctoon doctor`: the CPU, the runtimes installed, and what ``--device auto`` runs here and why,
    so that a speed (or a slowness) can be explained without reading the code."""
    import importlib.metadata as md
    import platform

    import onnxruntime as ort

    from . import __version__
    from .cpu import cpu_line

    flags = cpu_info()[1]
    vector = "not known (no /proc/cpuinfo)" if flags is None else ", ".join(
        f"{name} {'yes' if any(f in flags for f in group) else 'no'}"
        for name, group in (("avx2", ["avx2"]), ("avx512f", ["avx512f"]), ("avx512_bf16", ["avx512_bf16"]),
                            ("amx", ["amx_bf16", "amx_int8", "amx_tile"])))
    available = ort.get_available_providers()
    runtimes = [f"onnxruntime {ort.__version__} ({', '.join(available)})"]
    if has_openvino():
        import openvino as ov

        capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        runtimes.append(f"openvino {md.version('openvino')} (CPU: {' '.join(capabilities)})")
    else:
        runtimes.append(f"openvino not installed ({OPENVINO_HINT})")
    choice = auto_choice(available)
    name = {"cpu": "onnxruntime on the CPU", "openvino": "OpenVINO on the CPU", "cuda": "onnxruntime CUDA"}
    return [("dctoon", f"{__version__}, Python {platform.python_version()}"), ("cpu", cpu_line()),
            ("vector", vector), ("runtimes", "; ".join(runtimes)),
            ("auto", f"{name[choice.device]}, {choice.precision} (--device {choice.device})"), ("why", choice.reason)]
