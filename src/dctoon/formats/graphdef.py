"""A frozen TensorFlow ``GraphDef`` (a protobuf) as nodes with their inputs, attributes and
constants: a small wire-format reader, field numbers as in TensorFlow's ``graph.proto``,
``node_def.proto``, ``attr_value.proto`` and ``tensor.proto``."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

# GraphDef.node; NodeDef.{name, op, input, attr}; AttrValue.tensor
GRAPH_NODE, NODE_NAME, NODE_OP, NODE_INPUT, NODE_ATTR, ATTR_TENSOR = 1, 1, 2, 3, 5, 8
# TensorProto.{dtype, tensor_shape, tensor_content, float_val, int_val, int64_val, half_val}; TensorShapeProto.dim.size
T_DTYPE, T_SHAPE, T_CONTENT, T_FLOAT, T_INT, T_INT64, T_HALF, SHAPE_DIM, DIM_SIZE = 1, 2, 4, 5, 7, 10, 13, 2, 1

def fields(buf: bytes):
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


def tensor(buf: bytes) -> np.ndarray:
    """TensorProto -> ndarray (tensor_content, or the repeated *_val fields)."""
    dtype, shape, content, vals = 1, [], None, []
    for num, wire, v in fields(buf):
        if num == T_DTYPE:
            dtype = v
        elif num == T_SHAPE:
            shape = [next((s for n, _, s in fields(d) if n == DIM_SIZE), 0) for n, _, d in fields(v) if n == SHAPE_DIM]
            shape = [s - (1 << 64) if s >= 1 << 63 else s for s in shape]
        elif num == T_CONTENT:
            content = v
        elif num == T_FLOAT:
            vals += list(np.frombuffer(v, "<f4")) if wire == 2 else [struct.unpack("<f", v)[0]]
        elif num in (T_INT, T_INT64):
            vals += _varints(v) if wire == 2 else [v]
        elif num == T_HALF:  # stored as the bits in int32
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
class Node:
    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, bytes]


def source(ref: str) -> str:
    """The node an input reference comes from (``^ctrl``, ``name:1`` -> ``name``)."""
    return ref.lstrip("^").split(":")[0]


class GraphDef:
    """The nodes of a frozen graph by name, who consumes each, their topological order, and the
    constant behind a reference (through Identity and Cast)."""

    def __init__(self, buf: bytes):
        self.nodes: dict[str, Node] = {}
        for num, _, nb in fields(buf):
            if num != GRAPH_NODE:
                continue
            name, op, inputs, attrs = "", "", [], {}
            for n, _, v in fields(nb):
                if n == NODE_NAME:
                    name = v.decode()
                elif n == NODE_OP:
                    op = v.decode()
                elif n == NODE_INPUT:
                    inputs.append(v.decode())
                elif n == NODE_ATTR:  # map<string, AttrValue> entry: key 1, value 2
                    kv = {k: val for k, _, val in fields(v)}
                    attrs[kv.get(1, b"").decode()] = kv.get(2, b"")
            self.nodes[name] = Node(name, op, inputs, attrs)
        self.consumers: dict[str, list[Node]] = {}
        for node in self.nodes.values():
            for ref in node.inputs:
                self.consumers.setdefault(source(ref), []).append(node)

    def const(self, ref: str) -> np.ndarray | None:
        node = self.nodes.get(source(ref))
        while node is not None and node.op in ("Identity", "Cast"):
            node = self.nodes.get(source(node.inputs[0]))
        if node is None or node.op != "Const":
            return None
        value = next((v for n, _, v in fields(node.attrs.get("value", b"")) if n == ATTR_TENSOR), None)
        return None if value is None else tensor(value)

    def order(self) -> list[Node]:
        """Topological order (Kahn), so a chain of layers comes out in sequence."""
        nodes = self.nodes
        indeg = {name: len({source(r) for r in n.inputs if source(r) in nodes}) for name, n in nodes.items()}
        ready = sorted(name for name, d in indeg.items() if d == 0)
        out: list[Node] = []
        while ready:
            name = ready.pop()
            out.append(nodes[name])
            for c in {c.name for c in self.consumers.get(name, [])}:
                indeg[c] -= 1
                if indeg[c] == 0:
                    ready.append(c)
        return out
