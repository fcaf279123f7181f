"""Simple JSON predictions with the manifest's pre/post-processing."""

from __future__ import annotations

from flask import Flask, Response

from function.codec import instances_to_arrays, predictions_json
from function.context import context, json_body, model_for, routing
from function.schemas import PredictRequest, parse
from function.serving import run


def predict(name: str) -> Response:
    """``{"instances": [...]}`` -> ``{"predictions": [...]}``."""
    instances = parse(PredictRequest, json_body()).instances
    model = model_for(name)
    arrays = instances_to_arrays(model, instances)
    del instances  # the parsed lists (~10x the body) are freed before inference, not after
    outputs = run(model, arrays, context().metrics, *routing())
    parts = predictions_json(model, outputs)
    size = sum(len(p) for p in parts)
    # One write for the usual small body; a large one goes out fragment by fragment instead of being copied.
    response = Response(b"".join(parts) if size < 1 << 20 else parts, mimetype="application/json")
    response.content_length = size
    return response


def init_app(app: Flask) -> None:
    """Register ``POST /v1/models/<name>:predict``."""
    app.add_url_rule("/v1/models/<name>:predict", "v1_predict", predict, methods=["POST"])
