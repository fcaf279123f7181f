"""Open Inference Protocol (KServe V2) REST endpoints, JSON tensors."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Flask, Response, jsonify

from function.context import context, json_body, model_for
from function.errors import ModelNotFound, RequestError
from function.holder import LoadedModel
from function.schemas import V2InferRequest, decode_tensor, encode_tensor, parse
from function.serving import run
from loader.manifest import Framework
from loader.signature import check_names, v2_datatype

PLATFORM = {
    Framework.ONNX: "onnxruntime_onnx",
    Framework.TORCHSCRIPT: "pytorch_libtorch",
    Framework.TORCH_EXPORT: "pytorch_torch_export",
}


def server_version() -> str:
    """The installed modelfn version."""
    try:
        return version("modelfn")
    except PackageNotFoundError:
        return "0+unknown"


def model_metadata(name: str, model_version: str | None = None) -> Response:
    """Name, versions, platform and tensor signatures."""
    model = model_for(name, model_version)
    manifest = model.artifact.manifest
    return jsonify(
        {
            "name": manifest.name,
            "versions": [manifest.version],
            "platform": PLATFORM[manifest.framework],
            "inputs": [t.model_dump() for t in manifest.inputs],
            "outputs": [t.model_dump() for t in manifest.outputs],
        }
    )


def model_ready(name: str, model_version: str | None = None) -> Response:
    """200 when this model (version) is ready, 503 while loading, 404 if unknown."""
    ctx = context()
    if name != ctx.uri.name:
        raise ModelNotFound(f"unknown model; this server serves {ctx.uri.name!r}")
    model = ctx.holder.model
    if model is None or (model_version is not None and model_version != model.version):
        if model is not None:
            raise ModelNotFound(f"unknown version of {name!r}; this server serves version {model.version!r}")
        return jsonify({"name": name, "ready": False}), 503  # type: ignore[return-value]
    return jsonify({"name": name, "ready": True})


def infer(name: str, model_version: str | None = None) -> Response:
    """Run one inference request."""
    request = parse(V2InferRequest, json_body(allow_untyped=True))
    model = model_for(name, model_version)
    check_names(model.artifact.manifest.inputs, [t.name for t in request.inputs])
    arrays = {tensor.name: decode_tensor(tensor) for tensor in request.inputs}
    outputs = run(model, arrays, context().metrics)
    return jsonify(_response(model, request, outputs))


def _response(model: LoadedModel, request: V2InferRequest, outputs: dict[str, Any]) -> dict[str, Any]:
    wanted = [o.name for o in request.outputs] if request.outputs else list(outputs)
    if any(n not in outputs for n in wanted):
        raise RequestError(f"unknown output name(s) requested; the model returns {list(outputs)}")
    body: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.version,
        "outputs": [encode_tensor(n, outputs[n], v2_datatype(outputs[n].dtype)) for n in wanted],
    }
    if request.id is not None:
        body["id"] = request.id
    return body


def init_app(app: Flask) -> None:
    """Register the V2 routes."""

    @app.get("/v2")
    def server_metadata() -> Response:
        return jsonify({"name": "modelfn", "version": server_version(), "extensions": []})

    for suffix, endpoint in (("", "model"), ("/versions/<model_version>", "model_version")):
        base = f"/v2/models/<name>{suffix}"
        app.add_url_rule(base, f"v2_{endpoint}_metadata", model_metadata)
        app.add_url_rule(f"{base}/ready", f"v2_{endpoint}_ready", model_ready)
        app.add_url_rule(f"{base}/infer", f"v2_{endpoint}_infer", infer, methods=["POST"])
