"""The Gunicorn worker: one event loop (uvloop, or asyncio's) reads every connection, a thread pool runs the app.

Stock ``gthread`` hands a connection to a pool thread as soon as it is readable and reads the request on a
blocking socket, so clients that send half a request hold every thread, and its pure-Python loop costs
about 300 µs of CPU per request. Here the loop (``function.http11``, llhttp) reads heads and bodies itself
(about 10 µs per request), a thread is taken only by a complete request, and the model's inference routes
skip the WSGI stack (``function.fastlane``). See docs/serving.md for the measurements.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gunicorn.workers.base import Worker

from function import http11, wsgi_bridge

# Set from Settings by the Gunicorn config before the fork (the worker has no Settings of its own).
READ_TIMEOUT = 10.0
MAX_BODY = 10 * 1024 * 1024
DRAIN = 128 * 1024 * 1024
EVENT_LOOP = "uvloop"  # or "asyncio"
# Deadlines are seconds long and the arbiter's timeout many seconds: a few sweeps a second suffice.
SWEEP_SECONDS = 0.25


def body_timeout(exc: Exception) -> Any:
    """Flask handler for a body read that failed under another server: 400 (408 if it timed out)."""
    from function.errors import error_response

    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return error_response(408, "request body not received in time")
    return error_response(400, "the request body ended early")


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    """The worker's event loop: uvloop (libuv; its transports cut the loop's CPU per request), or asyncio's."""
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class ModelfnWorker(Worker):
    """Gunicorn worker on an event loop (uvloop by default): connections in the loop, requests on pool threads."""

    def run(self) -> None:
        """Serve until the arbiter stops this worker, then finish in-flight requests (graceful timeout)."""
        loop = new_loop(EVENT_LOOP)
        asyncio.set_event_loop(loop)
        self.log.info("Event loop: %s", EVENT_LOOP)
        pool = ThreadPoolExecutor(self.cfg.threads, thread_name_prefix="modelfn-http")
        from function import fastlane

        general = wsgi_bridge.handler_for(self.wsgi, self.cfg.forwarded_allow_ips)
        handler = fastlane.handler_for(self.wsgi, general)
        server = http11.Server(loop, handler, pool, self._limits(), fastlane.front_for(self.wsgi, loop))
        try:
            listeners = [loop.run_until_complete(self._listen(loop, server, s)) for s in self.sockets]
            loop.run_until_complete(self._serve(server))
            for listener in listeners:
                listener.close()
            server.stop()
            loop.run_until_complete(self._drain(server))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            loop.close()

    def _limits(self) -> http11.Limits:
        cfg = self.cfg
        return http11.Limits(
            request_line=cfg.limit_request_line or 1 << 30,
            fields=cfg.limit_request_fields,
            field_size=cfg.limit_request_field_size or 1 << 30,
            max_body=MAX_BODY,
            drain=DRAIN,
            read_timeout=READ_TIMEOUT,
            keepalive=cfg.keepalive,
        )

    async def _listen(self, loop: asyncio.AbstractEventLoop, server: http11.Server, listener: Any) -> Any:
        ssl = None
        if self.cfg.is_ssl:  # TLS usually ends at the platform's front; supported for a direct deployment
            from gunicorn.sock import ssl_context

            ssl = ssl_context(self.cfg)
        return await loop.create_server(
            lambda: http11.Connection(server), sock=listener.sock, ssl=ssl, backlog=self.cfg.backlog
        )

    async def _serve(self, server: http11.Server) -> None:
        """Heartbeat, deadlines and the arbiter's signals (``alive``), a few times a second."""
        while self.alive:
            self.notify()
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                return
            if self.max_requests and server.served >= self.max_requests:
                self.log.info("Autorestarting worker after current request.")
                return
            server.sweep(time.monotonic())
            await asyncio.sleep(SWEEP_SECONDS)

    async def _drain(self, server: http11.Server) -> None:
        """Wait for busy connections to be answered, at most ``graceful_timeout``."""
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while server.busy() and time.monotonic() < deadline:
            self.notify()
            await asyncio.sleep(0.05)
