"""Structured logs: one JSON line per request on stdout, with a Cloud Logging ``severity``."""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
import threading
import time
import uuid
from typing import Any, NamedTuple

import orjson
from flask import Flask, Response, g, request

from function.metrics import Metrics, method_label, status_label

access_log = logging.getLogger("modelfn.access")

# Only well-formed ids are logged: a header must not be able to inject text into the log stream.
TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
CLOUD_TRACE_RE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d{1,20}))?(?:;o=([01]))?$")
CLOUD_TRACE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
AMZN_ROOT_RE = re.compile(r"(?:^|;)Root=(1-[0-9a-f]{8}-[0-9a-f]{24})(?:;|$)")
# Platforms poll these every few seconds; a 503 during a cold start is expected, and the load's own
# outcome is logged by the model holder, so probe lines stay at DEBUG.
PROBE_ROUTES = frozenset({"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/metrics"})
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
SEVERITY = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARNING", logging.ERROR: "ERROR"}


_STAMP: list[Any] = [-1, ""]  # (second, its timestamp): strftime once a second, not once a line


def _timestamp(created: float) -> str:
    if int(created) != _STAMP[0]:
        _STAMP[:] = [int(created), time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(created))]
    return str(_STAMP[1])


def json_line(levelno: int, created: float, logger: str, message: str, fields: dict[str, Any]) -> str:
    """``{"severity", "time", "logger", "message", ...fields}`` as one JSON line (no newline)."""
    severity = SEVERITY.get(levelno, "CRITICAL")
    entry = {"severity": severity, "time": _timestamp(created), "logger": logger, "message": message}
    # orjson: an access line per request costs a few µs instead of ~15 with json.dumps.
    return orjson.dumps({**entry, **fields}, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class JsonFormatter(logging.Formatter):
    """``{"severity", "message", "logger", ...extra fields}``, one line per record."""

    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "fields", {}))
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json_line(record.levelno, record.created, record.name, record.getMessage(), fields)


class StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is now (it may be replaced after configuration)."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def configure_logging(level: str) -> None:
    """Route every modelfn logger to stdout as JSON (idempotent)."""
    root = logging.getLogger("modelfn")
    root.setLevel(level.upper())
    if not any(isinstance(h, StdoutHandler) for h in root.handlers):
        handler = StdoutHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.propagate = False


def trace_context(headers: Any) -> tuple[str | None, str | None, bool | None]:
    """``(trace id, span id as 16 hex digits, sampled)`` from ``traceparent``, ``X-Cloud-Trace-Context`` or
    ``X-Amzn-Trace-Id`` (the last has no span)."""
    if m := TRACEPARENT_RE.match(headers.get("traceparent", "").strip()):
        return m.group(1), m.group(2), bool(int(m.group(3), 16) & 1)
    if m := CLOUD_TRACE_RE.match(headers.get("X-Cloud-Trace-Context", "").strip()):
        span = int(m.group(2)) if m.group(2) else 0  # decimal in this header; Cloud Logging wants hex
        sampled = {"1": True, "0": False}.get(m.group(3) or "")
        return m.group(1).lower(), f"{span:016x}" if 0 < span < 2**64 else None, sampled
    if m := AMZN_ROOT_RE.search(headers.get("X-Amzn-Trace-Id", "").strip()):
        return m.group(1), None, None
    return None, None, None


def trace_id(headers: Any) -> str | None:
    """Trace id from W3C ``traceparent``, ``X-Cloud-Trace-Context`` or ``X-Amzn-Trace-Id``."""
    return trace_context(headers)[0]


def cloud_logging_fields(headers: Any, project: str | None) -> dict[str, Any]:
    """``trace_id`` always; Cloud Logging's trace, spanId and trace_sampled when the project is known."""
    trace, span, sampled = trace_context(headers)
    fields: dict[str, Any] = {"trace_id": trace}
    if project and trace and CLOUD_TRACE_ID_RE.match(trace):  # X-Ray ids are not Cloud Trace ids
        fields["logging.googleapis.com/trace"] = f"projects/{project}/traces/{trace}"
        if span:
            fields["logging.googleapis.com/spanId"] = span
        if sampled is not None:
            fields["logging.googleapis.com/trace_sampled"] = sampled
    return fields


_IDS = itertools.count()
_ID_PREFIX = uuid.uuid4().hex[:16]  # per process: ids are unique without a urandom() call per request


def _new_prefix() -> None:
    global _IDS, _ID_PREFIX
    _IDS, _ID_PREFIX = itertools.count(), uuid.uuid4().hex[:16]


os.register_at_fork(after_in_child=_new_prefix)


def request_id(given: str | None) -> str:
    """The caller's ``X-Request-Id`` when well-formed, else a new one (32 hex digits, as a uuid4's)."""
    if given and REQUEST_ID_RE.match(given):
        return given
    return f"{_ID_PREFIX}{next(_IDS):016x}"


class Done(NamedTuple):
    """One answered request, as every HTTP front reports it."""

    route: str  # the route's rule (a fixed set), "unmatched" otherwise
    method: str
    path: str
    status: int
    elapsed: float
    request_id: str
    model_version: str | None
    model_role: str | None
    user_agent: str


def record(metrics: Metrics, project: str | None, done: Done, headers: Any) -> None:
    """Count and time the request, and log its one access line (``headers``: anything with ``.get``)."""
    # Every label comes from a fixed set: a client choosing methods or paths must not grow the series.
    method = method_label(done.method)
    count, seconds = metrics.http(done.route, method, status_label(done.status))
    count.inc()
    seconds.observe(done.elapsed)
    level = _severity(done.route, done.status)
    if not access_log.isEnabledFor(level):
        return
    fields = {
        "httpRequest": {
            "requestMethod": done.method[:16],
            "requestUrl": done.path,
            "status": done.status,
            "latency": f"{done.elapsed:.6f}s",
            "userAgent": done.user_agent[:200],
        },
        "route": done.route,
        "latency_ms": round(done.elapsed * 1000, 3),
        "request_id": done.request_id,
        "model_version": done.model_version,
        "model_role": done.model_role,
        **cloud_logging_fields(headers, project),
    }
    message = f"{method} {done.route} {done.status}"
    if not _emit_direct(level, message, fields):
        access_log.log(level, "%s", message, extra={"fields": fields})


_STDOUT_LOCK = threading.Lock()


def _emit_direct(level: int, message: str, fields: dict[str, Any]) -> bool:
    """The access line written as ``JsonFormatter`` would, without a LogRecord and handler dispatch.

    Only with the default configuration (modelfn's one stdout handler, nothing added to the access logger):
    the logging machinery cost ~15 µs per request, a line per request on the serving path.
    """
    root = access_log.parent
    if access_log.handlers or root is None or len(root.handlers) != 1 or type(root.handlers[0]) is not StdoutHandler:
        return False
    line = json_line(level, time.time(), access_log.name, message, fields) + "\n"
    with _STDOUT_LOCK:
        sys.stdout.write(line)
        sys.stdout.flush()
    return True


def answer_headers(request_id: str, model_version: str | None, model_role: str | None) -> list[tuple[str, str]]:
    """The headers every answer carries: its request id and, when a model answered, which version and role."""
    headers = [("X-Request-Id", request_id)]
    if model_version:  # which version answered (a canary may have)
        headers += [("X-Model-Version", model_version), ("X-Model-Role", model_role or "primary")]
    return headers


def init_app(app: Flask, metrics: Metrics) -> None:
    """Time every request, count it, log it, and echo a request id."""
    project = app.extensions["modelfn"].settings.google_cloud_project

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        g.request_id = request_id(request.headers.get("X-Request-Id"))
        g.model_version = None

    @app.after_request
    def _finish(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        for name, value in answer_headers(g.get("request_id", ""), g.get("model_version"), g.get("model_role")):
            response.headers[name] = value
        route = request.url_rule.rule if request.url_rule else "unmatched"
        done = Done(
            route,
            request.method,
            request.path,
            response.status_code,
            elapsed,
            g.get("request_id", ""),
            g.get("model_version"),
            g.get("model_role"),
            request.user_agent.string,
        )
        record(metrics, project, done, request.headers)
        return response


def _severity(route: str, status: int) -> int:
    if route in PROBE_ROUTES:
        return logging.DEBUG
    return logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
