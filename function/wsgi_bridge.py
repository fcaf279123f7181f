"""A complete ``http11.Request`` -> the WSGI app (Flask) -> an ``http11.Reply``, on a pool thread."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable
from ipaddress import ip_address, ip_network
from typing import Any
from urllib.parse import unquote_to_bytes

from function.http11 import Handler, Reply, Request

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# Gunicorn's secure_scheme_headers: trusted only from forwarded_allow_ips.
SECURE_SCHEME = {"x-forwarded-proto": "https", "x-forwarded-protocol": "ssl", "x-forwarded-ssl": "on"}


def trusted(allow: str | list[str]) -> Callable[[Any], bool]:
    """Gunicorn's ``forwarded_allow_ips`` (``*``, addresses or networks) as a predicate on the peer."""
    entries = [e.strip() for e in (allow.split(",") if isinstance(allow, str) else allow) if e.strip()]
    if "*" in entries:
        return lambda peer: True
    networks = [ip_network(e, strict=False) for e in entries]

    def check(peer: Any) -> bool:
        try:
            return any(ip_address(peer[0]) in net for net in networks)
        except (TypeError, ValueError, IndexError):
            return isinstance(peer, str | bytes)  # a UNIX socket peer: local, as Gunicorn treats it

    return check


def environ_for(request: Request, secure_from: Callable[[Any], bool]) -> dict[str, Any]:
    """The WSGI environ Gunicorn would build (header names with ``_`` dropped, as its default does)."""
    path, _, query = request.target.partition("?")
    peer, local = request.peer, request.local
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "RAW_URI": request.target,
        "REQUEST_URI": request.target,
        "SERVER_PROTOCOL": f"HTTP/{request.version}",
        "SERVER_NAME": str(local[0]) if isinstance(local, tuple) else "localhost",
        "SERVER_PORT": str(local[1]) if isinstance(local, tuple) else "",
        "REMOTE_ADDR": str(peer[0]) if isinstance(peer, tuple) else "",
        "REMOTE_PORT": str(peer[1]) if isinstance(peer, tuple) else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(request.body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(request.body)),
    }
    for name, value in request.headers:
        if "_" in name or name in ("content-length", "transfer-encoding"):
            continue  # the body is complete: its length is what was read
        if name == "content-type":
            environ["CONTENT_TYPE"] = value
            continue
        key = "HTTP_" + name.upper().replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
        if SECURE_SCHEME.get(name) == value.lower() and secure_from(peer):
            environ["wsgi.url_scheme"] = "https"
    return environ


def handler_for(app: WSGIApp, forwarded_allow_ips: str | list[str]) -> Handler:
    """Run ``app`` for one request; its whole response body is collected (and the iterable closed) here."""
    secure_from = trusted(forwarded_allow_ips)

    def handle(request: Request) -> Reply:
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return written.append

        result = app(environ_for(request, secure_from), start_response)
        close = getattr(result, "close", None)
        try:
            chunks = written + [bytes(c) for c in result if c]
        except BaseException:
            if close is not None:
                close()
            raise
        status, headers = started
        code, _, reason = status.partition(" ")
        # Closed once sent: a large body's memory budget is held until then (function.bodylimit).
        return Reply(int(code), list(headers), chunks, reason or None, sent=close)

    return handle
