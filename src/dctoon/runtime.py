"""The one place that makes an ONNX Runtime session: every model dctoon runs goes through
:func:`session`, so threads, graph optimisation and the execution provider are chosen once."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError, ModelError

DEVICES = ("auto", "cpu", "cuda", "tensorrt")
GPU_HINT = ("pip install 'dctoon[gpu]' (onnxruntime-gpu, in place of onnxruntime) on a machine with an NVIDIA GPU,"
            " CUDA 12 and cuDNN 9")


def providers(device: str = "cpu", available: list[str] | None = None) -> list:
    """ONNX Runtime execution providers for ``device``, best first, the CPU always last.

    ``auto``: CUDA when this onnxruntime has it, else the CPU. ``cuda``: CUDA or a one-line error.
    ``tensorrt``: TensorRT in fp16 with its engines cached (the first run at a new size builds one:
    slow once), then CUDA. ``available`` defaults to what the installed onnxruntime offers.
    """
    if device not in DEVICES:
        raise InputError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    cpu = ["CPUExecutionProvider"]
    if device == "cpu" or (device == "auto" and "CUDAExecutionProvider" not in available):
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


def session(model: bytes | str | Path, threads: int = 0, *, helper: bool = False, what: str = "the model",
            device: str = "cpu"):
    """An ``onnxruntime.InferenceSession`` for a model file or serialized bytes, on ``device``
    (:func:`providers`; the helper models always run on the CPU).

    ``threads`` 0 lets onnxruntime use every core. ``helper`` is for the small models that share the
    CPU with stylization (face detection, segmentation): one sequential thread pool that does not
    spin while idle (measured: spinning workers made detection 3x slower on a busy 2-core machine).
    A model onnxruntime cannot load is a one-line :class:`ModelError` naming ``what``.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    if helper:
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = str(model) if isinstance(model, Path) else model
    chosen = providers("cpu" if helper else device)  # a device that is not here: its own one-line error
    try:
        return ort.InferenceSession(source, sess_options=opts, providers=chosen)
    except Exception as e:  # onnxruntime raises its own exception types
        raise ModelError(f"onnxruntime cannot load {what}: {str(e).splitlines()[0]}") from None
