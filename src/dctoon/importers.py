"""Read TTN generator weights from other frameworks' files, without those frameworks.

Two readers on top of :mod:`dctoon.formats`:
- ``.tflite`` (:class:`~dctoon.formats.tflite.TFLiteGraph`): float32, float16 (+DEQUANTIZE) and
  int8/int32 quantized weights, all turned back into float32;
- frozen TensorFlow ``GraphDef`` ``.pb`` (:class:`~dctoon.formats.graphdef.GraphDef`), the official
  DCT-Net layout (``input_image`` / ``output_image``, with or without a name scope such as
  ``model_head/``).

Layers are found by structure, not by name: the generator's convolutions form a chain, so their
execution order is unique and is matched against ``network.conv_specs``. The guided filter's radius
(its box-filter kernel size) and eps (the scalar added to the variance) are read from the graph.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import network
from .errors import ModelError
from .formats.graphdef import GraphDef
from .formats.tflite import TFLiteGraph


@dataclass
class ImportedTTN:
    weights: dict[str, np.ndarray]
    radius: int
    eps: float
    bands: int = 0  # tone bands (our own graphs only)
    band_sharpness: float = network.DEFAULT_SHARPNESS
    fill_radius: int = 0  # flat fills (our own graphs only)

    def onnx(self, metadata: dict[str, str] | None = None):
        """The inference graph this version of dctoon writes for these weights."""
        return network.build_onnx(self.weights, self.radius, self.eps, metadata, self.bands, self.band_sharpness,
                                  fill_radius=self.fill_radius)



def read_tflite(path: Path) -> ImportedTTN:
    """A .tflite generator's weights; a truncated or damaged file (offsets past its end) is one line."""
    try:
        return _tflite_weights(TFLiteGraph(path), path)
    except (struct.error, IndexError, ValueError, UnicodeDecodeError, KeyError):
        raise ModelError(f"{path}: a damaged or truncated TFLite model (its tables point past its end)") from None


def _tflite_weights(g: TFLiteGraph, path: Path) -> ImportedTTN:
    kernels, biases, radius, eps = [], [], network.DEFAULT_RADIUS, network.DEFAULT_EPS
    for op in g.ops:
        ins = op.inputs
        if op.name == "CONV_2D":  # filter OHWI -> OIHW
            kernels.append(g.constant(ins[1]).transpose(0, 3, 1, 2))
            biases.append(g.constant(ins[2]) if len(ins) > 2 and ins[2] >= 0 else np.zeros(len(kernels[-1])))
        elif op.name == "DEPTHWISE_CONV_2D":  # the guided filter's box filter [1, k, k, C]
            k = g.constant(ins[1])
            if k is not None:
                radius = k.shape[1] // 2
        elif op.name == "ADD":  # ADD of a scalar constant: the guided filter's eps
            for t in ins:
                c = g.constant(t)
                if c is not None and c.size == 1 and 0 < float(c.reshape(())) < 1:
                    eps = float(c.reshape(()))
    return _validated(path, kernels, biases, radius, eps)


def _validated(path, kernels, biases, radius, eps) -> ImportedTTN:
    if not kernels:
        raise ModelError(f"{path}: no convolution layers found; is this a DCT-Net / White-box generator?")
    try:
        weights = network.weights_from_list(kernels, biases)
    except ValueError as e:
        raise ModelError(f"{path}: not a unet_generator: {e}") from None
    return ImportedTTN(weights, int(radius), float(eps))


def read_graphdef(path: Path) -> ImportedTTN:
    try:
        graph = GraphDef(Path(path).read_bytes())
    except (ValueError, IndexError, UnicodeDecodeError, TypeError, AttributeError, struct.error):
        raise ModelError(f"{path}: not a TensorFlow GraphDef") from None
    if not graph.nodes or not any(n.op == "Placeholder" for n in graph.nodes.values()):
        raise ModelError(f"{path}: not a frozen TensorFlow graph (no input placeholder)")
    kernels, biases, radius, eps = [], [], network.DEFAULT_RADIUS, network.DEFAULT_EPS
    for node in graph.order():
        if node.op == "Conv2D":
            k = graph.const(node.inputs[1])
            if k is None:
                raise ModelError(f"{path}: convolution {node.name} has no constant kernel")
            kernels.append(k.transpose(3, 2, 0, 1))  # HWIO -> OIHW
            bias = np.zeros(k.shape[3], np.float32)
            for c in graph.consumers.get(node.name, []):
                if c.op in ("BiasAdd", "Add", "AddV2"):
                    b = graph.const(c.inputs[1])
                    bias = b if b is not None and b.shape == bias.shape else bias
            biases.append(bias)
        elif node.op == "DepthwiseConv2dNative":
            k = graph.const(node.inputs[1])
            if k is not None:
                radius = k.shape[0] // 2
        elif node.op in ("Add", "AddV2"):
            c = graph.const(node.inputs[1])
            if c is not None and c.size == 1 and 0 < float(c.reshape(())) < 1:
                eps = float(c.reshape(()))
    return _validated(path, kernels, biases, radius, eps)


def read_any(path: Path) -> ImportedTTN:
    """Weights from a .tflite, a frozen .pb or one of our .onnx graphs, by file content."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise ModelError(f"{path}: empty model file")
    if head[4:8] == b"TFL3":
        return read_tflite(path)
    if path.suffix.lower() == ".tflite":
        raise ModelError(f"{path}: not a TFLite model (no TFL3 identifier)")
    if path.suffix == ".onnx":
        import onnx

        try:
            model = onnx.load(str(path))
        except Exception:
            raise ModelError(f"{path}: not a valid ONNX file") from None
        weights = network.weights_from_onnx(model)
        if not weights:
            raise ModelError(f"{path}: ONNX file holds no dctoon generator")
        props = {p.key: p.value for p in model.metadata_props}
        return ImportedTTN(weights, int(props.get("gf_radius", network.DEFAULT_RADIUS)),
                           float(props.get("gf_eps", network.DEFAULT_EPS)), int(props.get("bands", 0)),
                           float(props.get("band_sharpness", network.DEFAULT_SHARPNESS)),
                           int(props.get("fill_radius", 0)))
    return read_graphdef(path)
