"""Large bodies against the real server (Gunicorn) and real clients: a readable 413 (#10.7, #10.29) and bounded
memory for the largest valid requests (#10.28)."""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.function.test_server import Server, start_server

MAX_BODY = 10 * 1024 * 1024  # the default MAX_BODY_BYTES
V1 = "/v1/models/lin:predict"


@pytest.fixture
def one_worker(tmp_path: Path, published: str):
    # Load eagerly and give the budget's wait (TIMEOUT / 2) room on a slow, shared machine.
    s = start_server(tmp_path, f"{published}/lin", WORKERS="1", THREADS="8", TIMEOUT="300")
    ready(s)
    yield s
    s.proc.terminate()
    s.proc.wait(30)


def ready(server: Server) -> None:
    for _ in range(300):
        if server.get("/readyz")[0] == 200:
            return
        threading.Event().wait(0.1)
    raise AssertionError("server not ready")


@pytest.mark.parametrize("connection", ["close", "keep-alive"])
def test_a_64_mb_post_with_content_length_gets_a_readable_413_requests(one_worker: Server, connection: str):
    # With "Connection: close" the server closes after answering: unread bytes would reset the connection.
    headers = {"Content-Type": "application/json", "Connection": connection}
    r = requests.post(one_worker.url + V1, data=b"x" * (64 * 1000 * 1000), headers=headers, timeout=120)
    assert r.status_code == 413
    assert "MAX_BODY_BYTES" in r.json()["error"]
    assert requests.get(one_worker.url + "/healthz", timeout=10).status_code == 200


def test_a_64_mb_post_gets_a_readable_413_http_client_even_when_the_connection_closes(one_worker: Server):
    # http.client sends the whole body before reading: a server that closes on unread bytes breaks the pipe.
    conn = http.client.HTTPConnection("127.0.0.1", one_worker.port, timeout=120)
    headers = {"Content-Type": "application/json", "Connection": "close"}
    conn.request("POST", V1, body=b"[" * (64 * 1024 * 1024), headers=headers)
    response = conn.getresponse()
    assert response.status == 413
    assert "MAX_BODY_BYTES" in json.loads(response.read())["error"]
    conn.close()


def test_after_a_413_the_kept_alive_connection_still_serves(one_worker: Server):
    conn = http.client.HTTPConnection("127.0.0.1", one_worker.port, timeout=120)
    conn.request("POST", V1, body=b"[" * (64 * 1024 * 1024), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 413 and "error" in json.loads(response.read())
    conn.request(
        "POST", V1, body=json.dumps({"instances": [[1, 2, 3, 4]]}), headers={"Content-Type": "application/json"}
    )
    assert conn.getresponse().status == 200  # the oversized body was read to its end: the next request parses
    conn.close()


def test_a_100_mb_chunked_body_is_413_not_400(one_worker: Server):
    def chunks():
        for _ in range(100):
            yield b" " * (1000 * 1000)

    r = requests.post(one_worker.url + V1, data=chunks(), headers={"Content-Type": "application/json"}, timeout=120)
    assert r.status_code == 413
    assert "error" in r.json()


def test_a_small_chunked_body_is_served(one_worker: Server):
    body = json.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]] * 3}).encode()
    r = requests.post(
        one_worker.url + V1, data=iter([body[:10], body[10:]]), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 200 and len(r.json()["predictions"]) == 3


# --- memory: the largest valid requests, several at once ---


def _children(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                found += [int(proc.name), *_children(int(proc.name))]
    return found


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} missing")


# Measured for this worst case (1M rows of 4 one-digit integers, ranked labels out): ~20x the body for one
# request in a fresh worker, ~33x for five in a row (allocator fragmentation); the old code peaked at ~390x.
BYTES_PER_BODY_BYTE = 48


def test_concurrent_largest_v1_requests_stay_within_the_body_budget(one_worker: Server):
    rows = np.random.default_rng(0).integers(0, 9, ((MAX_BODY - 100) // 10, 4)).tolist()
    body = json.dumps({"instances": rows}, separators=(",", ":")).encode()
    assert MAX_BODY - 1000 < len(body) <= MAX_BODY
    workers = _children(one_worker.proc.pid)
    assert workers
    for pid in workers:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # restart the peak-RSS counter (VmHWM) from now
    baseline = sum(_status(pid, "VmRSS") for pid in workers)
    statuses: list[int] = []
    barrier = threading.Barrier(5)

    def post() -> None:
        barrier.wait()
        r = requests.post(one_worker.url + V1, data=body, headers={"Content-Type": "application/json"}, timeout=280)
        statuses.append(r.status_code)

    threads = [threading.Thread(target=post) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    peak = sum(_status(pid, "VmHWM") for pid in workers)
    assert statuses == [200] * 5
    # Unset MAX_INFLIGHT_BODY_BYTES admits one MAX_BODY_BYTES body at a time per process.
    print(f"5 concurrent {len(body)} B V1 requests: RSS {baseline / 1e6:.0f} MB -> peak {peak / 1e6:.0f} MB")
    assert peak - baseline < BYTES_PER_BODY_BYTE * MAX_BODY, (baseline, peak)


def test_a_large_body_waits_for_room_in_the_budget_and_gets_503_when_none_comes(make_settings, published):
    """Two large bodies race for a budget that holds one; small ones never wait."""
    from function.app import create_app
    from tests.conftest import wait_ready

    settings = make_settings(model_uri=f"{published}/lin", max_inflight_body_bytes=200_000, timeout=1)
    app = create_app(settings)
    client = app.test_client()
    wait_ready(client)
    budget = app.extensions["modelfn.body_budget"]
    big = json.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]] * 8000}).encode()  # ~170 kB: over SMALL_BODY
    with budget.hold(150_000) as held:  # another large body is being decoded
        assert held
        r = client.post(V1, data=big, content_type="application/json")
        assert r.status_code == 503 and r.headers["Retry-After"] and "retry" in r.get_json()["error"]
        small = client.post(V1, json={"instances": [[1.0, 2.0, 3.0, 4.0]]})
        assert small.status_code == 200
    results: list[int] = []
    gate = threading.Barrier(2)

    def post() -> None:
        gate.wait()
        results.append(client.post(V1, data=big, content_type="application/json").status_code)

    with budget.hold(150_000):
        waiter = threading.Thread(target=post)
        waiter.start()
        gate.wait()
        threading.Event().wait(0.1)  # the request is now waiting for room (TIMEOUT / 2 = 0.5 s)
    waiter.join()
    assert results == [200] and budget.used == 0
