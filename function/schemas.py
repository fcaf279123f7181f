"""Request and response bodies (pydantic), shared by the handlers and /openapi.json."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from function.errors import RequestError
from loader.errors import first_problem
from loader.signature import V2_TO_NUMPY

V2Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]


class V2Tensor(BaseModel):
    """A tensor: row-major ``data`` (flat or nested), or ``parameters.binary_data_size`` raw bytes after the JSON."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=256)
    shape: list[int] = Field(max_length=16)
    datatype: V2Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class V2RequestedOutput(BaseModel):
    """An output the client asks for; ``parameters.binary_data`` picks the binary extension for it."""

    name: str
    parameters: dict[str, Any] | None = None


class V2InferRequest(BaseModel):
    """``POST /v2/models/{name}/infer`` body."""

    id: str | None = Field(None, max_length=256)
    parameters: dict[str, Any] | None = None
    inputs: list[V2Tensor] = Field(min_length=1)
    outputs: list[V2RequestedOutput] | None = None


class V2InferResponse(BaseModel):
    """Inference response."""

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[V2Tensor]


class PredictRequest(BaseModel):
    """``POST /v1/models/{name}:predict``: one item per instance (a list, or a dict by input name)."""

    model_config = ConfigDict(extra="forbid")
    instances: list[Any] = Field(min_length=1)


class PredictResponse(BaseModel):
    """Predictions in instance order, after the manifest's post-processing."""

    model_name: str
    model_version: str
    predictions: list[Any]


class ErrorBody(BaseModel):
    """Every error: a message that says what was wrong (never the offending data)."""

    error: str


def parse(model: type[BaseModel], body: Any) -> Any:
    """Validate a JSON body, turning the first problem into a 400 that names the field only."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RequestError(f"invalid request: {first_problem(exc, 'body')}") from None


def tensor_dtype(tensor: V2Tensor) -> np.dtype:
    """The numpy dtype of an input tensor whose datatype and shape this server can take."""
    if tensor.datatype == "BYTES":
        raise RequestError(f"input {tensor.name!r}: BYTES tensors are not supported by this server")
    if any(d < 0 for d in tensor.shape):
        raise RequestError(f"input {tensor.name!r}: shape dimensions must be >= 0")
    return V2_TO_NUMPY[tensor.datatype]


def decode_tensor(tensor: V2Tensor) -> np.ndarray:
    """JSON tensor -> numpy array of the declared datatype and shape."""
    dtype = tensor_dtype(tensor)
    if tensor.data is None:
        raise RequestError(f"input {tensor.name!r}: no data")
    try:
        raw = np.asarray(tensor.data)
    except ValueError:
        raise RequestError(f"input {tensor.name!r}: data is ragged; rows must have equal lengths") from None
    if raw.dtype.kind not in "biuf" or (dtype.kind in "biu" and raw.dtype.kind == "f" and raw.size):
        raise RequestError(f"input {tensor.name!r}: data is not a (nested) list of {tensor.datatype} values")
    if raw.size != int(np.prod(tensor.shape, dtype=np.int64)):
        raise RequestError(f"input {tensor.name!r}: {raw.size} values do not fill shape {tensor.shape}")
    with np.errstate(over="raise", invalid="raise"):
        try:
            array = raw.astype(dtype, casting="unsafe")
        except FloatingPointError:
            raise RequestError(f"input {tensor.name!r}: values overflow {tensor.datatype}") from None
    return array.reshape(tensor.shape)


def encode_tensor(name: str, array: np.ndarray, datatype: str) -> dict[str, Any]:
    """numpy array -> JSON tensor (flat row-major data)."""
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": array.ravel().tolist()}
