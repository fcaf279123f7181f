"""Adaptive batching: real threads, a barrier and a gate that holds the first batch, many rounds."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from function.app import create_app
from function.batching import Batcher
from loader.errors import InferenceInputError, ModelExecutionError
from loader.manifest import TensorSpec
from tests.conftest import wait_ready
from tests.models import expected_logits, linear_onnx, publish_model

Arrays = dict[str, np.ndarray]
THREADS = 12
ROUNDS = 15


class GatedRuntime:
    """Wraps a predict; the first call of each round waits until every other request has queued."""

    def __init__(self, predict: Callable[[Arrays], Arrays]) -> None:
        self.predict_fn = predict
        self.calls: list[Arrays] = []
        self.lock = threading.Lock()
        self.engine: Batcher | None = None
        self.hold_for = 0  # queued requests the next call waits for

    def __call__(self, inputs: Arrays) -> Arrays:
        with self.lock:
            self.calls.append(inputs)
            hold, self.hold_for = self.hold_for, 0
        if hold:
            assert self.engine is not None
            for _ in range(20000):  # bounds a hang only; the queue fills as the other threads arrive
                if self.engine.pending >= hold:
                    break
                threading.Event().wait(0.001)
        return self.predict_fn(inputs)


def linear(inputs: Arrays) -> Arrays:
    return {"logits": expected_logits(inputs["features"])}


def run_round(engine: Batcher, gate: GatedRuntime, requests: list[Arrays]) -> list[Any]:
    """Submit every request from its own thread at once; returns outputs or the exception raised."""
    barrier = threading.Barrier(len(requests))
    gate.hold_for = len(requests) - 1

    def one(inputs: Arrays) -> Any:
        barrier.wait()
        try:
            return engine.submit(inputs)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(one, requests))


def gated(predict: Callable[[Arrays], Arrays], max_rows: int = 1024) -> tuple[Batcher, GatedRuntime]:
    gate = GatedRuntime(predict)
    engine = Batcher(gate, max_rows)
    gate.engine = engine
    return engine, gate


def test_each_request_gets_exactly_its_own_rows():
    engine, gate = gated(linear)
    rng = np.random.default_rng(0)
    for _ in range(ROUNDS):
        gate.calls.clear()
        requests = [
            {"features": rng.normal(size=(int(rng.integers(1, 4)), 4)).astype(np.float32)} for _ in range(THREADS)
        ]
        results = run_round(engine, gate, requests)
        for inputs, out in zip(requests, results, strict=True):
            np.testing.assert_allclose(
                out["logits"], linear(inputs)["logits"], rtol=1e-5, atol=1e-6
            )  # == an unbatched run
        # The first request ran alone at once; everything that queued meanwhile shared one predict().
        assert [len(c["features"]) for c in gate.calls] == [
            len(gate.calls[0]["features"]),
            sum(len(r["features"]) for r in requests) - len(gate.calls[0]["features"]),
        ]


def test_mixed_shapes_never_share_a_batch():
    def row_sums(inputs: Arrays) -> Arrays:
        return {"sum": inputs["x"].sum(axis=1)}

    engine, gate = gated(row_sums)
    requests = [{"x": np.full((2, 3 if i % 2 else 5), float(i), np.float32)} for i in range(THREADS)]
    for _ in range(ROUNDS):
        gate.calls.clear()
        results = run_round(engine, gate, requests)
        for i, out in enumerate(results):
            np.testing.assert_array_equal(out["sum"], np.full(2, i * (3 if i % 2 else 5), np.float32))
        # The lone first request, then one batch per width: 3 and 5 columns were never concatenated.
        assert len(gate.calls) == 3
        assert sorted(len(c["x"]) for c in gate.calls[1:]) == [2 * (THREADS // 2 - 1), 2 * (THREADS // 2)]


def test_the_rows_limit_splits_batches():
    engine, gate = gated(linear, max_rows=4)
    requests = [{"features": np.full((1, 4), float(i), np.float32)} for i in range(THREADS)]
    for _ in range(ROUNDS):
        gate.calls.clear()
        results = run_round(engine, gate, requests)
        for inputs, out in zip(requests, results, strict=True):
            np.testing.assert_allclose(out["logits"], linear(inputs)["logits"], rtol=1e-5, atol=1e-6)
        assert max(len(c["features"]) for c in gate.calls) <= 4
        assert sum(len(c["features"]) for c in gate.calls) == THREADS


def test_input_the_runtime_rejects_fails_only_its_own_request():
    def no_nan(inputs: Arrays) -> Arrays:
        if np.isnan(inputs["features"]).any():
            raise InferenceInputError("the model rejected the inputs: NaN")
        return linear(inputs)

    engine, gate = gated(no_nan)
    for r in range(ROUNDS):
        bad = 1 + r % (THREADS - 1)  # never the lone first request: the bad one is inside a batch
        requests = [{"features": np.full((1, 4), np.nan if i == bad else i, np.float32)} for i in range(THREADS)]
        results = run_round(engine, gate, requests)
        for i, out in enumerate(results):
            if i == bad:
                assert isinstance(out, InferenceInputError)
            else:
                np.testing.assert_allclose(out["logits"], linear(requests[i])["logits"], rtol=1e-5, atol=1e-6)


def test_a_runtime_failure_fails_only_that_batch():
    failing = {"call": -1}

    def sometimes(inputs: Arrays) -> Arrays:
        failing["call"] += 1
        if failing["call"] % 2 == 1:  # every round's second predict(): the batch of queued requests
            raise ModelExecutionError("model execution failed: out of memory")
        return linear(inputs)

    engine, gate = gated(sometimes)
    for _ in range(ROUNDS):
        requests = [{"features": np.full((1, 4), i, np.float32)} for i in range(THREADS)]
        results = run_round(engine, gate, requests)
        ok = [r for r in results if not isinstance(r, Exception)]
        failed = [r for r in results if isinstance(r, Exception)]
        assert len(ok) == 1 and len(failed) == THREADS - 1  # the lone first request was not in that batch
        assert all(isinstance(e, ModelExecutionError) and "out of memory" in str(e) for e in failed)
    assert engine.pending == 0 and engine.submit(requests[0])["logits"].shape == (1, 3)  # still serving


def test_batching_off_runs_each_request_alone():
    engine, gate = gated(linear, max_rows=1)
    assert not engine.enabled
    requests = [{"features": np.full((2, 4), i, np.float32)} for i in range(THREADS)]
    barrier = threading.Barrier(THREADS)

    def one(inputs: Arrays) -> Arrays:
        barrier.wait()
        return engine.submit(inputs)

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(one, requests))
    assert sorted(float(c["features"][0, 0]) for c in gate.calls) == [float(i) for i in range(THREADS)]
    for inputs, out in zip(requests, results, strict=True):
        np.testing.assert_allclose(out["logits"], linear(inputs)["logits"], rtol=1e-5, atol=1e-6)


def test_the_delay_never_holds_a_lone_request_and_fills_batches_under_load():
    gate = GatedRuntime(linear)
    engine = Batcher(gate, max_rows=4, max_delay_s=3600)  # a delay no test could sit out
    gate.engine = engine
    one = {"features": np.ones((1, 4), np.float32)}
    lone = threading.Thread(target=engine.submit, args=(one,))
    lone.start()
    lone.join(30)
    assert not lone.is_alive()  # idle runtime: ran at once, the delay never applied
    gate.calls.clear()
    gate.hold_for = 3  # the first request holds the runtime until three more queued
    first_four = [threading.Thread(target=engine.submit, args=(one,)) for _ in range(4)]
    for t in first_four:
        t.start()
    while len(gate.calls) < 1 or engine.pending < 3:
        threading.Event().wait(0.001)
    for _ in range(500):  # the next runner now waits for a fourth row instead of running three
        if len(gate.calls) > 1:
            break
        threading.Event().wait(0.001)
    assert len(gate.calls) == 1
    last = threading.Thread(target=engine.submit, args=(one,))
    last.start()
    for t in [*first_four, last]:
        t.join(30)
    assert [len(c["features"]) for c in gate.calls] == [1, 4]


# Through the app, the real onnxruntime and HTTP (V1 JSON, V2 JSON and V2 binary share batches).
# The gate decides how batches form, so the linger (which would join a round's first request to the rest,
# tested in test_batching_async.py) is off: NO_LINGER.
NO_LINGER = {"max_batch_linger_ms": 0}


def metric(client: Any, name: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name} not exported"
    return float(match.group(1))


def served(app: Any) -> Any:
    client = app.test_client()
    wait_ready(client)
    return app.extensions["modelfn"].holder.model


def v2_body(x: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "features", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}


def binary_request(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    import json

    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "datatype": "FP32",
                    "shape": list(x.shape),
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ]
        }
    ).encode()
    return header + x.astype("<f4").tobytes(), {"Inference-Header-Content-Length": str(len(header))}


def http_round(app: Any, inputs: list[np.ndarray | None]) -> list[tuple[int, np.ndarray | None]]:
    """One request per thread: V1, V2 JSON and V2 binary in turn; None sends a wrong shape."""
    barrier = threading.Barrier(len(inputs))

    def one(k: int) -> tuple[int, np.ndarray | None]:
        client = app.test_client()
        x = inputs[k]
        barrier.wait()
        if x is None:
            r = client.post("/v2/models/lin/infer", json=v2_body(np.ones((1, 5), np.float32)))
            return r.status_code, None
        if k % 3 == 0:
            r = client.post("/v2/models/lin/infer", json=v2_body(x))
        elif k % 3 == 1:
            body, headers = binary_request(x)
            r = client.post("/v2/models/lin/infer", data=body, headers=headers)
        else:
            r = client.post("/v1/models/lin:predict", json={"instances": x.tolist()})
        doc = r.get_json()
        if r.status_code != 200:
            assert set(doc) == {"error"}, doc  # the service's JSON error shape
            return r.status_code, None
        values = doc["predictions"] if k % 3 == 2 else doc["outputs"][0]["data"]
        return r.status_code, np.array(values, np.float32).reshape(-1, 3)

    with ThreadPoolExecutor(len(inputs)) as pool:
        return list(pool.map(one, range(len(inputs))))


@pytest.fixture
def raw_published(store_dir, tmp_path) -> str:
    """lin@1.0.0 without post-processing: every route returns the logits themselves."""
    uri = store_dir.as_uri()
    publish_model(uri, linear_onnx(tmp_path / "raw.onnx"))
    return f"{uri}/lin"


def test_http_requests_share_batches_and_get_their_own_rows(make_settings, raw_published):
    app = create_app(make_settings(model_uri=raw_published, **NO_LINGER))
    model = served(app)
    gate = GatedRuntime(model.runtime.predict)
    gate.engine = model.engine
    model.runtime.predict = gate  # the engine calls the runtime it was built with: hold its first batch
    rng = np.random.default_rng(1)
    rows = 0
    for r in range(ROUNDS):
        gate.calls.clear()
        gate.hold_for = THREADS - 2  # the bad request never reaches the queue
        inputs: list[np.ndarray | None] = [rng.normal(size=(1 + k % 2, 4)).astype(np.float32) for k in range(THREADS)]
        inputs[r % THREADS] = None
        results = http_round(app, inputs)
        for x, (status, out) in zip(inputs, results, strict=True):
            if x is None:
                assert status == 400
            else:
                assert status == 200
                np.testing.assert_allclose(out, expected_logits(x), rtol=1e-5, atol=1e-6)
        assert len(gate.calls) == 2  # every good request shared the second predict() (any route)
        rows += sum(len(x) for x in inputs if x is not None)
    client = app.test_client()
    assert metric(client, "modelfn_batch_items_total") == rows
    assert metric(client, "modelfn_batch_size_count") == 2 * ROUNDS
    assert metric(client, "modelfn_batch_queue_seconds_count") == (THREADS - 1) * ROUNDS


def test_http_runtime_failure_is_a_typed_500_for_that_batch_only(make_settings, raw_published):
    app = create_app(make_settings(model_uri=raw_published, **NO_LINGER))
    model = served(app)
    real = model.runtime.predict
    calls = {"n": 0}

    def second_fails(inputs: Arrays) -> Arrays:
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            raise ModelExecutionError("model execution failed: out of memory")
        return real(inputs)

    gate = GatedRuntime(second_fails)
    gate.engine = model.engine
    model.runtime.predict = gate
    for _ in range(5):
        gate.hold_for = THREADS - 1
        statuses = [s for s, _ in http_round(app, [np.ones((1, 4), np.float32)] * THREADS)]
        assert sorted(statuses) == [200] + [500] * (THREADS - 1)
    client = app.test_client()
    r = client.post("/v1/models/lin:predict", json={"instances": [[1, 2, 3, 4]]})
    assert r.status_code == 200


@pytest.mark.parametrize("max_batch", [1, 64])
def test_batching_off_or_a_fixed_first_dim_runs_per_request(make_settings, store_dir, tmp_path, max_batch):
    uri = store_dir.as_uri()
    fixed = max_batch == 64  # with batching on, a model without a dynamic first dim must still run alone
    inputs = [TensorSpec(name="features", datatype="FP32", shape=[2, 4])] if fixed else []
    outputs = [TensorSpec(name="logits", datatype="FP32", shape=[2, 3])] if fixed else []
    publish_model(uri, linear_onnx(tmp_path / "m.onnx"), inputs=inputs, outputs=outputs)
    app = create_app(make_settings(model_uri=f"{uri}/lin", max_batch_size=max_batch))
    model = served(app)
    assert not model.engine.enabled
    seen: list[int] = []
    real = model.runtime.predict

    def record(arrays: Arrays) -> Arrays:
        seen.append(len(arrays["features"]))
        return real(arrays)

    model.runtime.predict = record
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    for _ in range(3):
        results = http_round(app, [x + k for k in range(THREADS)])
        for k, (status, out) in enumerate(results):
            assert status == 200
            np.testing.assert_allclose(out, expected_logits(x + k), rtol=1e-5, atol=1e-6)
    assert seen == [2] * THREADS * 3


def test_events_batch_jobs_queue_on_the_same_engine(make_settings, raw_published):
    from function.events.formats import Line
    from function.events.predict import Predictor

    app = create_app(make_settings(model_uri=raw_published, max_batch_size=4, **NO_LINGER))
    model = served(app)
    gate = GatedRuntime(model.runtime.predict)
    gate.engine = model.engine
    model.runtime.predict = gate
    rows = [[float(i), 1.0, 2.0, 3.0] for i in range(10)]
    for _ in range(5):
        gate.calls.clear()
        gate.hold_for = 1  # an HTTP request holds the runtime until the job's first chunk has queued behind it
        job: list[Any] = []
        predictor = Predictor(model, app.extensions["modelfn"].metrics, batch_size=10)
        worker = threading.Thread(
            target=lambda: job.extend(predictor.jsonl(Line(n + 1, r) for n, r in enumerate(rows)))
        )
        http = threading.Thread(target=lambda: http_round(app, [np.ones((1, 4), np.float32)]))
        http.start()
        while not gate.calls:  # the HTTP request is running (held)
            threading.Event().wait(0.001)
        worker.start()
        worker.join(30)
        http.join(30)
        [records] = job
        np.testing.assert_allclose([r["prediction"] for r in records], expected_logits(np.array(rows)), rtol=1e-5)
        assert [len(c["features"]) for c in gate.calls] == [1, 10]  # one owner: the job waited for its turn
