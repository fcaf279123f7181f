"""Simple JSON predictions with the manifest's pre/post-processing."""

from __future__ import annotations

from flask import Flask, Response

from function.context import context, exchange, keep
from function.inference import v1_predict
from function.v2 import answer


def predict(name: str) -> Response:
    """``{"instances": [...]}`` -> ``{"predictions": [...]}``."""
    ex = exchange()
    try:
        return answer(v1_predict(context(), ex, name))
    finally:
        keep(ex)


def init_app(app: Flask) -> None:
    """Register ``POST /v1/models/<name>:predict``."""
    app.add_url_rule("/v1/models/<name>:predict", "v1_predict", predict, methods=["POST"])
