"""JSON values <-> numpy arrays, checked in vectorised numpy (no per-element Python work).

Messages name the model's tensors only (callers check names first) and never echo the client's values or shapes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from function.schemas import V2Tensor
from loader.errors import InferenceInputError
from loader.signature import NUMPY_TO_V2, V2_TO_NUMPY

# No body can carry more elements than this; a bigger shape (even with a zero dimension) is refused up front.
MAX_ELEMENTS = 2**40


def tensor_dtype(tensor: V2Tensor) -> np.dtype:
    """The numpy dtype of an input tensor whose datatype and shape this server can take."""
    if tensor.datatype == "BYTES":
        raise InferenceInputError(f"input {tensor.name!r}: BYTES tensors are not supported by this server")
    check_shape(tensor.name, tensor.shape)
    return V2_TO_NUMPY[tensor.datatype]


def check_shape(name: str, shape: list[int]) -> int:
    """The element count of a client-declared shape (exact: Python ints never wrap)."""
    if any(d < 0 for d in shape):
        raise InferenceInputError(f"input {name!r}: shape dimensions must be >= 0")
    if math.prod(max(d, 1) for d in shape) > MAX_ELEMENTS:
        raise InferenceInputError(f"input {name!r}: shape is larger than any request can carry")
    return math.prod(shape)


def decode_tensor(tensor: V2Tensor) -> np.ndarray:
    """JSON tensor -> numpy array of the declared datatype and shape."""
    dtype = tensor_dtype(tensor)
    if tensor.data is None:
        raise InferenceInputError(f"input {tensor.name!r}: no data")
    array = to_array(tensor.name, tensor.data, dtype)
    if array.size != math.prod(tensor.shape):
        raise InferenceInputError(
            f"input {tensor.name!r}: the values do not fill shape (their count must be the product of its dimensions)"
        )
    return array.reshape(tensor.shape)


def to_array(name: str, values: list[Any], dtype: np.dtype) -> np.ndarray:
    """Nested JSON lists -> an array of ``dtype``; refuses (400) anything the cast would change silently."""
    try:
        raw = np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        raise InferenceInputError(f"input {name!r}: data is ragged; rows must have equal lengths") from None
    datatype = NUMPY_TO_V2[dtype]
    if raw.dtype.kind == "f" and dtype == np.uint64 and _whole_uint64(raw):
        raw = _exact_uint64(name, values, raw)  # numpy reads [1, 2**63] as float64; ints past 2**53 must stay exact
    if raw.dtype.kind not in "biuf":
        raise InferenceInputError(f"input {name!r}: data must be (nested lists of) {datatype} numbers in range")
    if raw.dtype.kind == "b" and dtype.kind != "b" and raw.size:
        raise InferenceInputError(f"input {name!r}: data holds true/false values, not {datatype} numbers")
    if dtype.kind == "b" and raw.dtype.kind != "b" and raw.size:
        raise InferenceInputError(f"input {name!r}: BOOL data must be true/false values")
    if dtype.kind == "b":
        return raw.astype(dtype, copy=False)
    if dtype.kind in "iu":
        return _to_int(name, raw, dtype, datatype)
    return _to_float(name, raw, dtype, datatype)


def _to_int(name: str, raw: np.ndarray, dtype: np.dtype, datatype: str) -> np.ndarray:
    if raw.dtype.kind == "f" and raw.size:
        raise InferenceInputError(f"input {name!r}: data holds fractional numbers, not {datatype} integers")
    if raw.size and raw.dtype.kind in "iu":
        info = np.iinfo(dtype)
        # As Python ints: an int64 minimum compared with a uint64 bound cannot overflow.
        if int(raw.min()) < info.min or int(raw.max()) > info.max:
            raise InferenceInputError(f"input {name!r}: values out of range for {datatype}")
    return raw.astype(dtype, copy=False)


def _to_float(name: str, raw: np.ndarray, dtype: np.dtype, datatype: str) -> np.ndarray:
    with np.errstate(over="raise", invalid="raise"):
        try:
            array = raw.astype(dtype, copy=False)
        except FloatingPointError:
            raise InferenceInputError(f"input {name!r}: values overflow {datatype}") from None
    if array.dtype.kind == "f" and array.size and not np.isfinite(array).all():
        raise InferenceInputError(f"input {name!r}: values overflow {datatype}")
    return array


def _whole_uint64(raw: np.ndarray) -> bool:
    return bool(raw.size and np.all(raw >= 0) and np.all(raw <= 2.0**64) and np.all(raw == np.rint(raw)))


def _exact_uint64(name: str, values: list[Any], approx: np.ndarray) -> np.ndarray:
    try:
        with np.errstate(invalid="ignore", over="ignore"):
            exact = np.array(values, dtype=np.uint64)
    except (ValueError, TypeError, OverflowError):
        raise InferenceInputError(f"input {name!r}: values out of range for UINT64") from None
    # The JSON parser turns integers past 2**64 into floats; a cast of those is garbage, and shows as a mismatch.
    if not np.array_equal(exact.astype(np.float64), approx):
        raise InferenceInputError(f"input {name!r}: values out of range for UINT64")
    return exact


def encode_tensor(name: str, array: np.ndarray, datatype: str) -> dict[str, Any]:
    """numpy array -> JSON tensor; ``data`` stays an array that the JSON encoder writes in C (flat, row-major)."""
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": np.ascontiguousarray(array).ravel()}
