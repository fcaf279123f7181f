"""Storage-upload events: ``POST /events`` from Eventarc, EventBridge and Event Grid, plus model hot swap."""

from __future__ import annotations

from flask import Flask

from function.context import Context
from function.events.dispatch import DispatchingRunner
from function.events.routes import Events, handshake, receive
from function.events.scope import Scope
from function.events.spool import sweep
from function.events.stores import StoreCache
from function.events.updates import ModelUpdater

__all__ = ["init_app"]


def init_app(app: Flask) -> None:
    """Register ``/events`` and, when ``MODEL_POLL_SECONDS`` > 0, poll the served alias."""
    ctx: Context = app.extensions["modelfn"]
    scope = Scope.from_settings(ctx.settings, ctx.uri)
    updater = ModelUpdater(ctx)
    runner = DispatchingRunner(ctx, scope, StoreCache(ctx.settings.store_options()))
    app.extensions["modelfn.events"] = Events(scope, runner, updater)
    app.add_url_rule("/events", "events", receive, methods=["POST"], provide_automatic_options=False)
    app.add_url_rule("/events", "events_handshake", handshake, methods=["OPTIONS"], provide_automatic_options=False)
    if scope.inputs is not None:
        sweep()  # this worker may replace one that was killed mid-job: free its temp files now
    if ctx.settings.model_poll_seconds > 0:
        updater.start_polling(ctx.settings.model_poll_seconds)
