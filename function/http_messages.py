"""The HTTP/1.1 front's messages: limits, a complete request, a reply, and the callables that pass them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple


class Limits(NamedTuple):
    """What a connection accepts (Gunicorn's defaults for the head, the service's settings for the body)."""

    request_line: int = 4094
    fields: int = 100
    field_size: int = 8190
    max_body: int = 10 * 1024 * 1024
    drain: int = 128 * 1024 * 1024
    read_timeout: float = 10.0
    keepalive: float = 75.0


@dataclass(slots=True)
class Request:
    """One complete request: header names lower-cased, the body read to its end."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    peer: Any
    local: Any
    keep_alive: bool = True

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of a header (``name`` lower-case)."""
        return first_header(self.headers, name, default)


def first_header(headers: list[tuple[str, str]], name: str, default: str | None = None) -> str | None:
    """The first value of header ``name`` (lower-case) in a list of (lower-case name, value)."""
    return next((v for k, v in headers if k == name), default)


class Reply(NamedTuple):
    """What a handler answers: the body is sent as given, with its Content-Length."""

    status: int
    headers: list[tuple[str, str]]
    body: Iterable[bytes]
    reason: str | None = None
    close: bool = False
    sent: Callable[[], None] | None = None  # called once the body was handed to the socket (or dropped)


Handler = Callable[[Request], Reply]  # runs on the pool
Respond = Callable[[Reply], None]
# Runs in the event loop: takes the request (True) and calls respond later, in the loop, exactly once.
Front = Callable[[Request, Respond], bool]


def error_reply(status: int, message: str, close: bool = True) -> Reply:
    """The service's ``{"error": ...}`` body (never echoing the request)."""
    body = json.dumps({"error": message}).encode()
    return Reply(status, [("Content-Type", "application/json")], [body], close=close)
