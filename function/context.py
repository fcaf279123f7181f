"""Per-app state shared by the handlers, kept in ``app.extensions["modelfn"]``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from flask import current_app, g, request

from function import jsonio
from function.binary import HEADER as BINARY_HEADER
from function.errors import ModelNotFound, RequestError, UnsupportedMediaType
from function.holder import LoadedModel, ModelHolder
from function.metrics import Metrics
from function.release import PRIMARY, ROUTE_HEADERS, route
from function.settings import Settings
from function.shadow import ShadowRunner
from loader.uri import ModelURI

if TYPE_CHECKING:
    from function.serving import Shadow


@dataclass
class Context:
    """What every handler needs: settings, the configured model and its holder, metrics, the shadow pool."""

    settings: Settings
    uri: ModelURI
    holder: ModelHolder
    metrics: Metrics
    shadow: ShadowRunner


def context() -> Context:
    """The current app's context."""
    ctx: Context = current_app.extensions["modelfn"]
    return ctx


def model_for(name: str, version: str | None = None, split: bool = True) -> LoadedModel:
    """The version that answers this request (primary or canary); waits a bounded time while loading.

    The choice (and the shadow, if this request is shadowed) is kept on ``g`` for ``routing()`` and the
    response headers; without ``split`` an unversioned request gets the primary (metadata).
    """
    ctx = context()
    if name != ctx.uri.name:
        raise ModelNotFound(f"unknown model; this server serves {ctx.uri.name!r}")
    release = ctx.holder.get(ctx.settings.load_wait_seconds)
    routed = route(release, version, _route_key() if split else None, split)
    g.model_version, g.model_role, g.shadow = routed.model.version, routed.role, routed.shadow
    return routed.model


def _route_key() -> str | None:
    for header in ROUTE_HEADERS:
        if value := request.headers.get(header):
            return value[:256]
    return None


def routing() -> tuple[str, Shadow | None]:
    """(role, shadow hook) for ``serving.run``: how this request's answer is labelled and who shadows it."""
    candidate = g.get("shadow")
    if candidate is None:
        return g.get("model_role", PRIMARY), None
    ctx = context()
    return PRIMARY, partial(_shadow, ctx, candidate)


def _shadow(ctx: Context, candidate: LoadedModel, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
    ctx.shadow.submit(candidate, inputs, outputs, ctx.metrics)


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
