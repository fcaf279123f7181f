"""The request path's edge: orjson for every JSON body, and the body limits in front of the app."""

from __future__ import annotations

from flask import Flask

from function import jsonio
from function.bodylimit import BodyBudget, BodyLimit
from function.settings import Settings


def init_app(app: Flask, settings: Settings) -> None:
    """Install the JSON provider and wrap the WSGI app in the body limits."""
    jsonio.init_app(app)
    # Waiting for room may take half the worker timeout; then 503 + Retry-After rather than a killed worker.
    budget = BodyBudget(settings.max_inflight_body_bytes or settings.max_body_bytes, settings.timeout / 2)
    app.extensions["modelfn.body_budget"] = budget
    app.wsgi_app = BodyLimit(  # type: ignore[method-assign]
        app.wsgi_app, settings.max_body_bytes, settings.body_drain_bytes, budget
    )
