"""The Gunicorn worker over raw sockets: stalled clients never starve probes; Gunicorn's own errors are JSON."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.function.test_server import Server, start_server

STALLED = 32
PREDICT_HEAD = "POST /v1/models/lin:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            s.proc.terminate()
            s.proc.wait(30)


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def probe(server: Server) -> int:
    """One /healthz on a fresh connection; 30 s bounds a starved server (stock gthread never answers)."""
    return server.get("/healthz")[0]


def raw(server: Server, data: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send bytes, read the whole response: status line, headers, body."""
    with connect(server) as sock:
        sock.sendall(data)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return lines[0], headers, body


LOOPS = ["uvloop", "asyncio"]  # the deadlines, reads and pauses of http11 must hold on either event loop


@pytest.mark.parametrize("loop", LOOPS)
def test_stalled_heads_hold_no_thread(tmp_path, published, servers, loop):
    # Four threads, 32 clients that send half a request head and stop: stock gthread gives each one a
    # thread blocked in recv(), so every probe waits as long as they stall (here: longer than the test).
    server = start_server(tmp_path, f"{published}/lin", THREADS="4", REQUEST_READ_TIMEOUT="300", EVENT_LOOP=loop)
    servers.append(server)
    assert f"Event loop: {loop}" in server.log.read_text()
    stalled = [connect(server) for _ in range(STALLED)]
    for sock in stalled:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no blank line: the head never completes
    try:
        assert [probe(server) for _ in range(10)] == [200] * 10
        assert server.post("/v1/models/lin:predict", {"instances": [[1.0, 2.0, 3.0, 4.0]]})[0] == 200
        stalled[0].sendall(b"\r\n")  # a stalled client that finishes is served normally
        assert stalled[0].recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        for sock in stalled:
            sock.close()


@pytest.mark.parametrize("loop", LOOPS)
def test_stalled_bodies_time_out_and_free_their_threads(tmp_path, published, servers, loop):
    env = {"THREADS": "4", "REQUEST_READ_TIMEOUT": "1", "KEEPALIVE_SECONDS": "2", "EVENT_LOOP": loop}
    server = start_server(tmp_path, f"{published}/lin", **env)
    servers.append(server)
    silent = [connect(server) for _ in range(8)]  # never send a byte: closed like idle keep-alive connections
    stalled = [connect(server) for _ in range(8)]  # twice the threads: each holds one while its body stalls
    for sock in stalled:
        sock.sendall(f'{PREDICT_HEAD}Content-Length: 100\r\n\r\n{{"inst'.encode())
    try:
        assert [probe(server) for _ in range(5)] == [200] * 5  # answered once the stalled reads time out
        for sock in stalled:  # every stalled request was closed by the server (with an error, never a hang)
            data = sock.recv(65536)
            while data and (more := sock.recv(65536)):
                data += more
            assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:200]
        assert [sock.recv(65536) for sock in silent] == [b""] * len(silent)  # closed quietly, no response
    finally:
        for sock in stalled + silent:
            sock.close()
    # A head that never completes is answered 408 (JSON) after the read timeout, too.
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        response = sock.recv(65536)
    assert response.startswith(b"HTTP/1.1 408") and b'{"error": "request not received in time"}' in response


MANY_HEADERS = "".join(f"X-H{i}: v\r\n" for i in range(120))
CHUNKED = "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
BAD_REQUESTS = {
    "request line too long": f"GET /{'a' * 5000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "negative content-length": f"{PREDICT_HEAD}Content-Length: -1\r\n\r\n".encode(),
    "content-length and chunked": f"{PREDICT_HEAD}Content-Length: 4\r\n{CHUNKED}".encode(),
    "too many headers": (
        "GET /healthz HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-H{i}: v\r\n" for i in range(120)) + "\r\n"
    ).encode(),
    "header too large": f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {'b' * 9000}\r\n\r\n".encode(),
    "garbage request line": b"\x16\x03\x01garbage SECRET_TOKEN_abc123\r\n\r\n",
    "bad method": b"G(E)T /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.fixture(scope="module")
def module_server(tmp_path_factory, request) -> Iterator[Server]:
    from tests.models import linear_onnx, publish_model

    tmp = tmp_path_factory.mktemp("worker")
    store = tmp / "store"
    store.mkdir()
    publish_model(store.as_uri(), linear_onnx(tmp / "m.onnx"))
    server = start_server(tmp, f"{store.as_uri()}/lin")
    yield server
    server.proc.terminate()
    server.proc.wait(30)


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_gunicorn_errors_are_json_and_never_echo_the_request(module_server, case):
    status, headers, body = raw(module_server, BAD_REQUESTS[case])
    code = int(status.split()[1])
    assert code in (400, 431, 501), status
    assert headers["content-type"] == "application/json"
    document = json.loads(body)
    assert set(document) == {"error"} and document["error"]
    for echoed in ("aaaa", "bbbb", "SECRET", "X-H1", "garbage", "G(E)T", "-1"):
        assert echoed not in body.decode(), body
    assert b"<html" not in body
    assert module_server.get("/healthz")[0] == 200  # the worker survives every one of them


def test_keepalive_follows_the_setting(module_server):
    with connect(module_server) as sock:  # two requests on one connection: keep-alive is on by default
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            deadline = time.monotonic() + 30  # bounds a hang only
            data = b""
            while b'"alive"' not in data and time.monotonic() < deadline:
                data += sock.recv(65536)
            assert data.startswith(b"HTTP/1.1 200")
