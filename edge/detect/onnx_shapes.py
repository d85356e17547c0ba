"""Free an ONNX model's fixed input size without the ``onnx`` package: a minimal protobuf edit of
``ModelProto.graph`` that makes batch, height and width symbolic (CenterFace ships with 32x32 inputs).

Field numbers from onnx.proto: ModelProto.graph = 7; GraphProto.initializer = 5, input = 11, output = 12;
TensorProto.name = 8; ValueInfoProto.name = 1, type = 2; TypeProto.tensor_type = 1; TypeProto.Tensor.shape = 2;
TensorShapeProto.dim = 1; Dimension.dim_value = 1, dim_param = 2.
"""

from __future__ import annotations

from collections.abc import Callable

_LEN = 2  # wire type of length-delimited fields


def free_input_dims(model: bytes) -> bytes:
    """The ONNX model with batch, height and width of its inputs and outputs made symbolic, and its weights taken
    out of the graph inputs (so onnxruntime may fold them)."""
    return _edit(model, 7, _free_graph)


def _free_graph(graph: bytes) -> bytes:
    initializers = {_string(tensor, 8) for tensor in _payloads(graph, 5)}

    def free(value_info: bytes) -> bytes | None:
        name = _string(value_info, 1)
        if name in initializers:
            return None
        return _edit(value_info, 2, lambda t: _edit(t, 1, lambda tt: _edit(tt, 2, lambda s: _free_shape(s, name))))

    return _edit(_edit(graph, 11, free), 12, free)


def _free_shape(shape: bytes, tensor: str) -> bytes:
    index = iter(range(1 << 16))
    symbols = {0: "batch", 2: "height", 3: "width"}

    def dim(value: bytes) -> bytes:
        i = next(index)
        if i not in symbols:
            return value
        param = f"{tensor}_{symbols[i]}".encode()
        return _tag(2, _LEN) + _varint(len(param)) + param

    return _edit(shape, 1, dim)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _read_varint(buffer: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, position


def _fields(message: bytes):
    """(number, wire type, whole encoded field, payload) for each field of a protobuf message, in order."""
    position = 0
    view = memoryview(message)
    while position < len(message):
        start = position
        tag, position = _read_varint(message, position)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, position = _read_varint(message, position)
            payload = b""
        elif wire == 1:
            position += 8
            payload = b""
        elif wire == 5:
            position += 4
            payload = b""
        elif wire == _LEN:
            size, position = _read_varint(message, position)
            payload = view[position:position + size]
            position += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {start}")
        yield number, wire, view[start:position], payload


def _payloads(message: bytes, number: int) -> list[bytes]:
    return [bytes(p) for n, w, _, p in _fields(message) if n == number and w == _LEN]


def _string(message: bytes, number: int) -> str:
    found = _payloads(message, number)
    return found[0].decode() if found else ""


def _edit(message: bytes, number: int, change: Callable[[bytes], bytes | None]) -> bytes:
    """The message with each length-delimited field ``number`` replaced by ``change(payload)`` (None drops it)."""
    parts = []
    for field_number, wire, whole, payload in _fields(message):
        if field_number == number and wire == _LEN:
            new = change(bytes(payload))
            if new is None:
                continue
            parts.append(_tag(number, _LEN) + _varint(len(new)) + new)
        else:
            parts.append(bytes(whole))
    return b"".join(parts)
