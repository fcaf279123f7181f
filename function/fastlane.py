"""The worker's fast lane: small V2 infer and V1 predict requests, decoded and answered in the event loop.

Flask's request context, URL map, hooks and response object cost about 250 µs of CPU per request, and a
pool thread per request costs three thread hand-offs, several times what a one-row inference costs in
Python. For these three routes the event loop decodes and validates the request, queues it on the model's
batching engine without blocking (``serving.start``), and encodes the answer when the batch's outputs come
back; only ``predict()`` runs on another thread. It calls the same code the Flask views call
(``inference``, ``errors.answer_for``, ``request_log.record``), so the answer, the error body, the headers,
the metrics and the access line are the same.

Everything else goes to the WSGI app on the pool: other routes, bodies larger than ``SMALL_BODY`` (which the
body budget of ``function.bodylimit`` must see, and whose decoding would hold up the loop), and requests
that arrive while no model is loaded yet (they wait for the load on a pool thread, not in the loop).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from function import jsonio, serving
from function.batch_parts import after_answers
from function.bodylimit import SMALL_BODY
from function.context import Context
from function.errors import answer_for
from function.http11 import Front, Handler, Reply, Request, Respond
from function.inference import Answer, Exchange, Prepared, complete, v1_prepare, v2_prepare
from function.request_log import Done, answer_headers, record, request_id

Prepare = Callable[[Context, Exchange, dict[str, str]], Prepared]
# (Flask rule, pattern of the undecoded path, how to decode it): the rules are the metric and log labels.
ROUTES: list[tuple[str, re.Pattern[str], Prepare]] = [
    (
        "/v2/models/<name>/infer",
        re.compile(r"/v2/models/(?P<name>[^/]+)/infer"),
        lambda ctx, ex, p: v2_prepare(ctx, ex, p["name"]),
    ),
    (
        "/v2/models/<name>/versions/<model_version>/infer",
        re.compile(r"/v2/models/(?P<name>[^/]+)/versions/(?P<model_version>[^/]+)/infer"),
        lambda ctx, ex, p: v2_prepare(ctx, ex, p["name"], p["model_version"]),
    ),
    (
        "/v1/models/<name>:predict",
        re.compile(r"/v1/models/(?P<name>[^/]+):predict"),
        lambda ctx, ex, p: v1_prepare(ctx, ex, p["name"]),
    ),
]


class Headers(dict[str, str]):
    """Request headers by lower-case name, the first value of each; ``get`` ignores case."""

    def get(self, name: str, default: Any = None) -> Any:
        """The header's first value."""
        return dict.get(self, name.lower(), default)


class Call(NamedTuple):
    """One fast-lane request in progress: what its answer and its access line need."""

    ctx: Context
    project: str | None
    rule: str
    path: str
    headers: Headers
    request_id: str
    exchange: Exchange
    started: float

    def reply(self, result: Answer | Exception) -> Reply:
        """The response (an error through the one table) and its metrics and access line."""
        if isinstance(result, Exception):
            status, document, extra = answer_for(result)
            content_type, body = "application/json", [jsonio.dumps(document)]
        else:
            status, content_type, body, extra = 200, result.content_type, result.body, result.headers
        ex = self.exchange
        out = [
            ("Content-Type", content_type),
            *extra,
            *answer_headers(self.request_id, ex.model_version, ex.model_role),
        ]
        elapsed = time.perf_counter() - self.started
        agent = self.headers.get("user-agent", "")
        done = Done(
            self.rule, "POST", self.path, status, elapsed, self.request_id, ex.model_version, ex.model_role, agent
        )
        after_answers(partial(record, self.ctx.metrics, self.project, done, self.headers))
        return Reply(status, out, body)


def match(request: Request) -> tuple[str, str, Prepare, dict[str, str]] | None:
    """(rule, path, decoder, parameters) when the fast lane takes this request."""
    if request.method != "POST" or len(request.body) > SMALL_BODY or "%" in request.target:
        return None  # percent-encoded paths: Flask's decoding decides what they name
    path = request.target.split("?", 1)[0]
    for rule, pattern, prepare in ROUTES:
        if m := pattern.fullmatch(path):
            return rule, path, prepare, m.groupdict()
    return None


def _call(ctx: Context, project: str | None, request: Request, rule: str, path: str) -> Call:
    started = time.perf_counter()
    headers = Headers()
    for name, value in request.headers:
        headers.setdefault(name, value)
    ex = Exchange(headers.get, request.body, headers.get("content-type"))
    return Call(ctx, project, rule, path, headers, request_id(headers.get("x-request-id")), ex, started)


def handler_for(app: Any, general: Handler) -> Handler:
    """The pool's handler: the inference routes of a modelfn app without Flask, ``general`` otherwise."""
    ctx: Context | None = getattr(app, "extensions", {}).get("modelfn")
    if ctx is None:  # not the modelfn app (Gunicorn can serve anything with this worker)
        return general
    project = ctx.settings.google_cloud_project

    def handle(request: Request) -> Reply:
        matched = match(request)
        if matched is None:
            return general(request)
        rule, path, prepare, params = matched
        call = _call(ctx, project, request, rule, path)
        try:
            return call.reply(complete(ctx, prepare(ctx, call.exchange, params)))
        except Exception as exc:
            return call.reply(exc)

    return handle


def front_for(app: Any, loop: asyncio.AbstractEventLoop) -> Front | None:
    """The event loop's front: takes inference requests while a model is loaded; None for other apps."""
    ctx: Context | None = getattr(app, "extensions", {}).get("modelfn")
    if ctx is None:
        return None
    project = ctx.settings.google_cloud_project

    def take(request: Request, respond: Respond) -> bool:
        model = ctx.holder.model
        if model is None or model.engine is None or (matched := match(request)) is None:
            return False  # the pool: loading waits there, never in the loop
        rule, path, prepare, params = matched
        call = _call(ctx, project, request, rule, path)
        try:
            prepared = prepare(ctx, call.exchange, params)
            if prepared.model.engine is None:
                return False
            serving.start(
                prepared.model, prepared.arrays, ctx.metrics, prepared.routing, loop, _then(call, prepared, respond)
            )
        except Exception as exc:
            respond(call.reply(exc))
        return True

    return take


def _then(call: Call, prepared: Prepared, respond: Respond) -> Callable[[Any, BaseException | None], None]:
    def then(outputs: Any, error: BaseException | None) -> None:
        if error is not None:
            respond(call.reply(error if isinstance(error, Exception) else RuntimeError("interrupted")))
            return
        try:
            answer = prepared.answer(outputs)
        except Exception as exc:
            respond(call.reply(exc))
            return
        respond(call.reply(answer))

    return then
