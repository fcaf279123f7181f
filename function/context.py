"""Per-app state shared by the handlers, kept in ``app.extensions["modelfn"]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, g, request

from function import jsonio
from function.binary import HEADER as BINARY_HEADER
from function.errors import ModelNotFound, RequestError, UnsupportedMediaType
from function.holder import LoadedModel, ModelHolder
from function.metrics import Metrics
from function.settings import Settings
from loader.uri import ModelURI


@dataclass
class Context:
    """What every handler needs: settings, the configured model and its holder, metrics."""

    settings: Settings
    uri: ModelURI
    holder: ModelHolder
    metrics: Metrics


def context() -> Context:
    """The current app's context."""
    ctx: Context = current_app.extensions["modelfn"]
    return ctx


def model_for(name: str, version: str | None = None) -> LoadedModel:
    """The ready model if ``name`` (and ``version``) match it; waits a bounded time while loading."""
    ctx = context()
    if name != ctx.uri.name:
        raise ModelNotFound(f"unknown model; this server serves {ctx.uri.name!r}")
    model = ctx.holder.get(ctx.settings.load_wait_seconds)
    if version is not None and version != model.version:
        raise ModelNotFound(f"unknown version of {name!r}; this server serves version {model.version!r}")
    g.model_version = model.version
    return model


def json_body(allow_untyped: bool = False) -> Any:
    """The request's JSON document; 415 for other content types, 400 for malformed JSON.

    ``allow_untyped`` accepts a body with no Content-Type at all, as the V2 clients send one.
    """
    if BINARY_HEADER in request.headers:
        raise UnsupportedMediaType("the binary tensor extension is accepted by the V2 infer endpoint only")
    if request.mimetype != "application/json" and not (allow_untyped and not request.mimetype):
        raise UnsupportedMediaType("Content-Type must be application/json")
    # Not cached on the request: the parsed lists are freed as soon as the handler has its arrays.
    try:
        body = jsonio.loads(request.get_data(cache=False))
    except ValueError:
        raise RequestError("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object")
    return body
