"""Tensor signatures: V2 datatypes <-> numpy, and checking inputs against a manifest."""

from __future__ import annotations

import numpy as np

from loader.errors import InferenceInputError, UnsupportedDatatype
from loader.manifest import TensorSpec

V2_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
NUMPY_TO_V2 = {dtype: name for name, dtype in V2_TO_NUMPY.items()}


def v2_datatype(dtype: np.dtype) -> str:
    """V2 name of a numpy dtype."""
    try:
        return NUMPY_TO_V2[np.dtype(dtype)]
    except KeyError:
        raise UnsupportedDatatype(f"unsupported tensor dtype {np.dtype(dtype).name}") from None


def shape_matches(spec: list[int], shape: tuple[int, ...]) -> bool:
    """True when every fixed dimension of the spec equals the actual one."""
    return len(spec) == len(shape) and all(s in (-1, a) for s, a in zip(spec, shape, strict=True))


def check_names(specs: list[TensorSpec], names: list[str]) -> None:
    """Every input exactly once; unknown names are not echoed back (they are request data)."""
    expected = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise InferenceInputError("an input tensor is given more than once")
    if set(names) - set(expected):
        raise InferenceInputError(f"unknown input tensor name(s); the model takes {expected}")
    missing = [n for n in expected if n not in names]
    if missing:
        raise InferenceInputError(f"missing input tensor(s) {missing}; the model takes {expected}")


def check_inputs(specs: list[TensorSpec], arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validate names, datatypes and shapes; returns the arrays in signature order."""
    check_names(specs, list(arrays))
    ordered = {}
    for spec in specs:
        array = arrays[spec.name]
        if array.dtype != V2_TO_NUMPY[spec.datatype]:
            raise InferenceInputError(f"input {spec.name!r} must be {spec.datatype}")
        if not shape_matches(spec.shape, array.shape):
            # The model's shape only: the client's shape is request data.
            raise InferenceInputError(f"input {spec.name!r} must have shape {spec.shape} (-1 = any)")
        ordered[spec.name] = array
    return ordered
