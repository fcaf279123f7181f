"""JSON on the request path: orjson as Flask's JSON provider, and one encoder for every JSON the service writes."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from flask import Flask, Response
from flask.json.provider import JSONProvider

# orjson writes non-finite floats (NaN, +-Infinity) as null, so every body stays strict JSON (as MLServer does).
OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> bytes:
    """Strict JSON bytes; numpy arrays and scalars are written by orjson in C, non-finite floats as null."""
    return orjson.dumps(value, default=_default, option=OPTIONS)


def dumps_line(value: Any) -> str:
    """One JSON Lines record (with its newline) for batch outputs: the same encoding as the HTTP bodies."""
    return orjson.dumps(value, default=_default, option=OPTIONS | orjson.OPT_APPEND_NEWLINE).decode()


def loads(raw: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON (orjson: nesting deeper than 1024 is a ValueError, never a RecursionError)."""
    return orjson.loads(raw)


class OrjsonProvider(JSONProvider):
    """Flask's ``app.json`` backed by orjson (``jsonify``, ``request.get_json``)."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        return Response(dumps(obj), mimetype="application/json")


def init_app(app: Flask) -> None:
    """Make orjson the app's JSON provider."""
    app.json = OrjsonProvider(app)


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):  # non-contiguous, or a dtype orjson does not take natively
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
