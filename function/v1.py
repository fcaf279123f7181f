"""Simple JSON predictions with the manifest's pre/post-processing."""

from __future__ import annotations

from flask import Flask, Response, jsonify

from function.context import context, json_body, model_for
from function.schemas import PredictRequest, parse
from function.serving import instances_to_arrays, predictions, run


def predict(name: str) -> Response:
    """``{"instances": [...]}`` -> ``{"predictions": [...]}``."""
    request = parse(PredictRequest, json_body())
    model = model_for(name)
    outputs = run(model, instances_to_arrays(model, request.instances), context().metrics)
    return jsonify(
        {
            "model_name": model.name,
            "model_version": model.version,
            "predictions": predictions(model, outputs),
        }
    )


def init_app(app: Flask) -> None:
    """Register ``POST /v1/models/<name>:predict``."""
    app.add_url_rule("/v1/models/<name>:predict", "v1_predict", predict, methods=["POST"])
