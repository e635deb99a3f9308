"""TFLite -> ONNX for the small helper models (MediaPipe's selfie segmentation): the float graph
rebuilt op by op, so the model runs in ONNX Runtime like everything else. Activations are NCHW
inside, with one transpose at each edge, so the ONNX model takes and returns the TFLite layout
(NHWC, batch dimension left free)."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ModelError
from .tflite import TFLiteGraph, TFLiteOp

PAD_SAME = 0  # tflite Padding enum of builtin options (VALID is 1)
TFLITE_PAD_SAME = 1  # TfLitePadding in the C struct that MediaPipe's custom op receives
ACTIVATIONS = {0: None, 1: "Relu", 2: "Clip(-1,1)", 3: "Clip(0,6)", 4: "Tanh"}
UNARY = {"LOGISTIC": "Sigmoid", "RELU": "Relu", "HARD_SWISH": "HardSwish"}


def pads(in_size: int, k: int, s: int, d: int, padding: int) -> tuple[int, int]:
    """TFLite's explicit padding (begin, end) for SAME/VALID: the extra pixel goes at the end."""
    if padding != PAD_SAME:
        return 0, 0
    out = -(-in_size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - in_size, 0)
    return total // 2, total - total // 2


class _Builder:
    """The ONNX nodes and initializers of one conversion; one method per TFLite op kind."""

    def __init__(self, g: TFLiteGraph, where: str):
        self.g, self.where = g, where
        self.nodes: list = []
        self.inits: list = []
        self.counter = 0

    def fail(self, what: str):
        raise ModelError(f"{self.where}: {what}")

    def fresh(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}_{self.counter}"

    def const(self, arr: np.ndarray, hint: str) -> str:
        from onnx import numpy_helper

        n = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), n))
        return n

    def act(self, x: int) -> str:
        g = self.g
        if g.constant(x) is not None:
            self.fail(f"constant tensor {g.name(x)} where an activation was expected")
        if len(g.shape(x)) != 4:
            self.fail(f"tensor {g.name(x)} has shape {g.shape(x)}; only 4-D activations are supported")
        return f"t{x}"

    def operand(self, x: int) -> str:
        """An elementwise operand: an activation, or a constant laid out for NCHW broadcasting."""
        c = self.g.constant(x)
        if c is None:
            return self.act(x)
        if c.ndim == 4:
            return self.const(c.transpose(0, 3, 1, 2), "k")
        return self.const(c.reshape(1, -1, 1, 1) if c.size > 1 else c.reshape(()), "k")

    def emit(self, op_type: str, inputs: list[str], out: int, fused: int = 0, **attrs) -> None:
        from onnx import helper

        fn = ACTIVATIONS.get(fused, "?")
        if fn == "?":
            self.fail(f"unsupported fused activation {fused}")
        target = f"t{out}"
        mid = self.fresh("pre") if fn else target
        self.nodes.append(helper.make_node(op_type, inputs, [mid], **attrs))
        if fn in ("Relu", "Tanh"):
            self.nodes.append(helper.make_node(fn, [mid], [target]))
        elif fn:
            lo, hi = (-1.0, 1.0) if fn == "Clip(-1,1)" else (0.0, 6.0)
            self.nodes.append(helper.make_node(
                "Clip", [mid, self.const(np.float32(lo), "lo"), self.const(np.float32(hi), "hi")], [target]))

    # -- one method per op kind
    def dequantize(self, op: TFLiteOp) -> None:
        if self.g.constant(op.inputs[0]) is None:
            self.fail("DEQUANTIZE of a non-constant tensor is not supported")
        # constants are folded: TFLiteGraph.constant() follows DEQUANTIZE

    def conv(self, op: TFLiteOp) -> None:
        g, ins, o = self.g, op.inputs, op.options
        w = g.constant(ins[1])
        if w is None:
            self.fail(f"{op.name} without constant weights")
        b = g.constant(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
        _, h, wd, c = g.shape(ins[0])
        padding, sw, sh = o.scalar(0, "b"), o.scalar(1, "i", 1), o.scalar(2, "i", 1)
        if op.name == "CONV_2D":
            fused, dw, dh = o.scalar(3, "b"), o.scalar(4, "i", 1), o.scalar(5, "i", 1)
            kernel = w.transpose(0, 3, 1, 2)  # OHWI -> OIHW
            group = c // w.shape[3]
        else:
            fused, dw, dh = o.scalar(4, "b"), o.scalar(5, "i", 1), o.scalar(6, "i", 1)
            kernel = w[0].transpose(2, 0, 1)[:, None]  # [1, kh, kw, C*M] -> [C*M, 1, kh, kw]
            group = c
        kh, kw = kernel.shape[2:]
        (pt, pb), (pl, pr) = pads(h, kh, sh, dh, padding), pads(wd, kw, sw, dw, padding)
        inputs = [self.act(ins[0]), self.const(kernel, "w")] + ([self.const(b, "b")] if b is not None else [])
        self.emit("Conv", inputs, op.outputs[0], fused, kernel_shape=[kh, kw], strides=[sh, sw],
                  dilations=[dh, dw], pads=[pt, pl, pb, pr], group=group)

    def average_pool(self, op: TFLiteOp) -> None:
        g, ins, o, out = self.g, op.inputs, op.options, op.outputs[0]
        _, h, wd, _ = g.shape(ins[0])
        padding, sw, sh, fw, fh, fused = (o.scalar(0, "b"), o.scalar(1, "i", 1), o.scalar(2, "i", 1),
                                          o.scalar(3, "i"), o.scalar(4, "i"), o.scalar(5, "b"))
        if (fh, fw) == (h, wd) and g.shape(out)[1:3] == (1, 1):
            self.emit("GlobalAveragePool", [self.act(ins[0])], out, fused)
        else:  # TFLite averages over the valid pixels only: count_include_pad=0
            (pt, pb), (pl, pr) = pads(h, fh, sh, 1, padding), pads(wd, fw, sw, 1, padding)
            self.emit("AveragePool", [self.act(ins[0])], out, fused, kernel_shape=[fh, fw], strides=[sh, sw],
                      pads=[pt, pl, pb, pr], count_include_pad=0)

    def binary(self, op: TFLiteOp) -> None:
        self.emit("Add" if op.name == "ADD" else "Mul", [self.operand(op.inputs[0]), self.operand(op.inputs[1])],
                  op.outputs[0], op.options.scalar(0, "b") if op.options else 0)

    def mean(self, op: TFLiteOp) -> None:  # the landscape model's global pooling
        axes = self.g.constant(op.inputs[1])
        if axes is None or not (op.options and op.options.scalar(0, "b")):
            self.fail("MEAN is supported over constant axes with keep_dims only")
        nchw = sorted({0: 0, 1: 2, 2: 3, 3: 1}[int(a) % 4] for a in axes.reshape(-1))
        if nchw == [2, 3]:
            self.emit("GlobalAveragePool", [self.act(op.inputs[0])], op.outputs[0])
        else:
            self.emit("ReduceMean", [self.act(op.inputs[0])], op.outputs[0], axes=nchw, keepdims=1)

    def unary(self, op: TFLiteOp) -> None:
        if op.name == "RELU6":
            self.emit("Identity", [self.act(op.inputs[0])], op.outputs[0], 3)
        else:
            self.emit(UNARY[op.name], [self.act(op.inputs[0])], op.outputs[0])

    def resize(self, op: TFLiteOp) -> None:
        g, o = self.g, op.options
        _, h, wd, _ = g.shape(op.inputs[0])
        size = g.constant(op.inputs[1])
        if size is None:
            self.fail("RESIZE_BILINEAR to a computed size is not supported")
        oh, ow = (int(v) for v in size)
        align, half = (bool(o.scalar(2, "b")), bool(o.scalar(3, "b"))) if o else (False, False)
        mode = "align_corners" if align else "half_pixel" if half else "asymmetric"
        scales = self.const(np.array([1, 1, oh / h, ow / wd], np.float32), "scales")
        if any(math.floor(np.float32(i) * np.float32(o_ / i)) != o_ for i, o_ in ((h, oh), (wd, ow))):
            self.fail(f"resize {h}x{wd} -> {oh}x{ow} is not supported")
        self.emit("Resize", [self.act(op.inputs[0]), "", scales], op.outputs[0], mode="linear",
                  coordinate_transformation_mode=mode)

    def transpose_conv(self, op: TFLiteOp) -> None:
        """MediaPipe's Convolution2DTransposeBias as ONNX ConvTranspose.

        Its custom options are the raw C struct ``TfLiteTransposeConvParams {padding, stride_width,
        stride_height}`` (three int32). The kernel computes ``out[y * s - pad + ky] += in[y] * w[ky]``
        on an output of ``s * (in - 1) + k - P`` with ``P = max(0, k - (in - 1) % s - 1)`` for SAME
        (0 for VALID) and ``pad = P // 2``: a full transposed convolution cropped by ``P // 2`` at the
        start and the rest at the end, which is ConvTranspose with pads ``(P // 2, P - P // 2)``.
        """
        if len(op.custom_options) < 12:
            self.fail("Convolution2DTransposeBias without its options")
        padding, sw, sh = struct.unpack_from("<3i", op.custom_options)
        w, b = self.g.constant(op.inputs[1]), self.g.constant(op.inputs[2])
        if w is None or b is None:
            self.fail("Convolution2DTransposeBias without constant weights and bias")
        _, h, wd, _ = self.g.shape(op.inputs[0])
        kh, kw = w.shape[1:3]
        ph = max(0, kh - (h - 1) % sh - 1) if padding == TFLITE_PAD_SAME else 0
        pw = max(0, kw - (wd - 1) % sw - 1) if padding == TFLITE_PAD_SAME else 0
        kernel = w.transpose(3, 0, 1, 2)  # OHWI -> (in, out, kh, kw)
        self.emit("ConvTranspose", [self.act(op.inputs[0]), self.const(kernel, "w"), self.const(b, "b")],
                  op.outputs[0], 0, kernel_shape=[kh, kw], strides=[sh, sw],
                  pads=[ph // 2, pw // 2, ph - ph // 2, pw - pw // 2])


OPS = {"DEQUANTIZE": _Builder.dequantize, "CONV_2D": _Builder.conv, "DEPTHWISE_CONV_2D": _Builder.conv,
       "AVERAGE_POOL_2D": _Builder.average_pool, "ADD": _Builder.binary, "MUL": _Builder.binary,
       "MEAN": _Builder.mean, "LOGISTIC": _Builder.unary, "RELU": _Builder.unary, "RELU6": _Builder.unary,
       "HARD_SWISH": _Builder.unary, "RESIZE_BILINEAR": _Builder.resize,
       "Convolution2DTransposeBias": _Builder.transpose_conv}


def tflite_to_onnx(source: Path | bytes, *, outputs: Sequence[int] | None = None, label: str | None = None):
    """Convert a float TFLite graph made of the ops in ``OPS`` to an ONNX model. ``outputs``
    (tensor indices) exposes intermediate tensors, for tests."""
    import onnx
    from onnx import TensorProto, helper

    g = TFLiteGraph(source, label)
    b = _Builder(g, label or str(g.path))
    if len(g.inputs) != 1 or len(g.shape(g.inputs[0])) != 4:
        b.fail("expected one 4-D image input")
    x0 = g.inputs[0]
    _, h_in, w_in, c_in = g.shape(x0)
    b.nodes.append(helper.make_node("Transpose", ["image"], [f"t{x0}"], perm=[0, 3, 1, 2]))
    for op in g.ops:
        convert = OPS.get(op.name)
        if convert is None:
            b.fail(f"unsupported TFLite op {op.name}")
        convert(b, op)
    wanted = list(outputs) if outputs is not None else g.outputs
    out_names = ["mask"] if outputs is None and len(wanted) == 1 else [f"out{t}" for t in wanted]
    graph_outputs = []
    for t, n in zip(wanted, out_names):
        b.nodes.append(helper.make_node("Transpose", [f"t{t}"], [n], perm=[0, 2, 3, 1]))
        _, h, wd, c = g.shape(t)
        graph_outputs.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", h, wd, c]))
    graph = helper.make_graph(b.nodes, "segment", [helper.make_tensor_value_info(
        "image", TensorProto.FLOAT, ["N", h_in, w_in, c_in])], graph_outputs, b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="dctoon")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
