"""The Gunicorn worker: ``gthread`` that gives a pool thread only to requests whose headers arrived.

Stock ``gthread`` hands a connection to a pool thread as soon as it is readable and then reads the
request on a blocking socket, so a few clients that send half a request hold every thread and even
``/healthz`` starves. Here the event loop buffers request heads itself (no thread held), drops a head
that does not complete within ``READ_TIMEOUT`` with a 408, and a pool thread's socket reads time out
after ``READ_TIMEOUT`` without progress (a stalled body). Gunicorn's own error pages come back as JSON.
"""

from __future__ import annotations

import contextlib
import errno
import json
import selectors
import socket
import time
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import TConn, ThreadWorker

READ_TIMEOUT = 10.0  # set from Settings.request_read_timeout by the Gunicorn config before the fork
HEAD_LIMIT = 64 * 1024  # beyond this the parser takes over (and answers 431 for oversized heads)
# gthread does its housekeeping (heartbeat file, keep-alive and head deadline sweeps) on every turn of the
# event loop, i.e. once or twice per request; deadlines are seconds long, so a few sweeps a second suffice.
SWEEP_SECONDS = 0.25
HEARTBEAT_SECONDS = 1.0
_REASONS = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 431: "Request Header Fields Too Large"}
_REASONS |= {500: "Internal Server Error", 501: "Not Implemented"}


def error_for(exc: BaseException) -> tuple[int, str]:
    """Status and a message that never echoes the request for an error Gunicorn's parser raised."""
    if isinstance(exc, http_errors.LimitRequestHeaders):
        return 431, "request headers too many or too large"
    if isinstance(exc, http_errors.LimitRequestLine):
        return 400, "request line too long"
    if isinstance(exc, http_errors.UnsupportedTransferCoding):
        return 501, "unsupported transfer coding"
    if isinstance(exc, http_errors.ForbiddenProxyRequest):
        return 403, "request forbidden"
    if isinstance(exc, http_errors.ParseException | http_errors.InvalidChunkSize | http_errors.ChunkMissingTerminator):
        return 400, "malformed HTTP request"
    return 500, "internal error"


def json_error(status: int, message: str) -> bytes:
    """A complete HTTP response with the service's JSON error body; the connection closes."""
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def body_timeout(exc: Exception) -> Any:
    """Flask handler: a request body that stalled past ``READ_TIMEOUT`` is a 408, not a server error."""
    from function.errors import error_response

    # Werkzeug reports a failed body read as ClientDisconnected (400); the timeout is its context.
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return error_response(408, "request body not received in time")
    return error_response(400, "the request body ended early")


class TimedReads:
    """The parser's view of a socket: remembers a read that timed out, so the connection is not reused."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.timed_out = False

    def recv(self, size: int) -> bytes:
        """``socket.recv``; a timeout marks the connection before it propagates (to the app: a 408)."""
        try:
            return self.sock.recv(size)
        except TimeoutError:
            self.timed_out = True
            raise


class ModelfnWorker(ThreadWorker):
    """``gthread`` with buffered request heads, read timeouts and JSON error pages."""

    def init_process(self) -> None:
        """Track connections whose head is still arriving (connection -> deadline)."""
        self._heads: dict[TConn, float] = {}
        self._next_sweep = self._next_heartbeat = 0.0
        super().init_process()

    def notify(self) -> None:
        """Touch the heartbeat file at most once a second (the arbiter's timeout is many seconds)."""
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_SECONDS
            super().notify()

    def accept(self, server: Any, listener: socket.socket) -> None:
        """Accept as ``gthread`` does, but give a connection that never sends anything a deadline too."""
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        conn = TConn(self.cfg, sock, client, server)
        self.nr_conns += 1
        # Idle like a kept-alive connection until its first bytes; then the head has READ_TIMEOUT.
        self._heads[conn] = time.monotonic() + max(self.cfg.keepalive, READ_TIMEOUT)
        with self._lock:
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))

    def on_client_socket_readable(self, conn: TConn, client: socket.socket) -> None:
        """Read what arrived without blocking; hand the connection to the pool once its head is complete."""
        if self.cfg.is_ssl:  # the head is encrypted: the stock path (TLS ends at the platform's front anyway)
            super().on_client_socket_readable(conn, client)
            return
        with self._lock:
            self.poller.unregister(client)
            if conn.initialized and conn not in self._heads:
                try:
                    self._keep.remove(conn)
                except ValueError:  # the keep-alive reaper got it first
                    return
        if self._buffer_head(conn):
            self._heads.pop(conn, None)
            self.enqueue_req(conn)

    def _buffer_head(self, conn: TConn) -> bool:
        try:
            data = conn.sock.recv(HEAD_LIMIT)
        except BlockingIOError:
            data = None
        except OSError:
            data = b""
        if data == b"":  # the client went away
            self._drop(conn)
            return False
        previous = getattr(conn, "head", b"")
        if data and not previous:  # the first bytes of a request start its head's clock
            self._heads[conn] = time.monotonic() + READ_TIMEOUT
        head = conn.head = previous + (data or b"")
        if b"\r\n\r\n" in head or len(head) >= HEAD_LIMIT:
            return True
        self._heads.setdefault(conn, time.monotonic() + max(self.cfg.keepalive, READ_TIMEOUT))
        with self._lock:
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))
        return False

    def enqueue_req(self, conn: TConn) -> None:
        """Give the buffered head to the parser, bound every blocking read, then queue for a thread."""
        if self.cfg.is_ssl:
            super().enqueue_req(conn)
            return
        conn.init()
        head, conn.head = getattr(conn, "head", b""), b""
        if head:
            conn.parser.unreader.unread(head)
        if not isinstance(conn.parser.unreader.sock, TimedReads):
            conn.parser.unreader.sock = TimedReads(conn.sock)
        conn.sock.settimeout(READ_TIMEOUT)  # after init(), which makes the socket blocking without a timeout
        self._wrap_future(self.tpool.submit(self.handle, conn), conn)

    def murder_keepalived(self) -> None:
        """Also drop stalled heads (with a 408) and connections that never sent a byte (quietly)."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_SECONDS
        super().murder_keepalived()
        for conn in [c for c, deadline in self._heads.items() if deadline < now]:
            with self._lock, contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(conn.sock)
            if getattr(conn, "head", b""):
                self._write(conn.sock, json_error(408, "request not received in time"))
            self._drop(conn)

    def _drop(self, conn: TConn) -> None:
        self._heads.pop(conn, None)
        self.nr_conns -= 1
        conn.close()

    def handle(self, conn: TConn) -> tuple[bool, TConn]:
        """Serve one request; a read that timed out closes the connection quietly (408 if nothing was sent)."""
        try:
            return self._handle_bounded(conn)
        except TimeoutError:
            self.log.info("client too slow; connection closed")
            self._write(conn.sock, json_error(408, "request not received in time"))
            return False, conn

    def _handle_bounded(self, conn: TConn) -> tuple[bool, TConn]:
        req = None
        try:
            req = next(conn.parser)
            if not req:
                return False, conn
            keepalive = self.handle_request(req, conn)
            # The app answered a request whose body timed out: what remains of the body is unread.
            return keepalive and not conn.parser.unreader.sock.timed_out, conn
        except TimeoutError:
            if req is not None:  # the app may have answered already: never write a second response
                self.log.info("client too slow; connection closed")
                return False, conn
            raise
        except (http_errors.NoMoreData, StopIteration):
            return False, conn
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
            return False, conn
        except Exception as exc:
            self.handle_error(req, conn.sock, conn.client, exc)
            return False, conn

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        """Gunicorn's parse and server errors as the service's JSON body, never echoing the request."""
        status, message = error_for(exc)
        if status >= 500 and status != 501:
            self.log.exception("Error handling request")
        else:
            self.log.warning("invalid request: %s", type(exc).__name__)
        self._write(client, json_error(status, message))

    def _write(self, sock: socket.socket, data: bytes) -> None:
        try:
            util.write_nonblock(sock, data)
        except OSError:
            self.log.debug("could not send the error response")
