"""The worker's fast lane: small V2 infer and V1 predict requests go straight to ``function.inference``.

Flask's request context, URL map, hooks and response object cost about 250 µs of CPU per request, several
times what a one-row inference costs in Python. These three routes skip them; they call the same code the
Flask views call (``inference``, ``errors.answer_for``, ``request_log.record``), so the answer, the error
body, the headers, the metrics and the access line are the same. Everything else, and any body larger than
``SMALL_BODY`` (which the body budget of ``function.bodylimit`` must see), goes to the WSGI app.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from function import jsonio
from function.bodylimit import SMALL_BODY
from function.context import Context
from function.errors import answer_for
from function.http11 import Handler, Reply, Request
from function.inference import Answer, Exchange, v1_predict, v2_infer
from function.request_log import Done, record, request_id

Route = Callable[[Context, Exchange, dict[str, str]], Answer]
# (Flask rule, pattern of the undecoded path, handler): the rules are the metric and log labels.
ROUTES: list[tuple[str, re.Pattern[str], Route]] = [
    (
        "/v2/models/<name>/infer",
        re.compile(r"/v2/models/(?P<name>[^/]+)/infer"),
        lambda ctx, ex, p: v2_infer(ctx, ex, p["name"]),
    ),
    (
        "/v2/models/<name>/versions/<model_version>/infer",
        re.compile(r"/v2/models/(?P<name>[^/]+)/versions/(?P<model_version>[^/]+)/infer"),
        lambda ctx, ex, p: v2_infer(ctx, ex, p["name"], p["model_version"]),
    ),
    (
        "/v1/models/<name>:predict",
        re.compile(r"/v1/models/(?P<name>[^/]+):predict"),
        lambda ctx, ex, p: v1_predict(ctx, ex, p["name"]),
    ),
]


class Headers(dict[str, str]):
    """Request headers by lower-case name, the first value of each; ``get`` ignores case."""

    def get(self, name: str, default: Any = None) -> Any:
        """The header's first value."""
        return dict.get(self, name.lower(), default)


def match(request: Request) -> tuple[str, str, Route, dict[str, str]] | None:
    """(rule, path, route, parameters) when the fast lane takes this request."""
    if request.method != "POST" or len(request.body) > SMALL_BODY or "%" in request.target:
        return None  # percent-encoded paths: Flask's decoding decides what they name
    path = request.target.split("?", 1)[0]
    for rule, pattern, handler in ROUTES:
        if m := pattern.fullmatch(path):
            return rule, path, handler, m.groupdict()
    return None


def handler_for(app: Any, general: Handler) -> Handler:
    """The worker's handler: the fast lane for the inference routes of a modelfn app, ``general`` otherwise."""
    ctx: Context | None = getattr(app, "extensions", {}).get("modelfn")
    if ctx is None:  # not the modelfn app (Gunicorn can serve anything with this worker)
        return general
    project = ctx.settings.google_cloud_project

    def handle(request: Request) -> Reply:
        matched = match(request)
        if matched is None:
            return general(request)
        return serve(ctx, project, request, *matched)

    return handle


def serve(
    ctx: Context, project: str | None, request: Request, rule: str, path: str, route: Route, params: dict[str, str]
) -> Reply:
    """Answer one inference request as the Flask view and its hooks would."""
    started = time.perf_counter()
    headers = Headers()
    for name, value in request.headers:
        headers.setdefault(name, value)
    rid = request_id(headers.get("x-request-id"))
    ex = Exchange(headers.get, request.body, headers.get("content-type"))
    try:
        answer = route(ctx, ex, params)
        status, content_type, body, extra = 200, answer.content_type, answer.body, answer.headers
    except Exception as exc:
        status, document, extra = answer_for(exc)
        content_type, body = "application/json", [jsonio.dumps(document)]
    out = [("Content-Type", content_type), *extra, ("X-Request-Id", rid)]
    if ex.model_version:
        out += [("X-Model-Version", ex.model_version), ("X-Model-Role", ex.model_role or "primary")]
    elapsed = time.perf_counter() - started
    done = Done(
        rule, "POST", path, status, elapsed, rid, ex.model_version, ex.model_role, headers.get("user-agent", "")
    )
    record(ctx.metrics, project, done, headers)
    return Reply(status, out, body)
