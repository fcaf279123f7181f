"""The fast lane answers exactly as the Flask views do: status, body, headers, metrics, for good and bad requests.

Each case runs three ways: the Flask test client (the views), the event-loop front in-process
(``fastlane.front_for`` on a real asyncio loop, the batching engine's asynchronous path), and the real server
over HTTP (the worker takes these routes through the front).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from function import fastlane
from function.app import create_app
from function.http11 import Reply, Request
from tests.conftest import wait_ready
from tests.function.test_server import Server, start_server
from tests.models import expected_logits, linear_onnx, publish_model

X = [[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.5, 0.0]]
V2 = "/v2/models/lin/infer"
JSON = {"Content-Type": "application/json"}


def _tensor(x: Any, **extra: Any) -> dict[str, Any]:
    arr = np.asarray(x, dtype=np.float32)
    return {"name": "features", "shape": list(arr.shape), "datatype": "FP32", **extra}


def _binary(x: Any, binary_out: bool) -> tuple[bytes, dict[str, str]]:
    arr = np.asarray(x, dtype="<f4")
    header: dict[str, Any] = {"inputs": [_tensor(arr, parameters={"binary_data_size": arr.nbytes})]}
    if binary_out:
        header["outputs"] = [{"name": "logits", "parameters": {"binary_data": True}}]
    head = json.dumps(header).encode()
    return head + arr.tobytes(), {"Inference-Header-Content-Length": str(len(head))}


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def cases() -> dict[str, tuple[str, bytes, dict[str, str]]]:
    """name -> (path, body, headers)."""
    good = {"inputs": [_tensor(X, data=np.ravel(X).tolist())]}
    bin_in_out, bin_headers = _binary(X, binary_out=True)
    bin_in, bin_in_headers = _binary(X, binary_out=False)
    return {
        "v2 json": (V2, _json(good), JSON),
        "v2 json, id and requested output": (V2, _json({**good, "id": "r-1", "outputs": [{"name": "logits"}]}), JSON),
        "v2 json, no content type": (V2, _json(good), {}),
        "v2 json, query string": (V2 + "?x=1", _json(good), JSON),
        "v2 json, versioned": ("/v2/models/lin/versions/1.0.0/infer", _json(good), JSON),
        "v2 binary in and out": (V2, bin_in_out, {"Content-Type": "application/octet-stream", **bin_headers}),
        "v2 binary in, json out": (V2, bin_in, bin_in_headers),
        "v1": ("/v1/models/lin:predict", _json({"instances": X}), JSON),
        "v1 with a request id": ("/v1/models/lin:predict", _json({"instances": X}), {**JSON, "X-Request-Id": "abc-1"}),
        "unknown model": ("/v2/models/nope/infer", _json(good), JSON),
        "unknown version": ("/v2/models/lin/versions/9.9.9/infer", _json(good), JSON),
        "v1 wrong content type": ("/v1/models/lin:predict", _json({"instances": X}), {"Content-Type": "text/plain"}),
        "binary header on v1": ("/v1/models/lin:predict", bin_in, {**JSON, **bin_in_headers}),
        "malformed json": (V2, b'{"inputs": [', JSON),
        "not an object": (V2, b"[1, 2]", JSON),
        "missing inputs": (V2, _json({"id": "x"}), JSON),
        "unknown field": (V2, _json({**good, "extra": 1}), JSON),
        "wrong shape": (V2, _json({"inputs": [_tensor([[1.0, 2.0]], data=[1.0, 2.0])]}), JSON),
        "data do not fill shape": (V2, _json({"inputs": [{**_tensor(X), "data": [1.0]}]}), JSON),
        "wrong datatype": (V2, _json({"inputs": [{**_tensor(X), "datatype": "INT8", "data": [1] * 8}]}), JSON),
        "bad binary header length": (V2, bin_in, {"Inference-Header-Content-Length": "99999"}),
        "binary size past the body": (V2, bin_in[:-4], bin_in_headers),
        "v1 ragged instances": ("/v1/models/lin:predict", _json({"instances": [[1.0, 2.0], [1.0]]}), JSON),
    }


def normalised(status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], Any]:
    """What must agree: status, the headers that carry meaning, and the body (JSON parsed, else raw)."""
    keep = {"content-type", "inference-header-content-length", "x-model-version", "x-model-role", "retry-after"}
    picked = {k.lower(): v for k, v in headers.items() if k.lower() in keep}
    given = headers.get("X-Request-Id") or headers.get("x-request-id")
    picked["x-request-id"] = given if given == "abc-1" else "<generated>" if given else "<missing>"
    length = int(picked.get("inference-header-content-length", 0))
    if length:
        return status, picked, (json.loads(body[:length]), body[length:])
    return status, picked, json.loads(body)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("fastlane")
    (tmp / "store").mkdir()
    uri = (tmp / "store").as_uri()
    publish_model(uri, linear_onnx(tmp / "m.onnx"), postprocess={"softmax": True, "labels": ["a", "b", "c"]})
    return uri


@pytest.fixture(scope="module")
def flask_answers(store: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from function.settings import Settings

    app = create_app(Settings(model_uri=f"{store}/lin", cache_dir=tmp_path_factory.mktemp("cache")))
    client = app.test_client()
    wait_ready(client)
    answers = {}
    for name, (path, body, headers) in cases().items():
        r = client.post(path, data=body, headers=headers)
        answers[name] = normalised(r.status_code, dict(r.headers), r.data)
    return answers


@pytest.fixture(scope="module")
def running(store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("srv"), f"{store}/lin")
    for _ in range(300):
        if server.get("/readyz")[0] == 200:
            break
        threading.Event().wait(0.1)
    yield server
    server.proc.terminate()
    server.proc.wait(30)


def test_the_expected_answers_are_right(flask_answers):
    status, _, body = flask_answers["v2 json"]
    assert status == 200
    np.testing.assert_allclose(body["outputs"][0]["data"], expected_logits(np.asarray(X)).ravel(), rtol=1e-5)
    assert [flask_answers[n][0] for n in ("unknown model", "unknown version", "v1 wrong content type")] == [404] * 2 + [
        415
    ]
    refused = [n for n in list(cases())[9:] if n != "unknown field"]  # V2 allows extra top-level fields
    assert all(400 <= flask_answers[n][0] < 500 for n in refused), {n: flask_answers[n][0] for n in refused}


def _front_reply(app: Any, loop: asyncio.AbstractEventLoop, path: str, body: bytes, headers: dict[str, str]) -> Reply:
    front = fastlane.front_for(app, loop)
    assert front is not None
    request = Request("POST", path, "1.1", [(k.lower(), v) for k, v in headers.items()], body, None, None)
    done: asyncio.Future[Reply] = loop.create_future()

    def take() -> None:
        if not front(request, done.set_result):
            done.set_exception(AssertionError("the fast lane did not take the request"))

    loop.call_soon(take)
    return loop.run_until_complete(asyncio.wait_for(done, 30))


def test_the_event_loop_front_answers_like_the_flask_views(store, flask_answers, tmp_path):
    from function.settings import Settings

    app = create_app(Settings(model_uri=f"{store}/lin", cache_dir=tmp_path / "cache"))
    wait_ready(app.test_client())
    loop = asyncio.new_event_loop()
    try:
        for name, (path, body, headers) in cases().items():
            reply = _front_reply(app, loop, path, body, headers)
            got = normalised(reply.status, dict(reply.headers), b"".join(reply.body))
            assert got == flask_answers[name], name
    finally:
        loop.close()


def _http(server: Server, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def test_the_real_server_answers_like_the_flask_views(running, flask_answers):
    for name, (path, body, headers) in cases().items():
        assert normalised(*_http(running, path, body, headers)) == flask_answers[name], name
    metrics = running.get("/metrics")[1].decode()
    counted = [line for line in metrics.splitlines() if line.startswith("modelfn_http_requests_total{")]
    assert any('route="/v2/models/<name>/infer"' in line and 'status="200"' in line for line in counted), counted
    assert any('route="/v1/models/<name>:predict"' in line and 'status="415"' in line for line in counted), counted


def test_pipelined_requests_are_answered_in_order_on_one_connection(running):
    path, body, _ = cases()["v1"]
    good = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    bad = b"POST /v2/models/nope/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    bad += b"Content-Length: 2\r\n\r\n{}"
    probe = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", running.port), timeout=30) as sock:
        sock.sendall(good + bad + good + probe)  # four requests in one write
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    statuses = [int(m.group(1)) for m in re.finditer(rb"HTTP/1\.1 (\d{3}) ", data)]  # bodies follow heads directly
    assert statuses == [200, 400, 200, 200]


def test_requests_sent_one_by_one_before_reading_then_a_half_close_are_all_answered(running):
    path, body, _ = cases()["v1"]
    good = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    for _ in range(10):  # the later writes land while an earlier request is in flight, or queued behind it
        with socket.create_connection(("127.0.0.1", running.port), timeout=30) as sock:
            for _ in range(3):
                sock.sendall(good)
            sock.sendall(good[:20])
            sock.sendall(good[20:])
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # answered on a pool thread
            sock.shutdown(socket.SHUT_WR)  # half-close: the answers must still come, then the connection closes
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert [int(m.group(1)) for m in re.finditer(rb"HTTP/1\.1 (\d{3}) ", data)] == [200] * 5
    for _ in range(20):  # the end of input arrives while the one request is still being answered
        with socket.create_connection(("127.0.0.1", running.port), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_head_expect_continue_and_http10(running):
    with socket.create_connection(("127.0.0.1", running.port), timeout=30) as sock:
        path, body, _ = cases()["v1"]
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
        sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"\r\n\r\n")  # no body after the head
    with socket.create_connection(("127.0.0.1", running.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):  # HTTP/1.0 without keep-alive: the server closes
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b"Connection: close" in data


def test_a_large_response_arrives_whole(running, tmp_path: Path):
    rows = np.random.default_rng(1).standard_normal((60000, 4)).round(3)
    status, _, body = _http(running, "/v1/models/lin:predict", _json({"instances": rows.tolist()}), JSON)
    assert status == 200
    predictions = json.loads(body)["predictions"]  # several MB, sent in pieces as the socket drains
    assert len(predictions) == len(rows)


def test_a_fault_in_the_event_loop_front_is_a_500_and_the_connection_serves_on():
    from concurrent.futures import ThreadPoolExecutor

    from function import http11

    loop = asyncio.new_event_loop()
    calls: list[str] = []

    def front(request: Request, respond: Any) -> bool:
        calls.append(request.target)
        if request.target == "/boom":
            raise RuntimeError("a bug in the front")
        return False

    server = http11.Server(loop, lambda r: Reply(200, [], [b"pool"]), ThreadPoolExecutor(2), http11.Limits(), front)
    listener = loop.run_until_complete(loop.create_server(lambda: http11.Connection(server), "127.0.0.1", 0))
    port = listener.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 500") and b'{"error": "internal error"}' in data
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /fine HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert calls == ["/boom", "/fine"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
