"""Request bodies at the WSGI edge: a 413 the client can read, chunked bodies under the same limit, and a cap on
the bytes of large bodies being decoded at once (decoding JSON costs several times the body in memory)."""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from function import jsonio

log = logging.getLogger("modelfn.bodylimit")
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
CHUNK = 64 * 1024
SMALL_BODY = 64 * 1024  # probes and small requests never wait for the budget
TRIM_AFTER = 4 * 1024 * 1024  # bodies whose decoding frees hundreds of MB; a trim costs about a millisecond
RETRY_AFTER_SECONDS = 2


class BodyBudget:
    """Bytes of large request bodies in flight in this process; a body that does not fit waits for room."""

    def __init__(self, limit: int, wait_seconds: float) -> None:
        self.limit, self.wait_seconds = limit, wait_seconds
        self.used = 0
        self.peak = 0
        self._cond = threading.Condition()

    def acquire(self, size: int) -> bool:
        """Take ``size`` bytes; False when no room came within ``wait_seconds`` (a body alone may exceed the limit)."""
        with self._cond:
            fits = self._cond.wait_for(lambda: self.used == 0 or self.used + size <= self.limit, self.wait_seconds)
            if fits:
                self.used += size
                self.peak = max(self.peak, self.used)
            return fits

    def release(self, size: int) -> None:
        """Give back what ``acquire`` took."""
        with self._cond:
            self.used -= size
            self._cond.notify_all()

    @contextmanager
    def hold(self, size: int) -> Iterator[bool]:
        """``acquire`` ... ``release`` as a context (yields whether it was admitted)."""
        fits = self.acquire(size)
        try:
            yield fits
        finally:
            if fits:
                self.release(size)


class _Held:
    """The app's response iterable, holding its budget until sent: a response is part of the request's memory."""

    def __init__(self, body: Iterable[bytes], budget: BodyBudget, size: int) -> None:
        self.body, self.budget, self.size = body, budget, size
        self._lock = threading.Lock()
        self._held = True

    def __iter__(self) -> Iterator[bytes]:
        yield from self.body
        self.done()

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done()

    def done(self) -> None:
        with self._lock:
            if not self._held:
                return
            self._held = False
        self.budget.release(self.size)
        if self.size >= TRIM_AFTER:
            _trim()

    def __del__(self) -> None:  # a caller that never reads nor closes (a test client) must not leak the budget
        self.done()


class BodyLimit:
    """WSGI middleware in front of the Flask app."""

    def __init__(self, app: WSGIApp, max_body: int, drain_bytes: int, budget: BodyBudget) -> None:
        self.app, self.max_body, self.drain_bytes, self.budget = app, max_body, drain_bytes, budget

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = _content_length(environ)
        stream = environ["wsgi.input"]
        if length is not None and length > self.max_body:
            # Read (and drop) what the client is sending, so it gets to read our answer instead of a reset.
            _discard(stream, min(length, self.drain_bytes))
            return self._too_large(start_response)
        if length is None and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = stream.read(self.max_body + 1)
            if len(body) > self.max_body:
                _discard(stream, self.drain_bytes)
                return self._too_large(start_response)
            environ["wsgi.input"], environ["CONTENT_LENGTH"], length = io.BytesIO(body), str(len(body)), len(body)
        if not length or length <= SMALL_BODY:
            return self.app(environ, start_response)
        if not self.budget.acquire(length):
            log.warning("no room for a large body in MAX_INFLIGHT_BODY_BYTES", extra={"fields": {"status": 503}})
            return _answer(start_response, "503 Service Unavailable", "too many large requests in flight; retry")
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self.budget.release(length)
            raise
        return _Held(body, self.budget, length)

    def _too_large(self, start_response: Callable[..., Any]) -> Iterable[bytes]:
        # Answered before Flask sees the request, so the access log would not show it otherwise.
        log.warning("request body over MAX_BODY_BYTES refused", extra={"fields": {"status": 413}})
        message = f"request body is larger than MAX_BODY_BYTES ({self.max_body} bytes)"
        return _answer(start_response, "413 Request Entity Too Large", message)


def _load_trim() -> Callable[[], None]:
    """glibc's malloc_trim: each request thread's malloc arena keeps what a large body freed unless asked."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to return
        return lambda: None

    def release() -> None:
        trim(0)

    return release


_trim = _load_trim()


def _content_length(environ: dict[str, Any]) -> int | None:
    try:
        return int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def _discard(stream: Any, budget: int) -> None:
    while budget > 0 and (chunk := stream.read(min(CHUNK, budget))):
        budget -= len(chunk)


def _answer(start_response: Callable[..., Any], status: str, message: str) -> Iterable[bytes]:
    body = jsonio.dumps({"error": message})
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if status.startswith("503"):
        headers.append(("Retry-After", str(RETRY_AFTER_SECONDS)))
    start_response(status, headers)
    return [body]
