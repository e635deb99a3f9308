"""A ``.tflite`` model (a FlatBuffer with the TFLite schema) as tensors, operators and constants.

Float32, float16 (+DEQUANTIZE) and int8/int32 quantized constants are all read back as float32.
Field numbers follow TFLite's ``schema.fbs``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError

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
