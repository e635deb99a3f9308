"""The one place that makes an inference session: every model dctoon runs goes through
:func:`session`, so threads, graph optimisation and the execution provider (or OpenVINO) are chosen once."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .errors import InputError, ModelError, check_range, exhausted

DEVICES = ("auto", "cpu", "openvino", "cuda", "tensorrt")
CPU_DEVICES = ("cpu", "openvino")  # devices that run on the CPU alone: no GPU provider, no GPU share
OPENVINO_HINT = "pip install 'dctoon[openvino]'"
GPU_HINT = ("pip install 'dctoon[gpu]' (onnxruntime-gpu, in place of onnxruntime) on a machine with an NVIDIA GPU,"
            " CUDA 12 and cuDNN 9")


def providers(device: str = "cpu", available: list[str] | None = None) -> list:
    """ONNX Runtime execution providers for ``device``, best first, the CPU always last.

    ``auto``: CUDA when this onnxruntime has it, else the CPU (where :func:`session` prefers OpenVINO
    when it is installed). ``openvino``: the CPU (OpenVINO runs the style models; the helpers stay
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
    on ``openvino`` (or ``auto`` on a CPU with OpenVINO installed) is an :class:`OpenVINOSession`;
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


def uses_openvino(device: str, available: list[str]) -> bool:
    """Whether the style models run in OpenVINO: asked for (``openvino``: installed, or a one-line
    error), or ``auto`` with no CUDA provider and OpenVINO installed."""
    if device not in ("openvino", "auto") or (device == "auto" and "CUDAExecutionProvider" in available):
        return False
    if device == "openvino" and not has_openvino():
        raise InputError(f"--device openvino: OpenVINO is not installed: {OPENVINO_HINT}")
    return has_openvino()


def cpu_device() -> str:
    """What ``auto`` means where no GPU is to be used: OpenVINO when installed, else onnxruntime."""
    return "openvino" if has_openvino() else "cpu"


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
