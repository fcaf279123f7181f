"""A batch's answers are all written before its bookkeeping (metrics, access lines) runs: many rounds, real loop."""

from __future__ import annotations

import asyncio
import json
import re
import time
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest

from function import batching, fastlane
from function.app import create_app
from function.batch_parts import after_answers
from function.batching import Batcher
from function.http11 import Request
from function.settings import Settings
from tests.conftest import wait_ready
from tests.function.test_batching import linear
from tests.function.test_batching_async import loop  # noqa: F401  (the fixture)
from tests.models import expected_logits

ROUNDS = 20


@pytest.fixture(autouse=True)
def _loop_sized(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every batch is lingered over and may run in the loop; not timing assertions.
    monkeypatch.setattr(batching, "INLINE_SECONDS", 0.0)
    monkeypatch.setattr(batching, "LOOP_SECONDS", 3600.0)


class Members:
    """``linear``, recording which requests (the first value of each row) each predict() joined."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.batches.append([int(row[0]) for row in inputs["features"]])
        return linear(inputs)


def test_bookkeeping_waits_for_every_answer_of_its_batch(loop):  # noqa: F811
    model = Members()
    engine = Batcher(model, 64)
    events: list[tuple[str, int]] = []

    def answered(k: int) -> Any:
        def done(outputs: Any, error: Any) -> None:
            assert error is None
            np.testing.assert_allclose(outputs["logits"], expected_logits(np.full((1, 4), k, np.float32)), rtol=1e-5)
            events.append(("answer", k))
            after_answers(lambda: events.append(("book", k)))
            if k == 3:
                after_answers(lambda: 1 / 0)  # a failing piece of bookkeeping must not stop the others

        return done

    joined = 0
    for _ in range(ROUNDS):
        events.clear()
        model.batches.clear()
        finished: Future[None] = Future()

        def start() -> None:
            for k in range(8):
                engine.submit_async({"features": np.full((1, 4), k, np.float32)}, loop, answered(k))

        def check_done() -> None:  # polled in the loop: never a bound on how long the batches take
            if len(events) < 16:
                loop.call_later(0.01, check_done)
            else:
                finished.set_result(None)

        loop.call_soon_threadsafe(start)
        loop.call_soon_threadsafe(check_done)
        finished.result(30)
        assert sorted(k for kind, k in events if kind == "book") == list(range(8))
        for batch in model.batches:
            if len(batch) < 2:
                continue
            joined += 1
            mine = [kind for kind, k in events if k in batch]  # this batch's answers, then its bookkeeping
            assert mine == ["answer"] * len(batch) + ["book"] * len(batch), (batch, events)
    assert joined  # batches of more than one request did form


def test_a_batch_s_metrics_and_predict_s_bookkeeping_wait_for_its_answers(loop):  # noqa: F811
    model = Members()
    events: list[tuple[str, Any]] = []

    def predict(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = model(inputs)
        members = model.batches[-1]
        after_answers(lambda: events.append(("timed", members)))  # as serving's predict() times itself
        return outputs

    engine = Batcher(predict, 64, observe=lambda rows, waits: events.append(("observed", (rows, len(waits)))))
    warm: Future[Any] = Future()  # the first batch runs on the runner thread (nothing measured yet): not this test's
    loop.call_soon_threadsafe(
        engine.submit_async, {"features": np.zeros((1, 4), np.float32)}, loop, lambda o, e: warm.set_result(e)
    )
    assert warm.result(30) is None
    deadline = time.monotonic() + 30  # its metrics follow on the runner thread: wait for them (bounds a hang only)
    while ("observed", (1, 1)) not in events and time.monotonic() < deadline:
        time.sleep(0.001)
    for _ in range(ROUNDS):
        events.clear()
        model.batches.clear()
        finished: Future[None] = Future()

        def answered(k: int) -> Any:
            def done(outputs: Any, error: Any) -> None:
                assert error is None
                events.append(("answer", k))
                if sum(kind == "answer" for kind, _ in events) == 8:
                    loop.call_soon(finished.set_result, None)  # a turn later: the last batch's bookkeeping ran

            return done

        def start() -> None:
            for k in range(8):
                engine.submit_async({"features": np.full((1, 4), k, np.float32)}, loop, answered(k))

        loop.call_soon_threadsafe(start)
        finished.result(30)
        assert sorted(v for kind, v in events if kind == "answer") == list(range(8))
        for batch in model.batches:  # each batch: its answers, then its metrics and its predict()'s
            last = max(i for i, (kind, v) in enumerate(events) if kind == "answer" and v in batch)
            assert events[last + 1 : last + 3] == [("observed", (len(batch), len(batch))), ("timed", batch)], events
        assert sum(kind == "observed" for kind, _ in events) == len(model.batches)


def test_outside_a_delivery_bookkeeping_runs_at_once():
    events: list[int] = []
    after_answers(lambda: events.append(1))
    assert events == [1]


def test_the_fast_lane_writes_every_answer_before_the_access_lines(published, tmp_path, monkeypatch, loop):  # noqa: F811
    app = create_app(Settings(model_uri=f"{published}/lin", cache_dir=tmp_path / "cache"))
    client = app.test_client()
    wait_ready(client)
    before = [_counted(client, name) for name in COUNTED]
    events: list[tuple[str, int]] = []
    record = fastlane.record
    monkeypatch.setattr(
        fastlane, "record", lambda m, p, done, h: (events.append(("log", int(h.get("x-k")))), record(m, p, done, h))
    )
    front: Any = None
    ahead = 0
    rng = np.random.default_rng(1)
    for _ in range(ROUNDS):
        events.clear()
        xs = [rng.standard_normal((1, 4)).astype(np.float32) for _ in range(6)]
        replies: list[Future[Any]] = [Future() for _ in xs]

        def start() -> None:
            nonlocal front
            front = front or fastlane.front_for(app, asyncio.get_running_loop())
            for k, x in enumerate(xs):
                body = json.dumps(
                    {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": x.ravel().tolist()}]}
                ).encode()
                headers = [("content-type", "application/json"), ("x-k", str(k))]
                request = Request("POST", "/v2/models/lin/infer", "1.1", headers, body, None, None)

                def respond(reply: Any, k: int = k) -> None:
                    events.append(("answer", k))
                    replies[k].set_result(reply)

                assert front(request, respond)

        loop.call_soon_threadsafe(start)
        for k, (x, reply) in enumerate(zip(xs, replies, strict=True)):
            got = reply.result(30)
            assert got.status == 200
            data = json.loads(b"".join(got.body))["outputs"][0]["data"]
            np.testing.assert_allclose(data, expected_logits(x).ravel(), rtol=1e-5)
        done: Future[None] = Future()
        loop.call_soon_threadsafe(done.set_result, None)  # after the turn that delivered the last batch
        done.result(30)
        assert sorted(k for kind, k in events if kind == "log") == list(range(6))
        answered_at = {k: i for i, (kind, k) in enumerate(events) if kind == "answer"}
        assert all(answered_at[k] < i for i, (kind, k) in enumerate(events) if kind == "log"), events
        kinds = [kind for kind, _ in events]
        ahead = max(ahead, kinds.index("log"))  # answers written before the first access line
    assert ahead >= 2  # in some round a batch of more than one was answered in full before its lines
    items, batches, predicts = (_counted(client, name) - was for name, was in zip(COUNTED, before, strict=True))
    assert items == 6 * ROUNDS and predicts == batches > 0  # deferred, and still every one counted


COUNTED = ("modelfn_batch_items_total", "modelfn_batch_size_count", "modelfn_inference_seconds_count")


def _counted(client: Any, name: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.MULTILINE))


def test_a_delivery_inside_a_delivery_defers_each_to_its_own_end():
    from function.batch_parts import Item, deliver

    events: list[str] = []

    def item(name: str, inner: list[Item] | None = None) -> Item:
        def done(outputs: Any, error: Any) -> None:
            events.append(f"answer {name}")
            if inner:
                deliver(inner)
            after_answers(lambda: events.append(f"book {name}"))

        made = Item({}, 1, None)
        made.callback, made.result = (None, done), {}  # type: ignore[assignment]
        return made

    deliver([item("a", [item("x")]), item("b")])
    assert events == ["answer a", "answer x", "book x", "answer b", "book a", "book b"]
