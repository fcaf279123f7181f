"""Requests -> validated input arrays, and outputs -> response bodies (V1 instances and V2 tensors).

Everything a client can get wrong is checked here, before ``serving.run`` queues any work.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from function import jsonio
from function.binary import decode_inputs, encode_output, wants_binary
from function.errors import RequestError
from function.holder import LoadedModel
from function.schemas import V2InferRequest
from function.tensors import to_array
from loader.errors import InferenceInputError
from loader.prepost import postprocess, preprocess, unranked
from loader.signature import V2_TO_NUMPY, check_inputs, check_names, v2_datatype

ROWS_PER_FRAGMENT = 4096


def v2_inputs(model: LoadedModel, request: V2InferRequest, blob: bytes | memoryview = b"") -> dict[str, np.ndarray]:
    """A V2 request's inputs (JSON, or binary from ``blob``), checked against the model's signature."""
    specs = model.artifact.manifest.inputs
    check_names(specs, [t.name for t in request.inputs])  # first, so later messages name model tensors only
    returned = [o.name for o in model.artifact.manifest.outputs]
    if request.outputs and any(o.name not in returned for o in request.outputs):
        raise RequestError(f"unknown output name(s) requested; the model returns {returned}")
    arrays = check_inputs(specs, decode_inputs(request.inputs, blob))
    for tensor in request.inputs:
        tensor.data = None  # the parsed lists (~10x their JSON) are not kept alive through inference
    return arrays


def v2_outputs(
    model: LoadedModel, request: V2InferRequest, outputs: dict[str, np.ndarray], binary: bool
) -> tuple[dict[str, Any], list[bytes]]:
    """(response body, raw output tensors); with ``binary`` the outputs that ask for it come back raw."""
    wanted = [o.name for o in request.outputs] if request.outputs else list(outputs)  # checked by v2_inputs
    blobs: list[bytes] = []
    encoded = []
    for n in wanted:
        raw_to = blobs if binary and wants_binary(request, n) else None
        encoded.append(encode_output(n, outputs[n], v2_datatype(outputs[n].dtype), raw_to))
    body: dict[str, Any] = {"model_name": model.name, "model_version": model.version, "outputs": encoded}
    if request.id is not None:
        body["id"] = request.id
    return body, blobs


def instances_to_arrays(model: LoadedModel, instances: list[Any]) -> dict[str, np.ndarray]:
    """``instances`` -> batched input arrays, pre-processing the first input; checked against the signature."""
    manifest = model.artifact.manifest
    specs = manifest.inputs
    columns = _columns(specs, instances)
    arrays = {}
    for spec in specs:
        values = columns[spec.name]
        if any(v is None for v in values):
            raise InferenceInputError(f"every instance needs input {spec.name!r}")
        try:
            arrays[spec.name] = to_array(spec.name, values, V2_TO_NUMPY[spec.datatype])
        except InferenceInputError as exc:
            raise InferenceInputError(_v1_words(str(exc))) from None
    first = specs[0].name
    arrays[first] = preprocess(arrays[first], manifest.preprocess)
    return check_inputs(specs, arrays)


def predictions(model: LoadedModel, outputs: dict[str, np.ndarray]) -> list[Any]:
    """The first output, post-processed into one prediction per instance."""
    manifest = model.artifact.manifest
    return postprocess(outputs[manifest.outputs[0].name], manifest.postprocess)


def predictions_json(model: LoadedModel, outputs: dict[str, np.ndarray]) -> list[bytes]:
    """The V1 response body as fragments, post-processed ``ROWS_PER_FRAGMENT`` instances at a time.

    Ranked predictions are a few Python dicts per instance (~50x their JSON): building them for a slice at a time
    keeps a large response's peak memory to its JSON bytes.
    """
    manifest = model.artifact.manifest
    y = outputs[manifest.outputs[0].name]
    head = jsonio.dumps({"model_name": model.name, "model_version": model.version})
    values = unranked(y, manifest.postprocess)
    if values is not None:  # numpy straight to JSON in C: no Python object per value
        return [head[:-1] + b',"predictions":', jsonio.dumps(np.ascontiguousarray(values)), b"}"]
    parts = [head[:-1] + b',"predictions":[']
    # Rows are independent along the batch axis only when there is another axis (softmax runs over the last one).
    slices = [y[i : i + ROWS_PER_FRAGMENT] for i in range(0, len(y), ROWS_PER_FRAGMENT)] if y.ndim >= 2 else [y]
    for chunk in slices:
        encoded = jsonio.dumps(postprocess(chunk, manifest.postprocess))[1:-1]
        if encoded:
            parts.extend((b"," if len(parts) > 1 else b"", encoded))
    parts.append(b"]}")
    return parts


def _columns(specs: list[Any], instances: list[Any]) -> dict[str, list[Any]]:
    if all(isinstance(i, dict) for i in instances):
        columns = {s.name: [i.get(s.name) for i in instances] for s in specs}
        if set().union(*(i.keys() for i in instances)) - columns.keys():
            raise InferenceInputError(f"unknown input name(s); the model takes {[s.name for s in specs]}")
        return columns
    if len(specs) == 1:
        return {specs[0].name: instances}
    raise InferenceInputError(
        f"this model takes {len(specs)} inputs: send each instance as an object keyed by input name"
    )


def _v1_words(message: str) -> str:
    # V1 has instances, not a tensor's data: say so in the caller's terms.
    return message.replace("data is ragged; rows must have equal lengths", "instances must all have the same shape")
