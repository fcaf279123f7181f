"""Batches of a model faster than ``LOOP_SECONDS`` run in the event loop itself: no hand-off, still batched.

A real asyncio loop on its own thread. Requests are queued from inside the loop, as the worker does: those of one
loop turn join one batch; those of later turns join through the linger's timer. Many rounds.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from function import batching
from function.batching import Batcher
from loader.errors import ModelExecutionError
from tests.function.test_batching import linear
from tests.function.test_batching_async import idle, loop  # noqa: F401  (loop: the fixture)
from tests.models import expected_logits

ROUNDS = 20


class Recorded:
    """``linear``, recording each call's rows and thread; rows of -1 fail their batch."""

    def __init__(self, pause: float = 0.0) -> None:
        self.calls: list[tuple[int, str]] = []
        self.pause = pause

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls.append((len(inputs["features"]), threading.current_thread().name))
        if self.pause:
            time.sleep(self.pause)  # not a timing assertion: it only makes the linger's bound generous
        if (inputs["features"] == -1).any():
            raise ModelExecutionError("boom")
        return linear(inputs)


@pytest.fixture(autouse=True)
def _loop_sized(monkeypatch: pytest.MonkeyPatch) -> None:
    # Not quick (never the immediate one-row path), always short enough for the loop: not timing assertions.
    monkeypatch.setattr(batching, "INLINE_SECONDS", 0.0)
    monkeypatch.setattr(batching, "LOOP_SECONDS", 3600.0)


def one_turn(engine: Batcher, on: asyncio.AbstractEventLoop, inputs: list[np.ndarray]) -> list[Future[Any]]:
    """Queue every input in one loop turn (as a read of many sockets does); futures get (outputs, error, thread)."""
    futures: list[Future[Any]] = [Future() for _ in inputs]

    def start() -> None:
        for x, future in zip(inputs, futures, strict=True):
            engine.submit_async({"features": x}, on, lambda o, e, f=future: f.set_result((o, e, _thread())))

    on.call_soon_threadsafe(start)
    return futures


def _thread() -> str:
    return threading.current_thread().name


def test_one_turns_requests_share_one_batch_in_the_loop_and_get_their_own_rows(loop):  # noqa: F811
    model = Recorded()
    engine = Batcher(model, 64)
    one_turn(engine, loop, [np.ones((1, 4), np.float32)])[0].result(30)  # first: nothing measured, the runner
    assert model.calls[0][1].startswith("modelfn-batch")
    rng = np.random.default_rng(0)
    for _ in range(ROUNDS):
        model.calls.clear()
        inputs = [rng.standard_normal((int(rng.integers(1, 4)), 4)).astype(np.float32) for _ in range(8)]
        results = [f.result(30) for f in one_turn(engine, loop, inputs)]
        for x, (outputs, error, thread) in zip(inputs, results, strict=True):
            assert error is None and thread == "loop"
            np.testing.assert_allclose(outputs["logits"], expected_logits(x), rtol=1e-5)
        assert model.calls == [(sum(len(x) for x in inputs), "loop")]  # one predict, run by the loop


def test_a_batch_run_by_the_loop_answers_in_that_same_callback(loop):  # noqa: F811
    # The answers are not a loop turn behind the batch: whatever the loop queued after it runs after them.
    model = Recorded()
    engine = Batcher(model, 64)
    one_turn(engine, loop, [np.ones((1, 4), np.float32)])[0].result(30)  # the first runs on the runner
    for _ in range(ROUNDS):
        order: list[str] = []
        finished: Future[None] = Future()

        def start() -> None:
            for k in range(3):
                engine.submit_async({"features": np.full((1, 4), k, np.float32)}, loop, lambda o, e: order.append("a"))
            asyncio.get_running_loop().call_soon(order.append, "next")  # queued behind the batch's own callback
            asyncio.get_running_loop().call_soon(asyncio.get_running_loop().call_soon, finished.set_result, None)

        loop.call_soon_threadsafe(start)
        finished.result(30)
        assert order == ["a", "a", "a", "next"]


def test_a_runtime_failure_in_the_loop_fails_only_its_batch(loop):  # noqa: F811
    model = Recorded()
    engine = Batcher(model, 4)  # 8 one-row requests: two batches of 4
    one_turn(engine, loop, [np.ones((1, 4), np.float32)])[0].result(30)
    for bad in range(ROUNDS):
        model.calls.clear()
        inputs = [np.full((1, 4), float(k), np.float32) for k in range(8)]
        inputs[bad % 8][:] = -1
        results = [f.result(30) for f in one_turn(engine, loop, inputs)]
        failed = [isinstance(error, ModelExecutionError) for _, error, _ in results]
        first = bad % 8 < 4
        assert failed == [first] * 4 + [not first] * 4
        assert model.calls == [(4, "loop"), (4, "loop")]  # the second batch was elected and run by the loop
        for x, (outputs, error, _) in zip(inputs, results, strict=True):
            if error is None:
                np.testing.assert_allclose(outputs["logits"], expected_logits(x), rtol=1e-5)


def test_after_a_batch_the_clients_coming_back_over_several_turns_are_batched_again(loop):  # noqa: F811
    model = Recorded()
    engine = Batcher(model, 64, linger_s=3600)
    one_turn(engine, loop, [np.ones((1, 4), np.float32)])[0].result(30)
    for _ in range(ROUNDS // 2):
        [f.result(30) for f in one_turn(engine, loop, [np.ones((1, 4), np.float32)] * 6)]
        # As if that batch had taken 1,000 s: the linger's timer (bounded by the last predict's time) cannot
        # be what runs the next batch within the 30 s below, only the sixth request's wake-up can.
        rows, _, ended = engine._last
        engine._last = (rows, 1000.0, ended)
        model.calls.clear()
        lingered = engine.lingered
        # The six clients come back one loop turn apart: the first waits (on a timer, the loop keeps
        # reading) and the sixth completes the batch, which then runs at once.
        futures = []
        for k in range(6):
            futures += one_turn(engine, loop, [np.ones((1, 4), np.float32)])
            _until(lambda k=k: (engine.running and engine.pending == k) or bool(model.calls))
        results = [f.result(30) for f in futures]
        assert all(error is None for _, error, _ in results)
        assert model.calls == [(6, "loop")] and engine.lingered == lingered + 1


def _until(condition: Any) -> None:
    for _ in range(100000):
        if condition():
            return
        time.sleep(0.0001)
    raise AssertionError("the loop did not queue the request")


def test_a_model_slower_than_loop_seconds_goes_back_to_the_runner(loop, monkeypatch):  # noqa: F811
    monkeypatch.setattr(batching, "LOOP_SECONDS", 0.05)
    model = Recorded()
    engine = Batcher(model, 64)
    for pause in (0.0, 0.0, 0.5, 0.0, 0.0):
        model.pause = pause
        one_turn(engine, loop, [np.ones((1, 4), np.float32)])[0].result(30)
        idle(engine)  # the runner hands the runtime back just after answering
    on_loop = [thread == "loop" for _, thread in model.calls]
    # First the runner (nothing measured); then the loop, the slow batch too (unknown until it ran); after
    # it the runner again; after that quick batch, the loop.
    assert on_loop == [False, True, True, False, True]


def test_a_batch_whose_device_another_model_took_meanwhile_runs_on_the_runner(loop):  # noqa: F811
    model = Recorded()
    free = [True]
    engine = Batcher(model, 64, linger_s=3600, device_free=lambda: free[0])
    one_turn(engine, loop, [np.ones((1, 4), np.float32)])[0].result(30)
    for _ in range(ROUNDS // 2):
        free[0] = True
        [f.result(30) for f in one_turn(engine, loop, [np.ones((1, 4), np.float32)] * 3)]
        rows, _, ended = engine._last
        engine._last = (rows, 1000.0, ended)  # the linger waits for the three clients (see above)
        model.calls.clear()
        futures = one_turn(engine, loop, [np.ones((1, 4), np.float32)])
        _until(lambda: engine.running)
        free[0] = False  # a canary's predict() holds the device while the batch lingers
        futures += one_turn(engine, loop, [np.ones((1, 4), np.float32)] * 2)
        results = [f.result(30) for f in futures]
        assert all(error is None for _, error, _ in results)
        assert len(model.calls) == 1 and model.calls[0][0] == 3
        assert model.calls[0][1].startswith("modelfn-batch")  # the loop never waited for the device


GAP = 1.0  # the linger's gap here (MAX_BATCH_LINGER_MS; the last predict is made to look longer)
STEP = 0.2  # the returning clients come this far apart: well inside one gap, more than one gap in all


def _after_a_batch(engine: Batcher, model: Recorded, on: asyncio.AbstractEventLoop, rows: int) -> None:
    """Run a batch of ``rows`` one-row requests, as if it had taken 1,000 s (the gap is then the linger's)."""
    [f.result(30) for f in one_turn(engine, on, [np.ones((1, 4), np.float32)] * rows)]
    last_rows, _, ended = engine._last
    engine._last = (last_rows, 1000.0, ended)
    model.calls.clear()


def test_clients_coming_back_slower_than_one_gap_in_all_still_share_their_batch(loop):  # noqa: F811
    # A loop that decodes large JSON bodies reads the returning clients more slowly than one gap in all, each
    # well within one gap of the last: they are still one batch (8 rows over 1.4 s, a gap of 1 s), not 5 + 3.
    model = Recorded()
    engine = Batcher(model, 64, linger_s=GAP)
    one_turn(engine, loop, [np.ones((1, 4), np.float32)])[0].result(30)
    for _ in range(3):
        _after_a_batch(engine, model, loop, 8)
        futures = []
        for _ in range(8):
            futures += one_turn(engine, loop, [np.ones((1, 4), np.float32)])
            time.sleep(STEP)  # not a timing assertion: each arrival is five times inside the gap
        results = [f.result(30) for f in futures]
        assert all(error is None for _, error, _ in results)
        assert model.calls == [(8, "loop")]


def test_a_linger_ends_after_its_span_while_rows_keep_coming(loop):  # noqa: F811
    # Rows that keep coming within one gap cannot hold a batch past LINGER_SPAN gaps: after a batch of 40,
    # one row every 0.1 s would need 4 s to make 40; the batch runs at ~4 x 0.3 s with fewer.
    model = Recorded()
    engine = Batcher(model, 64, linger_s=0.3)
    one_turn(engine, loop, [np.ones((1, 4), np.float32)])[0].result(30)
    _after_a_batch(engine, model, loop, 40)
    futures = []
    for _ in range(40):
        futures += one_turn(engine, loop, [np.ones((1, 4), np.float32)])
        time.sleep(0.1)
    results = [f.result(30) for f in futures]
    assert all(error is None for _, error, _ in results)
    assert len(model.calls) > 1 and model.calls[0][0] < 40  # not one batch of all 40 (that took ~4 s to come)
    assert sum(rows for rows, _ in model.calls) == 40


def test_threaded_clients_coming_back_slower_than_one_gap_in_all_still_share_their_batch():
    # The same on the threaded side (the WSGI front's pool threads block in submit()).
    model = Recorded()
    engine = Batcher(model, 64, linger_s=GAP)
    engine.submit({"features": np.ones((1, 4), np.float32)})
    for _ in range(3):
        engine._last = (8, 1000.0, time.perf_counter())  # a batch of 8 that took 1,000 s just ended
        model.calls.clear()
        with ThreadPoolExecutor(8) as pool:
            futures = []
            for _ in range(8):
                futures.append(pool.submit(engine.submit, {"features": np.ones((1, 4), np.float32)}))
                time.sleep(STEP)
            for future in futures:
                np.testing.assert_allclose(future.result(30)["logits"], expected_logits(np.ones((1, 4))), rtol=1e-5)
        assert [rows for rows, _ in model.calls] == [8]
