"""``POST /events`` and ``OPTIONS /events``: authenticate, normalise, scope-check, then act."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, jsonify, request

from function.errors import EventRefused, MalformedEvent, Unauthorized
from function.events.batch import BatchRunner
from function.events.model import Event, Ignored, ObjectCreated, Validation
from function.events.parse import parse_events
from function.events.scope import SECRET_HEADER, Scope, Target
from function.events.updates import ModelUpdater

log = logging.getLogger("modelfn.events")
# CloudEvents webhook abuse protection: the only sender we grant is Azure Event Grid.
ALLOWED_ORIGINS = ("eventgrid.azure.net",)
# Objects in the model area that publish a version or move an alias.
# Event Grid marks its subscription handshake with this header (the only request let in without the secret).
VALIDATION_HEADER = "aeg-event-type"
_MODEL_OBJECT = re.compile(r"^(aliases/[^/]+\.json|[^/]+/manifest\.json)$")


@dataclass
class Events:
    """Per-app state of the feature."""

    scope: Scope
    runner: BatchRunner
    updater: ModelUpdater


def _events() -> Events:
    state: Events = current_app.extensions["modelfn.events"]
    return state


def handshake() -> Response:
    """CloudEvents webhook validation (Event Grid's CloudEvents schema): grant the requesting origin."""
    origin = request.headers.get("WebHook-Request-Origin")
    response = Response(status=200)
    response.headers["Allow"] = "OPTIONS, POST"
    if origin is None:
        return response
    if origin.strip().lower() not in ALLOWED_ORIGINS:
        log.warning("webhook validation refused for an unknown origin")
        raise EventRefused("this endpoint accepts webhook deliveries from Azure Event Grid only")
    response.headers["WebHook-Allowed-Origin"] = origin.strip().lower()
    response.headers["WebHook-Allowed-Rate"] = "*"
    log.info("webhook validation granted", extra={"fields": {"origin": origin.strip().lower()}})
    return response


def receive() -> Response | tuple[Response, int]:
    """Normalise every event in the request, check all of them, then run them in order."""
    state = _events()
    handshake = request.headers.get(VALIDATION_HEADER, "").strip().lower() == "subscriptionvalidation"
    authenticated = state.scope.authenticate(request.headers.get(SECRET_HEADER), handshake)
    events = parse_events(dict(request.headers), request.get_data(), request.mimetype)
    if all(isinstance(e, Validation) for e in events):
        return _validation(events)
    if not authenticated:
        raise Unauthorized(f"missing or wrong {SECRET_HEADER} header")
    planned = [_plan(state.scope, e) for e in events]  # every event checked before any storage call
    results = [_execute(state, item) for item in planned]
    status = 202 if any(r["status"] == "model-check" for r in results) else 200
    return jsonify({"results": results}), status


def _validation(events: list[Event]) -> Response:
    if len(events) != 1:
        raise MalformedEvent("a subscription validation request carries exactly one event")
    event = events[0]
    assert isinstance(event, Validation)
    log.info("Event Grid subscription validated")
    return jsonify({"validationResponse": event.code})


def _plan(scope: Scope, event: Event) -> tuple[Event, Target | None, str]:
    if isinstance(event, Validation):
        raise MalformedEvent("a subscription validation event cannot be mixed with other events")
    if isinstance(event, Ignored):
        return event, None, ""
    if event.key.endswith("/"):  # console "folder" placeholders carry no data
        return Ignored(event.origin, "folder placeholder", "not an object with data"), None, ""
    try:
        target, relative = scope.classify(event)
    except (EventRefused, Unauthorized) as exc:
        log.warning(
            "event refused; nothing fetched",
            extra={"fields": {"object": event.uri[:2048], "origin": event.origin, "reason": str(exc)}},
        )
        raise
    return event, target, relative


def _execute(state: Events, item: tuple[Event, Target | None, str]) -> dict[str, Any]:
    event, target, relative = item
    if isinstance(event, Ignored):
        log.info(
            "event ignored",
            extra={"fields": {"origin": event.origin, "event_type": event.event_type[:200], "reason": event.reason}},
        )
        return {"status": "ignored", "reason": event.reason}
    assert isinstance(event, ObjectCreated)
    if target is Target.INPUT:
        return state.runner.run(event, relative)
    if target is Target.MODEL and _MODEL_OBJECT.match(relative):
        log.info("model store changed; checking the alias", extra={"fields": {"object": event.uri}})
        state.updater.trigger()
        return {"object": event.uri, "status": "model-check"}
    reason = {
        Target.OWN: "an output of this function",
        Target.MODEL: "a model file (not a manifest or alias)",
        Target.OUTSIDE: "outside the configured prefixes",
    }[target or Target.OUTSIDE]
    log.info("event ignored; nothing fetched", extra={"fields": {"object": event.uri, "reason": reason}})
    return {"object": event.uri, "status": "ignored", "reason": reason}
