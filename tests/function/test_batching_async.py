"""The batching engine's asynchronous side (the worker's event loop) and the linger after a batch.

Real threads, a real asyncio loop on its own thread, a barrier and a gate that holds the first batch of each
round until every other request queued; many rounds.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from function.batching import Batcher
from loader.errors import ModelExecutionError
from tests.function.test_batching import GatedRuntime, linear
from tests.models import expected_logits

ROUNDS = 15
EACH = 6  # asynchronous and threaded requests per round
# The gate holds inside predict() until others queued; run inline, it would hold the loop they queue from.


def NEVER_INLINE() -> bool:
    return False


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True, name="loop")
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def idle(engine: Batcher) -> None:
    """Wait until no batch runs: a round's first request must find the runtime idle, not queue behind the last."""
    for _ in range(100000):
        if not engine.running:
            return
        time.sleep(0.0001)
    raise AssertionError("the engine never went idle")


def submit_async(engine: Batcher, loop: asyncio.AbstractEventLoop, inputs: dict[str, np.ndarray]) -> Future[Any]:
    """Submit from inside the loop (as the worker does); the future gets the outputs or the error."""
    result: Future[Any] = Future()
    in_loop: list[bool] = []

    def done(outputs: Any, error: BaseException | None) -> None:
        in_loop.append(threading.current_thread() is loop_thread[0])
        result.set_result((outputs, error, in_loop[0]))

    loop_thread: list[threading.Thread] = []

    def start() -> None:
        loop_thread.append(threading.current_thread())
        engine.submit_async(inputs, loop, done)

    loop.call_soon_threadsafe(start)
    return result


def test_async_and_threaded_requests_share_batches_and_get_their_own_rows(loop):
    gate = GatedRuntime(linear)
    engine = Batcher(gate, 1024, device_free=NEVER_INLINE)
    gate.engine = engine
    rng = np.random.default_rng(0)
    shared = 0
    for _ in range(ROUNDS):
        gate.calls.clear()
        inputs = [rng.standard_normal((int(rng.integers(1, 4)), 4)).astype(np.float32) for _ in range(2 * EACH)]
        gate.hold_for = 2 * EACH - 1
        barrier = threading.Barrier(2 * EACH)

        def one(k: int, inputs: list[np.ndarray] = inputs) -> Any:
            barrier.wait()
            if k % 2:
                outputs, error, in_loop = submit_async(engine, loop, {"features": inputs[k]}).result(30)
                assert error is None and in_loop  # answered in the loop it came from
                return outputs["logits"]
            return engine.submit({"features": inputs[k]})["logits"]

        with ThreadPoolExecutor(2 * EACH) as pool:
            answers = list(pool.map(one, range(2 * EACH)))
        for x, y in zip(inputs, answers, strict=True):
            np.testing.assert_allclose(y, expected_logits(x), rtol=1e-5)
        assert sum(len(c["features"]) for c in gate.calls) == sum(len(x) for x in inputs)  # every row ran once
        shared += any(len(c["features"]) > 3 for c in gate.calls)
    assert shared >= ROUNDS // 2  # the two kinds did share batches (the gate holds the first one)


def test_a_runtime_failure_reaches_only_the_async_requests_of_that_batch(loop):
    def predict(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if (inputs["features"] == -1).any():
            raise ModelExecutionError("boom")
        return linear(inputs)

    gate = GatedRuntime(predict)
    engine = Batcher(gate, 4, device_free=NEVER_INLINE)  # 4 rows per batch: the failing row's batch is one of several
    gate.engine = engine
    for _ in range(ROUNDS):
        idle(engine)  # the last round's runner may still be handing the runtime back after its answers
        inputs = [np.full((1, 4), float(k), np.float32) for k in range(8)]
        inputs[5][:] = -1
        gate.hold_for = 7
        futures = [submit_async(engine, loop, {"features": x}) for x in inputs]
        results = [f.result(30) for f in futures]
        errors = [isinstance(error, ModelExecutionError) for _, error, _ in results]
        assert errors[5]
        assert 1 <= sum(errors) <= 4  # only the failing row's batch
        for x, (outputs, error, _) in zip(inputs, results, strict=True):
            if error is None:
                np.testing.assert_allclose(outputs["logits"], expected_logits(x), rtol=1e-5)


def test_a_quick_model_runs_in_the_loop_and_a_slow_one_never_does(loop, monkeypatch):
    from function import batching

    # A threshold far above a numpy predict's time and far below the slow one's: not a timing assertion.
    monkeypatch.setattr(batching, "INLINE_SECONDS", 0.05)
    threads: list[str] = []

    def predict(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        threads.append(threading.current_thread().name)
        if (inputs["features"] == 9).any():
            time.sleep(0.5)  # longer than INLINE_SECONDS: the next request goes to the runner thread
        return linear(inputs)

    engine = Batcher(predict, 64)
    for value in [1.0] * 5 + [9.0] + [1.0] * 3:
        x = np.full((1, 4), value, np.float32)
        outputs, error, in_loop = submit_async(engine, loop, {"features": x}).result(30)
        assert error is None and in_loop
        np.testing.assert_allclose(outputs["logits"], expected_logits(x), rtol=1e-5)
        for _ in range(30000):  # the runner hands the runtime back just after answering: c=1 means idle again
            if not engine.running:
                break
            time.sleep(0.0001)
    on_loop = [name == "loop" for name in threads]
    # The first runs on the runner (nothing measured yet); then quick ones run in the loop, the slow one
    # too (its time was unknown until it ran), and the request right after it on the runner again.
    assert on_loop == [False, True, True, True, True, True, False, True, True]


class Slow:
    """``linear``, taking a second when ``slow`` is set: the linger's bound (the last predict's time) is long."""

    def __init__(self) -> None:
        self.slow = False

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.slow:
            time.sleep(1.0)  # not a timing assertion: it only makes the bound generous on a slow machine
        return linear(inputs)


def wave(engine: Batcher, n: int) -> None:
    """``n`` threaded requests of one row, released together."""
    barrier = threading.Barrier(n)

    def one(_: int) -> None:
        barrier.wait()
        engine.submit({"features": np.ones((1, 4), np.float32)})

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))


def test_after_a_batch_the_next_waits_for_as_many_rows_and_a_lone_request_never_waits():
    slow = Slow()
    gate = GatedRuntime(slow)
    engine = Batcher(gate, 64, linger_s=3600)  # bounded by the last predict's time, not by this
    gate.engine = engine
    for _ in range(5):  # c=1: the last batch had one row, so nothing lingers
        engine.submit({"features": np.ones((1, 4), np.float32)})
    assert engine.lingered == 0 and [len(c["features"]) for c in gate.calls] == [1] * 5
    for _ in range(ROUNDS // 3):
        engine.submit({"features": np.ones((1, 4), np.float32)})  # a lone request: the last batch is one row
        gate.calls.clear()
        gate.hold_for, slow.slow = 7, True  # the first runs alone and holds the runtime until seven queued
        wave(engine, 8)
        assert [len(c["features"]) for c in gate.calls] == [1, 7]
        gate.calls.clear()
        slow.slow = False
        lingered = engine.lingered
        # Right after the batch of 7, its seven clients come back: the first to arrive finds the runtime
        # idle and waits for the other six, so they run as one batch instead of 1 + 6.
        wave(engine, 7)
        assert [len(c["features"]) for c in gate.calls] == [7] and engine.lingered == lingered + 1


def test_no_linger_after_a_quiet_spell():
    gate = GatedRuntime(linear)
    engine = Batcher(gate, 64, linger_s=0.05)
    gate.engine = engine
    gate.hold_for = 3
    wave(engine, 4)
    assert [len(c["features"]) for c in gate.calls] == [1, 3]
    time.sleep(0.2)  # longer than the linger: the clients of that batch are not coming back
    engine.submit({"features": np.ones((1, 4), np.float32)})
    assert engine.lingered == 0


def test_a_failing_answer_never_leaves_its_batchmates_waiting(loop):
    gate = GatedRuntime(linear)
    engine = Batcher(gate, 64, device_free=NEVER_INLINE)
    gate.engine = engine
    for _ in range(ROUNDS):
        idle(engine)
        gate.hold_for = 3
        answered: list[Future[Any]] = [Future() for _ in range(4)]

        def done(k: int, outputs: Any, error: BaseException | None, answered: list[Future[Any]] = answered) -> None:
            answered[k].set_result(outputs)
            if k == 1:
                raise RuntimeError("a bug in one request's answer")

        def start(answered: list[Future[Any]] = answered) -> None:
            for k in range(4):
                x = {"features": np.full((1, 4), float(k), np.float32)}
                engine.submit_async(x, loop, lambda o, e, k=k: done(k, o, e))

        loop.call_soon_threadsafe(start)
        outputs = [f.result(30) for f in answered]  # every one answered, the batch of the failing one too
        for k, y in enumerate(outputs):
            np.testing.assert_allclose(y["logits"], expected_logits(np.full((1, 4), float(k))), rtol=1e-5)
