"""The floor server answers as onnxruntime does; the floor's gaps are paired slice by slice."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bench import floor, floor_server, wrk
from bench.procs import ROOT, free_port
from tests.bench.test_paired import _tiny_onnx


def _wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("ready"), line


@pytest.fixture
def served(tmp_path: Path):
    model, port = _tiny_onnx(tmp_path / "tiny.onnx"), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.floor_server", str(model), str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_ready(proc)
        yield model, port
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _expected(model: Path, row: np.ndarray) -> bytes:
    return bytes(ort.InferenceSession(str(model)).run(None, {"x": row})[0].tobytes())


def test_a_post_is_answered_with_the_models_output_for_the_bodys_last_row(served: tuple[Path, int]) -> None:
    model, port = served
    row = np.arange(8, dtype=np.float32).reshape(1, 8) - 3
    body = b'{"inputs":[{"name":"x"}]}' + row.tobytes()  # a binary-extension header, then the tensor
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/mlp/infer", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:  # loopback
        assert resp.status == 200
        assert resp.read() == _expected(model, row)


def test_keep_alive_requests_split_across_reads_each_get_their_answer(served: tuple[Path, int]) -> None:
    model, port = served
    rows = [np.full((1, 8), k, dtype=np.float32) for k in range(3)]
    wire = b"".join(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % r.nbytes + r.tobytes() for r in rows)
    expected = b"".join(_expected(model, r) for r in rows)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        for k in range(0, len(wire), 7):  # odd-sized pieces: heads and bodies cut anywhere
            conn.sendall(wire[k : k + 7])
            time.sleep(0.001)
        got = b""
        deadline = time.monotonic() + 10
        while got.count(b"HTTP/1.1 200") < 3 or not got.endswith(expected[-32:]):
            assert time.monotonic() < deadline, got
            got += conn.recv(1 << 16)
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in got.split(b"HTTP/1.1 200 OK\r\n")[1:]]
    assert b"".join(bodies) == expected


def test_a_get_is_an_empty_200(served: tuple[Path, int]) -> None:
    _, port = served
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:  # loopback
        assert (resp.status, resp.read()) == (200, b"")


def test_requests_keeps_an_incomplete_one_for_the_next_read() -> None:
    head = b"POST / HTTP/1.1\r\nInference-Header-Content-Length: 2\r\nContent-Length: 4\r\n\r\n"
    done, rest = floor_server.requests(head + b"abcd" + head + b"ab")
    assert done == [(b"POST", b"abcd")]  # the content length, not the inference header's
    assert rest == head + b"ab"


def test_gaps_pair_each_slice_with_the_raw_slices_around_it() -> None:
    slices = [
        {"server": "modelfn", "p50_ms": 3.6, "raw_before_ms": 3.0, "raw_after_ms": 3.2},
        {"server": "floor", "p50_ms": 3.3, "raw_before_ms": 3.2, "raw_after_ms": 3.2},
        {"server": "floor", "p50_ms": 3.1, "raw_before_ms": 3.0, "raw_after_ms": 3.0},
        {"server": "modelfn", "p50_ms": 3.7, "raw_before_ms": 3.0, "raw_after_ms": 3.0},
    ]
    out = floor.gaps(slices)
    assert out["modelfn"]["gaps_ms"] == pytest.approx([0.5, 0.7])
    assert out["floor"]["gaps_ms"] == pytest.approx([0.1, 0.1])
    assert out["floor"]["minus_first_ms"] == pytest.approx(-0.5)  # median of -0.4 and -0.6
    assert out["modelfn"]["minus_first_ms"] == 0.0
    assert "| floor | 0.100 |" in floor.markdown({"meta": {"rounds": 2, "seconds": 1, "width": 8}, "servers": out})


@pytest.mark.skipif(not wrk.available(), reason="wrk not installed (apt-get install -y wrk)")
def test_the_floor_run_pairs_every_server_with_raw_and_writes_its_results(tmp_path: Path) -> None:
    floor.main(["--rounds", "2", "--seconds", "1", "--width", "16", "--name", "t", "--out-dir", str(tmp_path)])
    results = json.loads((tmp_path / "t.json").read_text())
    assert list(results["servers"]) == ["modelfn", "floor", "floor-huge-pages"]
    assert [s["server"] for s in results["slices"]] == [
        *["modelfn", "floor", "floor-huge-pages"],
        *["floor-huge-pages", "floor", "modelfn"],  # the order alternates between rounds
    ]
    assert all(s["errors"] == 0 and s["p50_ms"] > 0 and s["raw_before_ms"] > 0 for s in results["slices"])
    assert "| floor-huge-pages |" in (tmp_path / "t.md").read_text()
