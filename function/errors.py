"""HTTP errors: every typed exception maps to a status code here, and only here."""

from __future__ import annotations

import logging
import math
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from function.holder import ModelNotReady
from loader import errors as le

log = logging.getLogger("modelfn.errors")
RETRY_AFTER_SECONDS = 10


class RequestError(Exception):
    """A request the client got wrong; the message must not echo request data."""

    status = 400


class UnsupportedMediaType(RequestError):
    status = 415


class ModelNotFound(RequestError):
    status = 404


class Unauthorized(RequestError):
    status = 401


class MalformedEvent(RequestError):
    """A storage event that is not a CloudEvent, EventBridge event or Event Grid array we understand."""


class EventRefused(RequestError):
    """An event for a bucket, prefix or key outside the configuration: refused before any storage call."""

    status = 403


class EventInProgress(le.StoreUnavailable):
    """Another delivery of the same object version holds the claim: the platform should retry later."""


# One table, most specific first (KServe's exception_handlers, flattened).
STATUS_BY_ERROR: list[tuple[type[Exception], int]] = [
    (ModelNotReady, 503),
    (Unauthorized, 401),  # missing or wrong X-Modelfn-Event-Secret
    (EventRefused, 403),  # bucket/prefix/key not configured (never fetched)
    (MalformedEvent, 400),
    (EventInProgress, 503),  # with Retry-After
    (RequestError, 400),  # subclasses carry their own status
    (le.InferenceInputError, 400),
    (le.InvalidURI, 400),
    (le.ArtifactNotFound, 404),
    (le.AlreadyExists, 409),
    (le.StoreUnavailable, 503),
    (le.DigestMismatch, 502),
    (le.ManifestInvalid, 502),
    (le.ModelExecutionError, 500),
    (le.ModelfnError, 500),
]


def status_for(exc: Exception) -> int:
    """HTTP status for a typed error (500 for anything unknown)."""
    if isinstance(exc, RequestError):
        return exc.status
    for kind, status in STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return status
    return 500


def error_response(status: int, message: str, **extra: Any) -> Response:
    """The one JSON error shape: ``{"error": message, ...}``."""
    response = jsonify({"error": message, **extra})
    response.status_code = status
    return response


def _not_ready(exc: ModelNotReady) -> Response:
    st = exc.status
    response = error_response(503, str(exc), state=st.state.value, phase=st.phase.value)
    response.headers["Retry-After"] = str(max(1, math.ceil(st.retry_in or 1)))
    return response


def _typed(exc: Exception) -> Response:
    status = status_for(exc)
    if status >= 500:
        log.error("request failed: %s: %s", type(exc).__name__, exc)
    response = error_response(status, str(exc))
    if status == 503:  # transient (storage, a held claim): tell platforms and clients when to retry
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _http(exc: HTTPException) -> Response:
    response = error_response(exc.code or 500, exc.description or exc.name)
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error")
    return error_response(500, "internal error")


def init_app(app: Flask) -> None:
    """Register the handlers."""
    app.register_error_handler(ModelNotReady, _not_ready)
    app.register_error_handler(RequestError, _typed)
    app.register_error_handler(le.ModelfnError, _typed)
    app.register_error_handler(HTTPException, _http)
    app.register_error_handler(Exception, _unexpected)
    app.config["TRAP_BAD_REQUEST_ERRORS"] = False
