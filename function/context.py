"""Per-app state shared by the handlers, kept in ``app.extensions["modelfn"]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app, g, request

from function.holder import LoadedModel, ModelHolder
from function.metrics import Metrics
from function.settings import Settings
from function.shadow import ShadowRunner
from loader.uri import ModelURI

if TYPE_CHECKING:
    from function.inference import Exchange


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


def exchange() -> Exchange:
    """This Flask request as an ``inference.Exchange`` (the body is read when first needed, not cached)."""
    from function.inference import Exchange

    return Exchange(request.headers.get, lambda: request.get_data(cache=False), request.content_type)


def keep(ex: Exchange) -> None:
    """Put which version answered on ``g``, for the response headers and the access log."""
    g.model_version, g.model_role = ex.model_version, ex.model_role


def model_for(name: str, version: str | None = None, split: bool = True) -> LoadedModel:
    """The version that answers this request (primary or canary); waits a bounded time while loading.

    Without ``split`` an unversioned request gets the primary (metadata).
    """
    from function.inference import select

    ex = exchange()
    try:
        return select(context(), ex, name, version, split)
    finally:
        keep(ex)
