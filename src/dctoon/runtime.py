"""The one place that makes an ONNX Runtime session: every model dctoon runs goes through
:func:`session`, so threads, graph optimisation and (later) the execution provider are chosen once."""

from __future__ import annotations

from pathlib import Path

from .errors import ModelError


def session(model: bytes | str | Path, threads: int = 0, *, helper: bool = False, what: str = "the model"):
    """An ``onnxruntime.InferenceSession`` on the CPU for a model file or serialized bytes.

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
    try:
        return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise ModelError(f"onnxruntime cannot load {what}: {str(e).splitlines()[0]}") from None
