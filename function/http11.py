"""HTTP/1.1 connections on asyncio with httptools (llhttp): the event loop reads every request head and body,
so a slow or stalled client never holds a thread; a complete request goes to a handler on the thread pool.

Gunicorn's limits and the service's JSON error shape are kept: a request line over ``request_line`` bytes is a
400, too many or too large headers a 431, a malformed request a 400, a head that does not complete (or a body
that makes no progress) within ``read_timeout`` a 408, a body over ``max_body`` a 413 once up to ``drain``
bytes of it were read (so clients that send everything before reading still get the answer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import cache, partial
from http import HTTPStatus

import httptools

from function.http_messages import Front, Handler, Limits, Reply, Request, Respond, error_reply, first_header

log = logging.getLogger("modelfn.http")
SMALL_WRITE = 256 * 1024  # answers up to this size are written at once
PIECE = 1024 * 1024  # larger ones in pieces of this size, as the socket drains


class Refused(Exception):
    """A request the connection answers itself (limits, a malformed head)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Server:
    """What every connection of a listener shares."""

    loop: asyncio.AbstractEventLoop
    handler: Handler
    pool: Executor
    limits: Limits
    front: Front | None = None
    connections: set[Connection] = field(default_factory=set)
    accepting: bool = True
    served: int = 0

    def dispatch(self, request: Request, respond: Respond) -> None:
        """The front if it takes the request, else the handler on the pool."""
        try:
            if self.front is not None and self.front(request, respond):
                return
        except Exception:  # a fault in the front must still answer this request, and only once
            log.exception("unhandled error in the event-loop front")
            respond(error_reply(500, "internal error", close=True))
            return
        future = self.loop.run_in_executor(self.pool, self.handler, request)
        future.add_done_callback(partial(_finished, respond))

    def sweep(self, now: float) -> None:
        """Close connections past their deadline: 408 when a request was arriving, quietly when idle."""
        for conn in [c for c in self.connections if c.deadline < now]:
            conn.expire()

    def busy(self) -> int:
        """Connections with a request arriving, queued or in a handler."""
        return sum(1 for c in self.connections if c.busy or c.arriving or c.pending)

    def stop(self) -> None:
        """Graceful stop: idle connections close now; the others after their answer (``Connection: close``)."""
        self.accepting = False
        for conn in list(self.connections):
            if not (conn.busy or conn.arriving or conn.pending):
                conn.close()


class Connection(asyncio.Protocol):
    """One client connection: parse, queue complete requests, answer them in order, one at a time."""

    def __init__(self, server: Server) -> None:
        self.server, self.limits = server, server.limits
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[Request | Reply] = deque()
        self.busy = self.closed = self.arriving = self.discarding = self.paused = self.eof = False
        self.outgoing: deque[memoryview] = deque()
        self.after: tuple[Reply, bool] | None = None
        self.deadline = time.monotonic() + max(self.limits.keepalive, self.limits.read_timeout)
        self._reset()

    def _reset(self) -> None:
        self.url = bytearray()
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.received, self.keep_alive, self.discarding = 0, True, False

    # --- transport events ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer, self.local = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        self.outgoing.clear()
        if self.after is not None:
            _sent(self.after[0])
            self.after = None

    def eof_received(self) -> bool:
        if self.busy or self.pending:  # a client that half-closes after sending still gets its answers
            self.eof = True
            return True
        return False

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._pump()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.parser.feed_data(data)
        except Refused as refused:
            self._refuse(refused.status, refused.message)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserError:
            self._refuse(400, "malformed HTTP request")

    # --- parser callbacks ---
    def on_message_begin(self) -> None:
        self._reset()
        self.arriving = True
        self.deadline = time.monotonic() + self.limits.read_timeout  # the whole head gets read_timeout

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.request_line:
            raise Refused(400, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= self.limits.fields or len(name) + len(value) > self.limits.field_size:
            raise Refused(431, "request headers too many or too large")
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1").strip()))

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        length = first_header(self.headers, "content-length")
        if length is not None and int(length) > self.limits.max_body:
            self.discarding = True
        elif length and int(length) > 0 and (first_header(self.headers, "expect") or "").lower() == "100-continue":
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.received += len(body)
        self.deadline = time.monotonic() + self.limits.read_timeout  # a body only needs to make progress
        if self.received > self.limits.max_body:
            self.discarding, self.body = True, []
        if not self.discarding:
            self.body.append(body)
        elif self.received >= self.limits.drain:  # read enough to let the client read the answer
            self._refuse(413, self._too_large())
            raise Refused(413, "")  # stops this feed; the connection is closing already

    def on_message_complete(self) -> None:
        self.arriving = False
        if self.discarding:
            self.pending.append(error_reply(413, self._too_large(), close=not self.keep_alive))
        else:
            method = self.parser.get_method().decode("latin-1")
            version = self.parser.get_http_version()
            target = self.url.decode("latin-1")
            body = b"".join(self.body)
            request = Request(method, target, version, self.headers, body, self.peer, self.local, self.keep_alive)
            self.pending.append(request)
        if self.busy:
            self._hold()  # one request at a time: a pipelining client waits in its socket
            return
        self._next()  # here, not in a later loop turn: a batch's requests reach the engine as they are read

    def _hold(self) -> None:
        # Only a pipelined request pauses reading: pausing and resuming around every request would cost two
        # epoll_ctl calls per request, for clients that never send before they read.
        if self.transport is not None and self.transport.is_reading():
            self.transport.pause_reading()

    # --- answering ---
    def _next(self) -> None:
        if self.busy or self.closed or not self.pending:
            if not self.busy and not self.closed and self.transport is not None and not self.transport.is_reading():
                self.transport.resume_reading()
            return
        item = self.pending.popleft()
        self.busy = True
        if isinstance(item, Reply):
            self._send(item, item.close, head=False)
            return
        self.server.dispatch(item, partial(self._respond, item.keep_alive, item.method == "HEAD"))

    def _respond(self, keep_alive: bool, head: bool, reply: Reply) -> None:
        self.server.served += 1
        self._send(reply, not keep_alive or reply.close, head)

    def _send(self, reply: Reply, close: bool, head: bool) -> None:
        if self.closed:
            _sent(reply)
            return
        close = close or not self.server.accepting
        chunks = [memoryview(c) for c in reply.body if c]
        size = sum(c.nbytes for c in chunks)
        names = {k.lower() for k, _ in reply.headers}
        lines = [f"HTTP/1.1 {reply.status} {reply.reason or _reason(reply.status)}"]
        lines += [f"{k}: {v}" for k, v in reply.headers if k.lower() != "connection"]
        if "content-length" not in names:
            lines.append(f"Content-Length: {size}")
        if close:
            lines.append("Connection: close")
        start = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if head:
            chunks, size = [], 0
        if size <= SMALL_WRITE:  # the usual answer: one write, one syscall
            self._write(start + b"".join(chunks))
            self._done(reply, close)
            return
        # A large body goes out piece by piece as the socket takes it, so the loop never holds a copy.
        self.outgoing.append(memoryview(start))
        for chunk in chunks:
            self.outgoing.extend(chunk[i : i + PIECE] for i in range(0, chunk.nbytes, PIECE))
        self.after = (reply, close)
        self._pump()

    def _pump(self) -> None:
        while self.outgoing and not self.paused and not self.closed:
            self._write(self.outgoing.popleft())
        if not self.outgoing and self.after is not None and not self.paused:
            reply, close = self.after
            self.after = None
            self._done(reply, close)

    def _done(self, reply: Reply, close: bool) -> None:
        _sent(reply)
        if close or (self.eof and not self.pending):
            self.close()
            return
        self.busy = False
        if not self.arriving:  # a pipelined request already arriving keeps its read deadline
            self.deadline = time.monotonic() + self.limits.keepalive
        self._next()

    def _refuse(self, status: int, message: str) -> None:
        if not self.closed and not self.busy and message:
            log.warning("invalid request", extra={"fields": {"status": status, "reason": message}})
            self._send(error_reply(status, message), close=True, head=False)
        self.close()

    def expire(self) -> None:
        """Past the deadline: a request that was arriving gets a 408; an idle connection just closes."""
        if self.busy:
            return
        if self.arriving:
            self._refuse(408, "request not received in time")
        self.close()

    def close(self) -> None:
        """Close after what was written is flushed."""
        self.closed = True
        self.server.connections.discard(self)
        if self.transport is not None:
            self.transport.close()

    def _write(self, data: bytes | memoryview) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _too_large(self) -> str:
        return f"request body is larger than MAX_BODY_BYTES ({self.limits.max_body} bytes)"


def _finished(respond: Respond, future: asyncio.Future[Reply]) -> None:
    try:
        reply = future.result()
    except Exception:
        log.exception("unhandled error in the request handler")
        reply = error_reply(500, "internal error")
    respond(reply)


def _sent(reply: Reply) -> None:
    if reply.sent is not None:
        try:
            reply.sent()
        except Exception:
            log.exception("releasing a sent response failed")


@cache
def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
