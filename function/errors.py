"""HTTP errors: every typed exception maps to a status code here, and only here."""

from __future__ import annotations

import logging
import math
from typing import Any, NamedTuple

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from function.holder import ModelNotReady, Status
from loader import errors as le

log = logging.getLogger("modelfn.errors")
RETRY_AFTER_SECONDS = 10


class RequestError(Exception):
    """A request the client got wrong (400 unless a more specific row says otherwise); never echoes request data."""


class UnsupportedMediaType(RequestError):
    """A Content-Type the endpoint does not take."""


class ModelNotFound(RequestError):
    """A model name or version this server does not serve."""


class Unauthorized(RequestError):
    """Missing or wrong credentials for ``/events``."""


class MalformedEvent(RequestError):
    """A storage event that is not a CloudEvent, EventBridge event or Event Grid array we understand."""


class EventRefused(RequestError):
    """An event for a bucket, prefix or key outside the configuration: refused before any storage call."""


class EventInProgress(le.StoreUnavailable):
    """Another delivery of the same object version holds the claim: the platform should retry later."""


class Row(NamedTuple):
    """One mapping: the error kind, its status and, for server faults, the message clients see instead."""

    kind: type[Exception]
    status: int
    public: str | None = None  # None: the exception's own (client-safe) message


# The one table, most specific first (KServe's exception_handlers, flattened); a test checks that no
# row is shadowed by an earlier, more general one. 5xx rows carry a fixed public message: the detail
# (store URIs, keys, digests) goes to the log only.
STATUS_BY_ERROR: list[Row] = [
    Row(ModelNotReady, 503, "the model is not ready; retry later"),
    Row(Unauthorized, 401),  # missing or wrong X-Modelfn-Event-Secret
    Row(EventRefused, 403),  # bucket/prefix/key not configured (never fetched)
    Row(ModelNotFound, 404),
    Row(UnsupportedMediaType, 415),
    Row(MalformedEvent, 400),
    Row(RequestError, 400),
    Row(EventInProgress, 503, "another delivery of this object version is being processed; retry later"),
    Row(le.InferenceInputError, 400),
    Row(le.InvalidURI, 400),
    Row(le.ArtifactNotFound, 404),
    Row(le.AlreadyExists, 409),
    Row(le.StoreUnavailable, 503, "storage is temporarily unavailable; retry later"),
    Row(le.DigestMismatch, 502, "the model artifact failed verification"),
    Row(le.ManifestInvalid, 502, "the model artifact's manifest is invalid"),
    Row(le.UnsupportedDatatype, 500, "the model produced an output datatype this server cannot encode"),
    Row(le.ModelExecutionError, 500, "the model failed to run on this request"),  # a server fault, retried
    Row(le.ModelfnError, 500, "internal error"),
]
UNKNOWN = Row(Exception, 500, "internal error")


def row_for(exc: BaseException) -> Row:
    """The first (most specific) row matching ``exc``."""
    return next((row for row in STATUS_BY_ERROR if isinstance(exc, row.kind)), UNKNOWN)


def status_for(exc: BaseException) -> int:
    """HTTP status for a typed error (500 for anything unknown)."""
    return row_for(exc).status


def public_message(exc: BaseException) -> str:
    """What a client may read about ``exc``: its own message for 4xx, a fixed one for server faults."""
    row = row_for(exc)
    return row.public if row.public is not None else str(exc)


def public_reason(status: Status) -> str:
    """A not-ready reason safe for anonymous callers (the load's own error is in the log)."""
    if status.public_reason:  # the load's reason with store URIs, paths and digests scrubbed
        return f"{status.public_reason} (the function's log has the details)"
    if status.reason:
        return f"the model failed to load (phase {status.phase.value}); the function's log has the reason"
    return f"model is {status.phase.value}"


def error_response(status: int, message: str, **extra: Any) -> Response:
    """The one JSON error shape: ``{"error": message, ...}``."""
    response = jsonify({"error": message, **extra})
    response.status_code = status
    return response


def answer_for(exc: Exception) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
    """(status, JSON body, headers) for an error raised by a handler, the same for every HTTP front."""
    if isinstance(exc, ModelNotReady):
        st = exc.status
        body = {"error": public_reason(st), "state": st.state.value, "phase": st.phase.value}
        return 503, body, [("Retry-After", str(max(1, math.ceil(st.retry_in or 1))))]
    if not isinstance(exc, RequestError | le.ModelfnError):
        log.exception("unhandled error")
        return 500, {"error": "internal error"}, []
    status = status_for(exc)
    if status >= 500:
        log.error("request failed: %s: %s", type(exc).__name__, exc)
    # transient (storage, a held claim): tell platforms and clients when to retry
    return status, {"error": public_message(exc)}, [("Retry-After", str(RETRY_AFTER_SECONDS))] if status == 503 else []


def _answer(exc: Exception) -> Response:
    status, body, headers = answer_for(exc)
    response = error_response(status, body.pop("error"), **body)
    response.headers.extend(headers)
    return response


def _http(exc: HTTPException) -> Response:
    response = error_response(exc.code or 500, exc.description or exc.name)
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def init_app(app: Flask) -> None:
    """Register the handlers."""
    app.register_error_handler(HTTPException, _http)
    app.register_error_handler(Exception, _answer)  # typed errors, ModelNotReady and the unexpected
    app.config["TRAP_BAD_REQUEST_ERRORS"] = False
