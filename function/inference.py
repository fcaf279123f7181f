"""The inference routes without a web framework: V2 infer and V1 predict on raw headers and body bytes.

Both HTTP fronts call these: the Flask views (``v1``, ``v2``) and the worker's fast lane (``fastlane``), so
a request gets the same answer, the same error and the same routing whichever front took it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from function import binary, fastjson, header_cache, jsonio
from function.codec import instances_to_arrays, predictions_json, v2_inputs, v2_outputs
from function.context import Context
from function.errors import ModelNotFound, RequestError, UnsupportedMediaType
from function.holder import LoadedModel
from function.release import PRIMARY, ROUTE_HEADERS, route
from function.schemas import PredictRequest, V2InferRequest, parse
from function.serving import Shadow, run

Header = Callable[[str], str | None]  # a request header by (case-insensitive) name


class Answer(NamedTuple):
    """A successful answer: content type, body fragments, extra headers."""

    content_type: str
    body: list[bytes]
    headers: list[tuple[str, str]]


class Exchange:
    """One inference request as both fronts see it, and which version answered it (for headers and the log)."""

    __slots__ = ("_body", "header", "mimetype", "model_role", "model_version", "shadow")

    def __init__(self, header: Header, body: bytes | Callable[[], bytes], content_type: str | None) -> None:
        self.header, self._body = header, body  # a callable reads the body only when it is needed
        self.mimetype = (content_type or "").split(";", 1)[0].strip().lower()
        self.model_version: str | None = None
        self.model_role: str | None = None
        self.shadow: LoadedModel | None = None

    @property
    def body(self) -> bytes:
        """The request body (read once)."""
        if callable(self._body):
            self._body = self._body()
        return self._body

    def route_key(self) -> str | None:
        """``X-Route-Key``, else ``X-Request-Id``: a key sticks to one version across containers."""
        for name in ROUTE_HEADERS:
            if value := self.header(name):
                return value[:256]
        return None


def select(ctx: Context, ex: Exchange, name: str, version: str | None, split: bool = True) -> LoadedModel:
    """The version that answers (primary or canary); waits a bounded time while the model loads."""
    if name != ctx.uri.name:
        raise ModelNotFound(f"unknown model; this server serves {ctx.uri.name!r}")
    release = ctx.holder.get(ctx.settings.load_wait_seconds)
    routed = route(release, version, ex.route_key() if split else None, split)
    ex.model_version, ex.model_role, ex.shadow = routed.model.version, routed.role, routed.shadow
    return routed.model


def routing(ctx: Context, ex: Exchange) -> tuple[str, Shadow | None]:
    """(role, shadow hook) for ``serving.run``."""
    if ex.shadow is None:
        return ex.model_role or PRIMARY, None
    return PRIMARY, partial(_shadow, ctx, ex.shadow)


def _shadow(ctx: Context, candidate: LoadedModel, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
    ctx.shadow.submit(candidate, inputs, outputs, ctx.metrics)


def json_document(ex: Exchange, allow_untyped: bool = False, decode: Callable[[bytes], Any] = jsonio.loads) -> Any:
    """The request's JSON object; 415 for other content types, 400 for malformed JSON.

    ``allow_untyped`` accepts a body with no Content-Type at all, as the V2 clients send one.
    """
    if ex.header(binary.HEADER) is not None:
        raise UnsupportedMediaType("the binary tensor extension is accepted by the V2 infer endpoint only")
    if ex.mimetype != "application/json" and not (allow_untyped and not ex.mimetype):
        raise UnsupportedMediaType("Content-Type must be application/json")
    try:
        body = decode(ex.body)
    except ValueError:
        raise RequestError("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object")
    return body


class Prepared(NamedTuple):
    """A request decoded and validated, ready for ``serving.run`` / ``serving.start``, and how to answer it."""

    model: LoadedModel
    arrays: dict[str, np.ndarray]
    routing: tuple[str, Shadow | None]
    answer: Callable[[dict[str, np.ndarray]], Answer]


def v2_prepare(ctx: Context, ex: Exchange, name: str, version: str | None = None) -> Prepared:
    """Decode one Open Inference Protocol request: JSON tensors, or the binary tensor extension."""
    header_length = ex.header(binary.HEADER)
    if header_length is not None:
        key, request, blob = header_cache.split(ex.body, header_length)
        model = select(ctx, ex, name, version)
        arrays = header_cache.inputs(model, key, request, blob)
        return Prepared(model, arrays, routing(ctx, ex), partial(_v2_answer, model, request, key))
    request = parse(V2InferRequest, json_document(ex, allow_untyped=True, decode=fastjson.loads_v2))
    model = select(ctx, ex, name, version)
    return Prepared(model, v2_inputs(model, request), routing(ctx, ex), partial(_v2_answer, model, request, None))


def _v2_answer(
    model: LoadedModel, request: V2InferRequest, key: bytes | None, outputs: dict[str, np.ndarray]
) -> Answer:
    """The answer; ``key`` (a repeating binary-extension header) lets its JSON header be reused."""
    header, blobs = header_cache.answer(model, key, outputs, partial(v2_outputs, model, request, outputs, True))
    if not blobs:
        return Answer("application/json", [header], [])
    return Answer("application/octet-stream", [header, *blobs], [(binary.HEADER, str(len(header)))])


def v1_prepare(ctx: Context, ex: Exchange, name: str) -> Prepared:
    """Decode ``{"instances": [...]}`` with the manifest's pre-processing."""
    instances = parse(PredictRequest, json_document(ex)).instances
    model = select(ctx, ex, name, None)
    arrays = instances_to_arrays(model, instances)
    del instances  # the parsed lists (~10x the body) are freed before inference, not after
    return Prepared(model, arrays, routing(ctx, ex), partial(_v1_answer, model))


def _v1_answer(model: LoadedModel, outputs: dict[str, np.ndarray]) -> Answer:
    return Answer("application/json", predictions_json(model, outputs), [])


def complete(ctx: Context, prepared: Prepared) -> Answer:
    """Run a prepared request on this thread and answer it."""
    return prepared.answer(run(prepared.model, prepared.arrays, ctx.metrics, *prepared.routing))


def v2_infer(ctx: Context, ex: Exchange, name: str, version: str | None = None) -> Answer:
    """One Open Inference Protocol request, answered on this thread."""
    return complete(ctx, v2_prepare(ctx, ex, name, version))


def v1_predict(ctx: Context, ex: Exchange, name: str) -> Answer:
    """``{"instances": [...]}`` -> ``{"predictions": [...]}``, answered on this thread."""
    return complete(ctx, v1_prepare(ctx, ex, name))
