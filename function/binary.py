"""The Open Inference Protocol's binary tensor extension: a JSON header, then raw little-endian tensors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from function import jsonio
from function.errors import RequestError
from function.schemas import V2InferRequest, V2Tensor
from function.tensors import decode_tensor, encode_tensor, tensor_dtype

HEADER = "Inference-Header-Content-Length"


def header_size(raw: bytes, header_length: str) -> int:
    """The JSON header's length from ``Inference-Header-Content-Length``; 400 unless it fits in the body."""
    try:
        length = int(header_length)
    except ValueError:
        raise RequestError(f"{HEADER} must be an integer") from None
    if not 0 < length <= len(raw):
        raise RequestError(f"{HEADER} must be between 1 and the body's length ({len(raw)} bytes)")
    return length


def split_body(raw: bytes, header_length: str) -> tuple[Any, memoryview]:
    """A binary-extension body -> (its JSON header document, the raw tensor bytes after it)."""
    length = header_size(raw, header_length)
    try:
        header = jsonio.loads(memoryview(raw)[:length])
    except (ValueError, UnicodeDecodeError):
        raise RequestError(f"the first {HEADER} bytes of the body are not valid JSON") from None
    if not isinstance(header, dict):
        raise RequestError("request body must be a JSON object")
    return header, memoryview(raw)[length:]  # no copy of the tensor bytes


def decode_inputs(inputs: list[V2Tensor], blob: bytes | memoryview) -> dict[str, np.ndarray]:
    """JSON and binary inputs -> arrays; binary ones take their bytes from ``blob``, in input order."""
    arrays, offset = {}, 0
    for tensor in inputs:
        size = _binary_size(tensor)
        if size is None:
            arrays[tensor.name] = decode_tensor(tensor)
            continue
        if offset + size > len(blob):
            raise RequestError(f"input {tensor.name!r}: binary_data_size runs past the binary data sent")
        arrays[tensor.name] = _from_bytes(tensor, blob[offset : offset + size])
        offset += size
    if offset != len(blob):
        raise RequestError("binary data past the inputs' binary_data_size are not claimed by any input")
    return arrays


def wants_binary(request: V2InferRequest, name: str) -> bool:
    """An output's own ``binary_data`` parameter wins over the request's ``binary_data_output``."""
    for output in request.outputs or []:
        if output.name == name and output.parameters and "binary_data" in output.parameters:
            return output.parameters["binary_data"] is True
    return (request.parameters or {}).get("binary_data_output") is True


def encode_output(name: str, array: np.ndarray, datatype: str, blobs: list[bytes] | None) -> dict[str, Any]:
    """A JSON tensor, or (``blobs`` given) a header entry whose raw bytes are appended to ``blobs``."""
    if blobs is None:
        return encode_tensor(name, array, datatype)
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    blobs.append(data)
    parameters = {"binary_data_size": len(data)}
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "parameters": parameters}


def _binary_size(tensor: V2Tensor) -> int | None:
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is None:
        if tensor.data is None:
            raise RequestError(f"input {tensor.name!r}: send data, or parameters.binary_data_size with binary data")
        return None
    if type(size) is not int or size < 0:
        raise RequestError(f"input {tensor.name!r}: parameters.binary_data_size must be an integer >= 0")
    if tensor.data is not None:
        raise RequestError(f"input {tensor.name!r}: send either data or parameters.binary_data_size, not both")
    return size


def _from_bytes(tensor: V2Tensor, raw: bytes | memoryview) -> np.ndarray:
    dtype = tensor_dtype(tensor)
    if len(raw) != math.prod(tensor.shape) * dtype.itemsize:  # Python ints: a huge shape cannot wrap to a match
        raise RequestError(
            f"input {tensor.name!r}: the binary data do not fill shape "
            f"(binary_data_size must be the product of its dimensions times the size of {tensor.datatype})"
        )
    # The extension's byte order is little-endian; astype also copies into a writable, native array.
    array = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)
    if dtype.kind == "b" and array.size and np.frombuffer(raw, dtype=np.uint8).max() > 1:
        raise RequestError(f"input {tensor.name!r}: BOOL binary data must be bytes 0 or 1")
    return array.reshape(tensor.shape)
