"""``/openapi.json``: the HTTP contract, with bodies taken from the pydantic schemas."""

from __future__ import annotations

import copy
from typing import Any

from flask import Flask, Response, jsonify
from pydantic import BaseModel

from function.schemas import ErrorBody, PredictRequest, PredictResponse, V2InferRequest, V2InferResponse
from function.v2 import server_version


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _op(
    summary: str,
    ok: str = "OK",
    body: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    errors: tuple[int, ...] = (),
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _json(response, ok) if response else {"description": ok}}
    descriptions = {
        400: "Invalid request",
        404: "Unknown model or version",
        413: "Body too large",
        415: "Content-Type is not application/json",
        503: "Model not ready (see Retry-After)",
    }
    for code in errors:
        responses[str(code)] = _json(ErrorBody, descriptions[code])
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    return op


NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
VERSION = {"name": "model_version", "in": "path", "required": True, "schema": {"type": "string"}}
INFER_ERRORS = (400, 404, 413, 415, 503)
BINARY_EXTENSION = (
    "JSON tensors (`application/json`, each input with `data`), or the binary tensor extension: an "
    "`Inference-Header-Content-Length` header gives the length of the JSON document that starts the body; inputs "
    "with `parameters.binary_data_size` instead of `data` follow it as raw little-endian bytes, in input order. "
    "OpenAPI cannot tie a header to one content type, so the binary form is described here and under "
    "`x-binary-tensor-extension` rather than as a second request content type. Outputs asked for with "
    "`parameters.binary_data` (or the request's `parameters.binary_data_output`) come back the same way, with the "
    "same header on the response."
)
BINARY_REQUEST = {
    "content-type": "application/octet-stream",
    "required-header": "Inference-Header-Content-Length",
    # Header tensors may carry parameters.binary_data_size instead of data (V2Tensor; JSON bodies need data).
    "header-tensor": {"$ref": "#/components/schemas/V2Tensor"},
}


def _events_path() -> dict[str, Any]:
    """``/events``: storage-upload events (contract in README "Storage events")."""
    err = {"content": {"application/json": {"schema": _ref(ErrorBody)}}}
    body = {
        "required": True,
        "content": {
            t: {"schema": {"type": ["object", "array"]}}
            for t in ("application/cloudevents+json", "application/cloudevents-batch+json", "application/json")
        },
    }
    secret = {
        "name": "X-Modelfn-Event-Secret",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "Shared secret, required when EVENTS_SECRET is set (EventBridge, Event Grid)",
    }
    origin = {"name": "WebHook-Request-Origin", "in": "header", "required": False, "schema": {"type": "string"}}
    return {
        "post": {
            "summary": "Storage upload event: Eventarc CloudEvent (binary/structured), EventBridge S3 event or "
            "Event Grid array (incl. SubscriptionValidationEvent)",
            "parameters": [secret],
            "requestBody": body,
            "responses": {
                "200": {
                    "description": "Handled: processed, duplicate, error-report or ignored (per event), "
                    "or {validationResponse} for Event Grid's handshake"
                },
                "202": {"description": "A model manifest/alias changed: the alias is re-checked in the background"},
                "400": {"description": "Malformed event", **err},
                "401": {"description": "Missing or wrong X-Modelfn-Event-Secret", **err},
                "403": {"description": "Bucket/prefix not configured or unsafe key (nothing fetched)", **err},
                "503": {"description": "Transient failure or claim held elsewhere; retry after Retry-After", **err},
            },
        },
        "options": {
            "summary": "CloudEvents webhook abuse-protection handshake (Event Grid CloudEvents schema)",
            "parameters": [origin],
            "responses": {
                "200": {"description": "WebHook-Allowed-Origin granted"},
                "403": {"description": "Origin not allowed", **err},
            },
        },
    }


EVENTS_PATH = _events_path()


def build_spec() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    paths: dict[str, Any] = {
        "/healthz": {"get": _op("Liveness: 200 while the process runs")},
        "/readyz": {"get": _op("Readiness: 200 when the model is READY", errors=(503,))},
        "/metrics": {"get": _op("Prometheus metrics (text exposition format)")},
        "/openapi.json": {"get": _op("This document")},
        "/v2": {"get": _op("V2 server metadata")},
        "/v2/health/live": {"get": _op("V2 liveness")},
        "/v2/health/ready": {"get": _op("V2 readiness", errors=(503,))},
        "/v1/models/{name}:predict": {
            "post": _op(
                "Predict with pre/post-processing", body=PredictRequest, response=PredictResponse, errors=INFER_ERRORS
            ),
            "parameters": [NAME],
        },
    }
    for base, params in (
        ("/v2/models/{name}", [NAME]),
        ("/v2/models/{name}/versions/{model_version}", [NAME, VERSION]),
    ):
        paths[base] = {"get": _op("V2 model metadata", errors=(404, 503)), "parameters": params}
        paths[f"{base}/ready"] = {"get": _op("V2 model readiness", errors=(404, 503)), "parameters": params}
        infer = _op("V2 inference", body=V2InferRequest, response=V2InferResponse, errors=INFER_ERRORS)
        infer["description"] = BINARY_EXTENSION
        infer["x-binary-tensor-extension"] = BINARY_REQUEST
        infer["responses"]["200"]["content"]["application/octet-stream"] = {"schema": {"type": "string"}}
        paths[f"{base}/infer"] = {"post": infer, "parameters": params}
    paths["/events"] = EVENTS_PATH
    models = (ErrorBody, PredictRequest, PredictResponse, V2InferRequest, V2InferResponse)
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    _request_tensor(schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "modelfn", "version": server_version()},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _request_tensor(schemas: dict[str, Any]) -> None:
    """JSON requests: every input carries ``data``, dimensions are >= 0, and BYTES is refused (as the server does)."""
    tensor = copy.deepcopy(schemas["V2Tensor"])
    tensor["title"] = "V2RequestTensor"
    tensor["required"] = [*tensor["required"], "data"]
    tensor["properties"]["data"] = {"type": "array", "items": {}, "minItems": 0, "title": "Data"}
    tensor["properties"]["shape"]["items"] = {"type": "integer", "minimum": 0}
    tensor["properties"]["datatype"]["enum"] = [d for d in tensor["properties"]["datatype"]["enum"] if d != "BYTES"]
    schemas["V2RequestTensor"] = tensor
    schemas["V2InferRequest"]["properties"]["inputs"]["items"] = {"$ref": "#/components/schemas/V2RequestTensor"}


def init_app(app: Flask) -> None:
    """Serve the document (built once per app)."""
    spec = build_spec()

    @app.get("/openapi.json")
    def openapi_json() -> Response:
        return jsonify(spec)
