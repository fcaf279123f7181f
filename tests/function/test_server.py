"""The real server: ``modelfn serve`` (Gunicorn, one worker with many threads) over HTTP, with the V2 client."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.emulators import free_port
from tests.models import expected_logits

X = [[1.0, 2.0, 3.0, 4.0]]


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    port: int
    log: Path

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def metric(self, name: str) -> float:
        text = self.get("/metrics")[1].decode()
        match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
        assert match, f"{name} missing"
        return float(match.group(1))


def start_server(tmp_path: Path, model_uri: str, **env: str) -> Server:
    port = free_port()
    log = tmp_path / "server.log"
    full_env = {
        **os.environ,
        "MODEL_URI": model_uri,
        "CACHE_DIR": str(tmp_path / "cache"),
        "GRACEFUL_TIMEOUT": "20",
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "function.cli", "serve", "--port", str(port)],
        env=full_env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Server(proc, f"http://127.0.0.1:{port}", port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if server.get("/healthz")[0] == 200:
                return server
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server did not start:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server(tmp_path: Path, published: str) -> Iterator[Server]:
    s = start_server(tmp_path, f"{published}/lin", LOAD_MODE="lazy", LOAD_WAIT_SECONDS="30")
    yield s
    if s.proc.poll() is None:
        s.proc.terminate()
        s.proc.wait(30)


def test_burst_downloads_and_loads_once_per_container(server: Server):
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda _: server.post("/v1/models/lin:predict", {"instances": X}), range(32)))
    assert [status for status, _ in results] == [200] * 32, (results, server.log.read_text()[-3000:])
    metrics = server.get("/metrics")[1].decode()
    assert server.metric("modelfn_artifact_downloads_total") == 1, metrics
    assert server.metric("modelfn_model_load_seconds_count") == 1  # one model copy in the container
    assert server.metric("modelfn_start_to_ready_seconds") > 0
    assert server.metric("modelfn_batch_items_total") == 32  # every row went through the one engine


def test_tritonclient_v2_round_trip_json_and_binary(server: Server):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    assert client.is_server_live()
    x = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, -1.0]], dtype=np.float32)
    inp = httpclient.InferInput("features", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=False)
    out = httpclient.InferRequestedOutput("logits", binary_data=False)
    result = client.infer("lin", [inp], outputs=[out], model_version="1.0.0", request_id="r1")
    np.testing.assert_allclose(result.as_numpy("logits"), expected_logits(x), rtol=1e-6)
    assert result.get_response()["id"] == "r1"
    binary_in = httpclient.InferInput("features", list(x.shape), "FP32")
    binary_in.set_data_from_numpy(x)  # the client's default: the binary tensor extension
    binary = client.infer("lin", [binary_in])  # no outputs named: the client asks for all of them binary
    np.testing.assert_allclose(binary.as_numpy("logits"), expected_logits(x), rtol=1e-6)
    assert "binary_data_size" in binary.get_output("logits")["parameters"]
    # The model is loaded by now (the infers above); poll anyway so a regression shows as a failure, not a hang.
    deadline = time.monotonic() + 30
    while not (client.is_server_ready() and client.is_model_ready("lin")):
        assert time.monotonic() < deadline, server.log.read_text()[-3000:]
        time.sleep(0.05)
    meta = client.get_model_metadata("lin")
    assert meta["inputs"][0]["name"] == "features"
    assert client.get_server_metadata()["name"] == "modelfn"


def test_sigterm_finishes_in_flight_request(server: Server):
    assert server.post("/v1/models/lin:predict", {"instances": X})[0] == 200
    body = json.dumps({"instances": X}).encode()
    half = len(body) // 2
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        head = (
            f"POST /v1/models/lin:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        sock.sendall(head + body[:half])  # the request is now in flight, blocked reading its body
        time.sleep(0.5)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        sock.sendall(body[half:])
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    assert server.proc.wait(timeout=30) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        ([], {"DEVICE": "tpu"}, "DEVICE"),
        (["--model-uri", "nope"], {}, "MODEL_URI"),
        (["--port", "0"], {}, "port"),
        ([], {"WORKERS": "2"}, "model copy"),
        (["--threads", "0"], {}, "threads"),
        # a model-level check has no field location: the message itself names the variables
        ([], {"EVENTS_INPUT_URI": "s3://b/in", "EVENTS_OUTPUT_URI": "s3://b/out"}, "EVENTS_SECRET"),
    ],
)
def test_serve_rejects_bad_configuration(args, env, words):
    result = subprocess.run(
        [sys.executable, "-m", "function.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert result.returncode == 2 and words.lower() in result.stderr.lower() and "Traceback" not in result.stderr
