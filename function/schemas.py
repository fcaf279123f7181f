"""Request and response bodies (pydantic envelopes), shared by the handlers and /openapi.json."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema

from function.errors import RequestError

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


def _array(value: Any) -> Any:
    # The elements are numpy's job (function.tensors): pydantic checks the envelope only, in O(1). An array
    # comes from function.fastjson (JSON itself cannot produce one): a flat float tensor already decoded.
    if not isinstance(value, list | np.ndarray):
        raise ValueError("Input should be a valid array")
    return value


def _non_empty(value: Any) -> list[Any]:
    if not _array(value):
        raise ValueError("List should have at least 1 item")
    return value


JsonArray = Annotated[list[Any], PlainValidator(_array), WithJsonSchema({"type": "array", "items": {}})]
NonEmptyArray = Annotated[
    list[Any], PlainValidator(_non_empty), WithJsonSchema({"type": "array", "items": {}, "minItems": 1})
]


class V2Tensor(BaseModel):
    """A tensor: row-major ``data`` (flat or nested), or ``parameters.binary_data_size`` raw bytes after the JSON."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=256)
    shape: list[int] = Field(max_length=16)
    datatype: V2Datatype
    parameters: dict[str, Any] | None = None
    data: JsonArray | None = None


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
    instances: NonEmptyArray


class PredictResponse(BaseModel):
    """Predictions in instance order, after the manifest's post-processing."""

    model_name: str
    model_version: str
    predictions: list[Any]


class ErrorBody(BaseModel):
    """Every error: a message that says what was wrong (never the offending data)."""

    error: str


# Locations in error messages keep only these names (and list indexes): anything else came from the client.
KNOWN_FIELDS = frozenset(
    name for model in (V2Tensor, V2RequestedOutput, V2InferRequest, PredictRequest) for name in model.model_fields
)


def parse(model: type[BaseModel], body: Any) -> Any:
    """Validate a JSON envelope, turning the first problem into a 400 that echoes no request data."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RequestError(f"invalid request: {describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    """``where: what`` for the first error: schema field names and indexes only, never client keys or values."""
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    where = ".".join(str(p) for p in first["loc"] if isinstance(p, int) or p in KNOWN_FIELDS) or "body"
    if first["type"] == "extra_forbidden":
        return f"{where}: unknown field (allowed: {sorted(_fields_at(first['loc']))})"
    if first["type"] == "missing":
        return f"{where}: field required"
    return f"{where}: {first['msg']}"


def _fields_at(loc: tuple[Any, ...]) -> set[str]:
    """The fields allowed where an unknown one was sent (the envelope models that forbid extras)."""
    return set(V2Tensor.model_fields) if "inputs" in loc else set(PredictRequest.model_fields)
