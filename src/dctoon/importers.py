"""Read TTN generator weights from other frameworks' files, without those frameworks.

Two readers, each a few dozen lines of wire-format parsing:
- ``.tflite`` (a FlatBuffer, TFLite schema): float32, float16 (+DEQUANTIZE) and int8/int32
  quantized weights are all turned back into float32. :class:`TFLiteGraph` exposes the whole
  graph (tensors, operators with their options, constants) for converters such as
  :func:`dctoon.segment.tflite_to_onnx`.
- frozen TensorFlow ``GraphDef`` ``.pb`` (a protobuf), the official DCT-Net layout
  (``input_image`` / ``output_image``, with or without a name scope such as ``model_head/``).

Layers are found by structure, not by name: the generator's convolutions form a chain, so their
execution order is unique and is matched against ``ttn.conv_specs``. The guided filter's radius
(its box-filter kernel size) and eps (the scalar added to the variance) are read from the graph.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import ttn
from .errors import ModelError


@dataclass
class ImportedTTN:
    weights: dict[str, np.ndarray]
    radius: int
    eps: float
    bands: int = 0  # tone bands (our own graphs only)
    band_sharpness: float = ttn.DEFAULT_SHARPNESS

    def onnx(self, metadata: dict[str, str] | None = None):
        """The inference graph this version of dctoon writes for these weights."""
        return ttn.build_onnx(self.weights, self.radius, self.eps, metadata, self.bands, self.band_sharpness)


# --------------------------------------------------------------------------------------------
# TFLite (FlatBuffers)

_TFL_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}
_TFL_OPS = {0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
            6: "DEQUANTIZE", 14: "LOGISTIC", 17: "MAX_POOL_2D", 18: "MUL", 19: "RELU", 21: "RELU6",
            22: "RESHAPE", 23: "RESIZE_BILINEAR", 32: "CUSTOM", 40: "MEAN", 117: "HARD_SWISH"}


class _Table:
    """A FlatBuffer table: fields are looked up through the vtable by index."""

    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        self.vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vt_len = struct.unpack_from("<H", buf, self.vt)[0]

    def _field(self, i: int) -> int:
        o = 4 + 2 * i
        return struct.unpack_from("<H", self.buf, self.vt + o)[0] if o < self.vt_len else 0

    def scalar(self, i: int, fmt: str, default=0):
        o = self._field(i)
        return struct.unpack_from("<" + fmt, self.buf, self.pos + o)[0] if o else default

    def _vector(self, i: int) -> tuple[int, int]:
        o = self._field(i)
        if not o:
            return 0, 0
        p = self.pos + o
        p += struct.unpack_from("<I", self.buf, p)[0]
        return p + 4, struct.unpack_from("<I", self.buf, p)[0]

    def tables(self, i: int) -> list[_Table]:
        start, n = self._vector(i)
        return [_Table(self.buf, start + 4 * j + struct.unpack_from("<I", self.buf, start + 4 * j)[0])
                for j in range(n)]

    def array(self, i: int, dtype) -> np.ndarray:
        start, n = self._vector(i)
        return np.frombuffer(self.buf, dtype=dtype, count=n, offset=start) if n else np.zeros(0, dtype)

    def table(self, i: int) -> _Table | None:
        o = self._field(i)
        if not o:
            return None
        p = self.pos + o
        return _Table(self.buf, p + struct.unpack_from("<I", self.buf, p)[0])

    def bytes(self, i: int) -> bytes:
        """A [ubyte] vector or a string field, as bytes."""
        start, n = self._vector(i)
        return bytes(self.buf[start:start + n])


@dataclass
class TFLiteOp:
    """One operator: its name (builtin, or the custom code of a CUSTOM op), tensor indices
    (-1: optional input left out), builtin options table and raw custom options."""

    name: str
    inputs: list[int]
    outputs: list[int]
    options: _Table | None
    custom_options: bytes


class TFLiteGraph:
    """The first subgraph of a ``.tflite`` file: tensors, operators in execution order, inputs and
    outputs, and the constants behind tensors (read once, on demand)."""

    def __init__(self, source: Path | bytes, name: str | None = None):
        """``source``: a path, or the file's bytes (a member read out of an archive) named ``name``."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            buf, self.path = bytes(source), Path(name or "model.tflite")
        else:
            self.path = Path(source)
            buf = self.path.read_bytes()
        if len(buf) < 8 or buf[4:8] != b"TFL3":
            raise ModelError(f"{self.path}: not a TFLite model")
        self.buf = buf
        model = _Table(buf, struct.unpack_from("<I", buf, 0)[0])
        names = []
        for oc in model.tables(1):  # builtin_code (field 3) supersedes the deprecated int8 (field 0)
            code = max(oc.scalar(0, "b"), oc.scalar(3, "i"))
            names.append(oc.bytes(1).decode() if code == 32 else _TFL_OPS.get(code, f"builtin {code}"))
        self.buffers = model.tables(4)
        graph = model.tables(2)[0]
        self.tensors = graph.tables(0)
        self.inputs = [int(t) for t in graph.array(1, np.int32)]
        self.outputs = [int(t) for t in graph.array(2, np.int32)]
        self.ops = [TFLiteOp(names[o.scalar(0, "I")], [int(t) for t in o.array(1, np.int32)],
                             [int(t) for t in o.array(2, np.int32)], o.table(4), o.bytes(5))
                    for o in graph.tables(3)]
        self.producer = {out: op for op in self.ops for out in op.outputs}

    def shape(self, t: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.tensors[t].array(0, np.int32))

    def name(self, t: int) -> str:
        return self.tensors[t].bytes(3).decode(errors="replace")

    def dtype(self, t: int):
        return _TFL_DTYPES.get(self.tensors[t].scalar(1, "b"))

    def constant(self, t: int) -> np.ndarray | None:
        """The constant behind tensor t as float32 (following DEQUANTIZE), or None."""
        if t in self.producer:
            op = self.producer[t]
            return self.constant(op.inputs[0]) if op.name == "DEQUANTIZE" else None
        tensor = self.tensors[t]
        data = self.buffers[tensor.scalar(2, "I")]
        raw = data.array(0, np.uint8)
        if raw.size == 0 and data.scalar(1, "Q"):  # data stored after the flatbuffer
            off, size = data.scalar(1, "Q"), data.scalar(2, "Q")
            raw = np.frombuffer(self.buf, np.uint8, count=size, offset=off)
        if raw.size == 0:
            return None
        dtype = self.dtype(t)
        if dtype is None:
            raise ModelError(f"{self.path}: unsupported tensor type {tensor.scalar(1, 'b')}")
        arr = raw.view(dtype).reshape(self.shape(t)).astype(np.float32)
        q = tensor.table(4)
        scale = q.array(2, np.float32) if q else np.zeros(0)
        if scale.size and np.issubdtype(dtype, np.integer):
            zero = q.array(3, np.int64).astype(np.float32)
            shape = [1] * arr.ndim
            if scale.size > 1:
                shape[q.scalar(6, "i")] = -1
            arr = (arr - zero.reshape(shape)) * scale.reshape(shape)
        return arr


def read_tflite(path: Path) -> ImportedTTN:
    g = TFLiteGraph(path)
    kernels, biases, radius, eps = [], [], ttn.DEFAULT_RADIUS, ttn.DEFAULT_EPS
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
        weights = ttn.weights_from_list(kernels, biases)
    except ValueError as e:
        raise ModelError(f"{path}: not a unet_generator: {e}") from None
    return ImportedTTN(weights, int(radius), float(eps))


# --------------------------------------------------------------------------------------------
# Frozen GraphDef (protobuf)


def _fields(buf: bytes):
    """Yield (field number, wire type, value) of one protobuf message."""
    pos, end = 0, len(buf)

    def varint():
        nonlocal pos
        shift = result = 0
        while True:
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7

    while pos < end:
        key = varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            yield num, wire, varint()
        elif wire == 1:
            yield num, wire, buf[pos:pos + 8]
            pos += 8
        elif wire == 2:
            n = varint()
            yield num, wire, buf[pos:pos + n]
            pos += n
        elif wire == 5:
            yield num, wire, buf[pos:pos + 4]
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _varints(buf: bytes) -> list[int]:
    """A packed repeated varint field."""
    out, shift, cur = [], 0, 0
    for b in buf:
        cur |= (b & 0x7F) << shift
        if b < 0x80:
            out.append(cur)
            cur = shift = 0
        else:
            shift += 7
    return out


_TF_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 19: np.float16}


def _tensor(buf: bytes) -> np.ndarray:
    """TensorProto -> ndarray (tensor_content, or the repeated *_val fields)."""
    dtype, shape, content, vals = 1, [], None, []
    for num, wire, v in _fields(buf):
        if num == 1:
            dtype = v
        elif num == 2:  # TensorShapeProto: repeated Dim {size = 1}
            shape = [next((s for n, _, s in _fields(d) if n == 1), 0) for n, _, d in _fields(v) if n == 2]
            shape = [s - (1 << 64) if s >= 1 << 63 else s for s in shape]
        elif num == 4:
            content = v
        elif num == 5:  # float_val
            vals += list(np.frombuffer(v, "<f4")) if wire == 2 else [struct.unpack("<f", v)[0]]
        elif num in (7, 10):  # int_val, int64_val
            vals += _varints(v) if wire == 2 else [v]
        elif num == 13:  # half_val, stored as the bits in int32
            bits = _varints(v) if wire == 2 else [v]
            vals += list(np.array(bits, np.uint16).view(np.float16).astype(np.float32))
    np_dtype = _TF_DTYPES.get(dtype)
    if np_dtype is None:
        return np.zeros(0, np.float32)
    count = int(np.prod(shape)) if shape else 1
    if content is not None:
        return np.frombuffer(content, np_dtype).reshape(shape).astype(np.float32)
    arr = np.array(vals or [0], np.float32)
    return np.broadcast_to(arr[-1], (count,)).copy().reshape(shape) if arr.size == 1 else arr.reshape(shape)


@dataclass
class _Node:
    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, bytes]


def _graph(buf: bytes) -> dict[str, _Node]:
    nodes = {}
    for num, _, nb in _fields(buf):
        if num != 1:
            continue
        name, op, inputs, attrs = "", "", [], {}
        for n, _, v in _fields(nb):
            if n == 1:
                name = v.decode()
            elif n == 2:
                op = v.decode()
            elif n == 3:
                inputs.append(v.decode())
            elif n == 5:  # map<string, AttrValue> entry
                kv = {k: val for k, _, val in _fields(v)}
                attrs[kv.get(1, b"").decode()] = kv.get(2, b"")
        nodes[name] = _Node(name, op, inputs, attrs)
    return nodes


def read_graphdef(path: Path) -> ImportedTTN:
    try:
        nodes = _graph(Path(path).read_bytes())
    except (ValueError, IndexError, UnicodeDecodeError, TypeError, AttributeError, struct.error):
        raise ModelError(f"{path}: not a TensorFlow GraphDef") from None
    if not nodes or not any(n.op == "Placeholder" for n in nodes.values()):
        raise ModelError(f"{path}: not a frozen TensorFlow graph (no input placeholder)")

    def src(ref: str) -> str:
        return ref.lstrip("^").split(":")[0]

    def const(ref: str) -> np.ndarray | None:
        node = nodes.get(src(ref))
        while node is not None and node.op in ("Identity", "Cast"):
            node = nodes.get(src(node.inputs[0]))
        if node is None or node.op != "Const":
            return None
        attr = node.attrs.get("value", b"")
        tensor = next((v for n, _, v in _fields(attr) if n == 8), None)  # AttrValue.tensor
        return None if tensor is None else _tensor(tensor)

    consumers: dict[str, list[_Node]] = {}
    for node in nodes.values():
        for ref in node.inputs:
            consumers.setdefault(src(ref), []).append(node)

    order: list[_Node] = []  # topological order (Kahn) so the conv chain comes out in sequence
    indeg = {name: len({src(r) for r in n.inputs if src(r) in nodes}) for name, n in nodes.items()}
    ready = sorted(name for name, d in indeg.items() if d == 0)
    while ready:
        name = ready.pop()
        order.append(nodes[name])
        for c in {c.name for c in consumers.get(name, [])}:
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)

    kernels, biases, radius, eps = [], [], ttn.DEFAULT_RADIUS, ttn.DEFAULT_EPS
    for node in order:
        if node.op == "Conv2D":
            k = const(node.inputs[1])
            if k is None:
                raise ModelError(f"{path}: convolution {node.name} has no constant kernel")
            kernels.append(k.transpose(3, 2, 0, 1))  # HWIO -> OIHW
            bias = np.zeros(k.shape[3], np.float32)
            for c in consumers.get(node.name, []):
                if c.op in ("BiasAdd", "Add", "AddV2"):
                    b = const(c.inputs[1])
                    bias = b if b is not None and b.shape == bias.shape else bias
            biases.append(bias)
        elif node.op == "DepthwiseConv2dNative":
            k = const(node.inputs[1])
            if k is not None:
                radius = k.shape[0] // 2
        elif node.op in ("Add", "AddV2"):
            c = const(node.inputs[1])
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
    if path.suffix == ".onnx":
        import onnx

        try:
            model = onnx.load(str(path))
        except Exception:
            raise ModelError(f"{path}: not a valid ONNX file") from None
        weights = ttn.weights_from_onnx(model)
        if not weights:
            raise ModelError(f"{path}: ONNX file holds no dctoon generator")
        props = {p.key: p.value for p in model.metadata_props}
        return ImportedTTN(weights, int(props.get("gf_radius", ttn.DEFAULT_RADIUS)),
                           float(props.get("gf_eps", ttn.DEFAULT_EPS)), int(props.get("bands", 0)),
                           float(props.get("band_sharpness", ttn.DEFAULT_SHARPNESS)))
    return read_graphdef(path)
