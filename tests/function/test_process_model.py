"""One model per container through a real Gunicorn: hot swap under c=32 load, --preload, one worker only."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.emulators import free_port
from tests.function.test_server import Server, start_server
from tests.models import B, expected_logits, linear_onnx, publish_model

X = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
BIAS = {"1.0.0": B, "2.0.0": B + 10}
CLIENTS = 32


@dataclass
class Reply:
    started: int  # position in one global order of events (no clocks compared)
    ended: int
    status: int
    version: str | None
    logits: np.ndarray | None


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        server.proc.wait(30)


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + 60  # bounds a hang only
    while server.get("/readyz")[0] != 200:
        assert time.monotonic() < deadline, server.log.read_text()[-3000:]
        time.sleep(0.05)


@pytest.fixture
def raw_store(store_dir: Path, tmp_path: Path) -> str:
    uri = store_dir.as_uri()
    publish_model(uri, linear_onnx(tmp_path / "v1.onnx", BIAS["1.0.0"]), version="1.0.0")
    return uri


@pytest.fixture
def running(request) -> Iterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for s in servers:
        stop(s)


def load(
    server: Server, order: itertools.count, lock: threading.Lock, until: threading.Event, replies: list[Reply]
) -> None:
    """One client: V2 JSON infers on a kept-alive connection until ``until`` is set."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    body = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": X[0].tolist()}]})
    while not until.is_set():
        with lock:
            started = next(order)
        conn.request("POST", "/v2/models/lin/infer", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        doc = json.loads(response.read())
        with lock:
            ended = next(order)
        ok = response.status == 200
        logits = np.array(doc["outputs"][0]["data"], np.float32).reshape(1, 3) if ok else None
        replies.append(Reply(started, ended, response.status, doc.get("model_version"), logits))
    conn.close()


@pytest.mark.parametrize("preload", [False, True], ids=["fork-then-load", "preload"])
def test_hot_swap_under_load_reaches_the_whole_container_with_zero_failures(tmp_path, raw_store, running, preload):
    env = {"MODEL_POLL_SECONDS": "0.3"}
    if preload:
        env["GUNICORN_CMD_ARGS"] = "--preload"  # polling must run in the worker, not die with the master's thread
    server = start_server(tmp_path, f"{raw_store}/lin", **env)
    running.append(server)
    wait_ready(server)
    order, lock, until = itertools.count(), threading.Lock(), threading.Event()
    results: list[list[Reply]] = [[] for _ in range(CLIENTS)]

    def client(k: int) -> None:
        load(server, order, lock, until, results[k])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)  # load is running (how much does not matter)
        publish_model(raw_store, linear_onnx(tmp_path / "v2.onnx", BIAS["2.0.0"]), version="2.0.0")
        deadline = time.monotonic() + 60  # bounds a hang only
        while not any(r.version == "2.0.0" for rs in results for r in rs[-5:]) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # keep loading the new version under c=32
    finally:
        until.set()
        for t in threads:
            t.join(60)
    replies = [r for rs in results for r in rs]
    assert replies and all(r.status == 200 for r in replies), [r.status for r in replies if r.status != 200][:5]
    for r in replies:  # each answer computed by the version it names, never a mix
        np.testing.assert_allclose(r.logits, expected_logits(X) - B + BIAS[r.version], rtol=1e-5)
    first_new = min(r.ended for r in replies if r.version == "2.0.0")
    late = [r for r in replies if r.started > first_new]
    assert late and all(r.version == "2.0.0" for r in late)  # one model per container: no worker lags behind
    assert server.metric("modelfn_model_load_seconds_count") == 2  # v1 once, v2 once: one copy each


def test_preload_serves_and_the_master_never_loads(tmp_path, published, running):
    server = start_server(tmp_path, f"{published}/lin", GUNICORN_CMD_ARGS="--preload")
    running.append(server)
    wait_ready(server)
    assert server.post("/v1/models/lin:predict", {"instances": X.tolist()})[0] == 200
    assert server.metric("modelfn_model_load_seconds_count") == 1  # a load in the master would count too
    assert server.metric("modelfn_artifact_downloads_total") == 1


@pytest.mark.parametrize("how", ["env", "gunicorn-args"])
def test_more_than_one_worker_is_refused_at_start(tmp_path, published, how):
    env = {**os.environ, "MODEL_URI": f"{published}/lin", "CACHE_DIR": str(tmp_path / "cache")}
    if how == "env":
        env["WORKERS"] = "3"
        command = [sys.executable, "-m", "gunicorn", "-c", "python:function.gunicorn_conf", "function.wsgi:app"]
    else:
        env["GUNICORN_CMD_ARGS"] = "--workers 3"
        command = [sys.executable, "-m", "function.cli", "serve", "--port", str(free_port())]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "model copy" in output or "copies of the model" in output, output[-2000:]
