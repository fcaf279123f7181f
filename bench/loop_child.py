"""The child side of ``bench.loop_cost``: one checkout's app and event loop, timed scenario by scenario.

Run by path (``python bench/loop_child.py``) with the checkout to measure on ``PYTHONPATH``, so it imports only that
checkout's ``function`` package and the libraries. It answers ``{"scenario", "requests"}`` lines on stdin with one
JSON line each on stdout (``"sweep_mb"`` optional); the access lines go to a file, as a container's go to its log pipe.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

WIDTH = 2048
SCENARIOS = (("v2-binary", 1), ("v2-json", 1), ("v2-binary", 32), ("v2-json", 32))


def scenario_name(kind: str, connections: int) -> str:
    """A scenario's name, as the parent reports it."""
    return f"{kind} c={connections}"


def row() -> np.ndarray:
    """The one-row request (the serving bench's shape; fixed seed)."""
    return np.random.default_rng(1).standard_normal((1, WIDTH)).astype(np.float32)


def request_bytes(kind: str, x: np.ndarray) -> bytes:
    """The whole HTTP/1.1 request of one V2 infer call, as a client sends it."""
    tensor = {"name": "x", "shape": list(x.shape), "datatype": "FP32"}
    if kind == "v2-binary":
        head = json.dumps(
            {
                "inputs": [{**tensor, "parameters": {"binary_data_size": x.nbytes}}],
                "parameters": {"binary_data_output": True},
            }
        ).encode()
        body = head + x.astype("<f4").tobytes()
        extra = f"Content-Type: application/octet-stream\r\nInference-Header-Content-Length: {len(head)}\r\n"
    else:
        body = json.dumps({"inputs": [{**tensor, "data": x.ravel().tolist()}]}).encode()
        extra = "Content-Type: application/json\r\n"
    start = f"POST /v2/models/relu/infer HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    return start.encode() + body


def check_reply(kind: str, reply: bytes, x: np.ndarray) -> None:
    """Refuse (RuntimeError) an answer that is not a 200 carrying exactly the Relu of ``x``."""
    head, _, body = reply.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{kind}: the answer is not a 200: {head[:200]!r}")
    if kind == "v2-binary":
        headers = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:])
        size = int(headers.get("Inference-Header-Content-Length", "0"))
        got = np.frombuffer(body[size:], dtype="<f4")
    else:
        got = np.asarray(json.loads(body)["outputs"][0]["data"], dtype=np.float32)
    if got.shape != (x.size,) or not np.array_equal(got, np.maximum(x, 0).ravel()):
        raise RuntimeError(f"{kind}: the answer's values are not the Relu of the request's row")


class Transport(asyncio.Transport):
    """An in-memory transport: keeps what the connection writes, counts the answers still to come."""

    def __init__(self, turn: dict[str, Any]) -> None:
        super().__init__()
        self.turn, self.out = turn, bytearray()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000)

    def write(self, data: Any) -> None:
        self.out += data
        self.turn["left"] -= 1  # every answer here is one write (SMALL_WRITE)
        if self.turn["left"] == 0:
            self.turn["done"].set_result(None)

    def is_closing(self) -> bool:
        return False

    def is_reading(self) -> bool:
        return True

    def close(self) -> None:
        pass


def _relu_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", WIDTH])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what the pinned onnxruntime reads
    onnx.save(model, str(path))
    return path


def _serving_app(work: Path) -> Any:
    """This checkout's app serving the Relu model, published with this checkout's own CLI, once READY."""
    store = (work / "store").as_uri()
    (work / "store").mkdir()
    publish = [sys.executable, "-m", "function.cli", "publish", str(_relu_model(work / "relu.onnx"))]
    publish += ["--name", "relu", "--version", "1", "--to", store, "--alias", "prod"]
    subprocess.run(publish, check=True, capture_output=True, env=os.environ)
    from function.app import create_app
    from function.settings import Settings

    app = create_app(Settings(model_uri=f"{store}/relu@prod", cache_dir=work / "cache"))
    client = app.test_client()
    for _ in range(600):
        if client.get("/readyz").status_code == 200:
            return app
        time.sleep(0.1)
    raise RuntimeError("the Relu model did not become ready within 60 s")


class Scenario(NamedTuple):
    """One scenario's connections, their shared turn (the future the last answer sets), and the request."""

    kind: str
    turn: dict[str, Any]
    pairs: list[tuple[Any, Transport]]
    data: bytes


class Bench:
    """This checkout's app and loop, with the connections of every scenario, ready to time."""

    def __init__(self, work: Path) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from function import fastlane, http11, wsgi_bridge
        from function.worker import new_loop

        app = _serving_app(work)
        self.loop = new_loop("uvloop")
        asyncio.set_event_loop(self.loop)
        handler = fastlane.handler_for(app, wsgi_bridge.handler_for(app, "127.0.0.1"))
        self.server = http11.Server(
            self.loop, handler, ThreadPoolExecutor(4), http11.Limits(), fastlane.front_for(app, self.loop)
        )
        self.x = row()
        self.sweep = np.zeros(0, np.float32)
        self.scenarios = {scenario_name(k, c): self._connect(k, c) for k, c in SCENARIOS}

    def _connect(self, kind: str, connections: int) -> Scenario:
        from function import http11

        turn: dict[str, Any] = {}
        pairs = []
        for _ in range(connections):
            transport, conn = Transport(turn), http11.Connection(self.server)
            conn.connection_made(transport)
            pairs.append((conn, transport))
        scenario = Scenario(kind, turn, pairs, request_bytes(kind, self.x))
        self._turns(scenario, max(200 // connections, 2))  # warm: the engine's first batches, the caches
        for _, transport in pairs:
            check_reply(kind, bytes(transport.out), self.x)
        return scenario

    def _turns(self, scenario: Scenario, count: int, sweep: np.ndarray | None = None) -> tuple[float, float]:
        """Run ``count`` turns: the loop thread's CPU and wall seconds spent in them, the sweeps left out."""
        turn, spent = scenario.turn, [0.0, 0.0]

        async def turns() -> None:
            for _ in range(count):
                if sweep is not None:
                    sweep.sum()  # reads it all: the caches are left as a served model's weight pass leaves them
                cpu, wall = time.thread_time(), time.perf_counter()
                turn["done"], turn["left"] = self.loop.create_future(), len(scenario.pairs)
                for conn, transport in scenario.pairs:
                    transport.out.clear()
                    conn.data_received(scenario.data)
                await turn["done"]
                await asyncio.sleep(0)  # the work queued after the answers (access lines, metrics) runs here
                spent[0] += time.thread_time() - cpu
                spent[1] += time.perf_counter() - wall

        self.loop.run_until_complete(turns())
        return spent[0], spent[1]

    def time(self, name: str, requests: int, sweep_mb: int = 0) -> dict[str, float]:
        """Loop-thread CPU and wall µs per request over about ``requests`` requests of scenario ``name``.

        ``sweep_mb``: before every turn, read that many MB of memory (not timed), so each turn starts with
        the caches as a large model's ``predict()`` leaves them (the Relu here touches 8 KB).
        """
        scenario = self.scenarios[name]
        count = max(requests // len(scenario.pairs), 1)
        if sweep_mb and self.sweep.nbytes != sweep_mb * 2**20:
            self.sweep = np.ones(sweep_mb * 2**20 // 4, np.float32)
        cpu, wall = self._turns(scenario, count, self.sweep if sweep_mb else None)
        n = count * len(scenario.pairs)
        check_reply(scenario.kind, bytes(scenario.pairs[-1][1].out), self.x)
        return {"cpu_us": cpu / n * 1e6, "wall_us": wall / n * 1e6}


def child(commands: Any, answers: Any) -> None:
    """Answer ``{"scenario", "requests"}`` lines with figures, until EOF (run with the checkout on PYTHONPATH)."""
    with tempfile.TemporaryDirectory(prefix="loop-cost-") as tmp:
        bench = Bench(Path(tmp))
        import function

        ready = {"ready": list(bench.scenarios), "function": str(Path(function.__file__).resolve().parent)}
        answers.write(json.dumps(ready) + "\n")
        answers.flush()
        for line in commands:
            command = json.loads(line)
            figures = bench.time(command["scenario"], int(command["requests"]), int(command.get("sweep_mb", 0)))
            answers.write(json.dumps(figures) + "\n")
            answers.flush()


def main() -> int:
    """Serve timing commands until EOF."""
    answers = sys.stdout
    with tempfile.NamedTemporaryFile("w", prefix="loop-cost-access-", suffix=".log") as log:
        sys.stdout = log
        child(sys.stdin, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
