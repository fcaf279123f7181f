"""Open Inference Protocol (KServe V2) REST endpoints: JSON tensors and the binary tensor extension."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from flask import Flask, Response, jsonify

from function.context import context, exchange, keep, model_for
from function.errors import ModelNotFound
from function.inference import Answer, v2_infer
from function.release import members, route
from loader.manifest import Framework

# The Open Inference Protocol's name for the binary tensor extension (as Triton and MLServer report it).
EXTENSIONS = ["binary_tensor_data"]
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
    model = model_for(name, model_version, split=False)
    manifest = model.artifact.manifest
    return jsonify(
        {
            "name": manifest.name,
            "versions": [m.version for m in members(context().holder.model)]
            if model_version is None
            else [manifest.version],
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
    if model is None or (model_version is not None and model_version not in {m.version for m in members(model)}):
        if model is not None:
            route(model, model_version, None)  # raises the 404 naming the versions served
        ctx.holder.start()  # lazy mode: a probe of this worker starts its load, as /readyz does
        return jsonify({"name": name, "ready": False, "state": ctx.holder.status().state.value}), 503  # type: ignore[return-value]
    return jsonify({"name": name, "ready": True})


def infer(name: str, model_version: str | None = None) -> Response:
    """Run one inference request: JSON tensors, or the binary tensor extension (as tritonclient sends by default)."""
    ex = exchange()
    try:
        return answer(v2_infer(context(), ex, name, model_version))
    finally:
        keep(ex)


def answer(result: Answer) -> Response:
    """An ``inference.Answer`` as a Flask response (large bodies fragment by fragment, never copied)."""
    size = sum(len(p) for p in result.body)
    body = b"".join(result.body) if size < 1 << 20 else result.body
    response = Response(body, mimetype=result.content_type)
    response.content_length = size
    response.headers.extend(result.headers)
    return response


def init_app(app: Flask) -> None:
    """Register the V2 routes."""

    @app.get("/v2")
    def server_metadata() -> Response:
        return jsonify({"name": "modelfn", "version": server_version(), "extensions": EXTENSIONS})

    for suffix, endpoint in (("", "model"), ("/versions/<model_version>", "model_version")):
        base = f"/v2/models/<name>{suffix}"
        app.add_url_rule(base, f"v2_{endpoint}_metadata", model_metadata)
        app.add_url_rule(f"{base}/ready", f"v2_{endpoint}_ready", model_ready)
        app.add_url_rule(f"{base}/infer", f"v2_{endpoint}_infer", infer, methods=["POST"])
