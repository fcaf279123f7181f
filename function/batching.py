"""Adaptive batching: concurrent requests for one model share a ``predict()`` along the first dimension.

A request that finds the runtime idle runs at once (no added latency at c=1); requests arriving meanwhile
queue, and when a batch finishes its runner elects the oldest queued request to run the next batch, built
from every queued request with the same non-batch dimensions. So the batch grows exactly while the previous
one runs, one ``predict()`` runs at a time per model, and a model that is swapped out drains its own queue.

Two kinds of request share the queue. ``submit`` blocks its thread, which runs the batch when elected.
``submit_async`` (the worker's event loop) never blocks: an elected one is run by the ``RUNNER`` thread,
and the answers of a batch go back to their loop in one ``call_soon_threadsafe``, so a batch of N costs
two thread hand-offs, not 3N.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from loader.errors import InferenceInputError, ModelExecutionError
from loader.manifest import Manifest

log = logging.getLogger("modelfn.batching")
Arrays = dict[str, np.ndarray]
Predict = Callable[[Arrays], Arrays]
Done = Callable[[Arrays | None, BaseException | None], None]  # (outputs, error): exactly one is None
# Runs the batches that an asynchronous request was elected to lead (one predict() runs at a time anyway).
RUNNER = ThreadPoolExecutor(1, thread_name_prefix="modelfn-batch")
# A model whose last predict() took less than this runs an idle-found asynchronous request in the event loop
# itself: two thread hand-offs cost ~170 µs of latency here, far more than such a predict().
INLINE_SECONDS = 0.001


def batchable(manifest: Manifest) -> bool:
    """True when every input and output has a dynamic first dimension (rows are independent)."""
    return all(len(t.shape) > 0 and t.shape[0] == -1 for t in (*manifest.inputs, *manifest.outputs))


class _Item:
    """One request's inputs and, once its batch ran, its outputs or error."""

    __slots__ = ("callback", "done", "error", "inputs", "key", "lead", "loop", "queued", "result", "rows")

    def __init__(
        self, inputs: Arrays, rows: int, key: object, callback: tuple[asyncio.AbstractEventLoop, Done] | None = None
    ) -> None:
        self.inputs = inputs
        self.rows = rows
        self.key = key
        self.queued = time.perf_counter()
        self.done: threading.Event | None = None  # only a queued request waits (a lone one needs none)
        self.lead = False  # set instead of a result: this request runs the next batch
        self.result: Arrays | None = None
        self.error: BaseException | None = None
        self.callback = callback  # asynchronous: (loop, done) instead of a waiting thread

    def outcome(self) -> Arrays:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class Batcher:
    """Runs ``predict`` for one model, batching concurrent compatible requests up to ``max_rows`` rows."""

    def __init__(
        self,
        predict: Predict,
        max_rows: int,
        max_delay_s: float = 0.0,
        observe: Callable[[int, list[float]], None] | None = None,
        linger_s: float = 0.0,
        device_free: Callable[[], bool] = lambda: True,
    ) -> None:
        self._predict = predict
        self._max_rows = max_rows
        self._max_delay = max_delay_s
        self._linger = linger_s
        self._device_free = device_free
        self._last = (0, 0.0, 0.0)  # the last batch: rows, predict seconds, when it ended
        self.lingered = 0  # requests that found the runtime idle and waited for the last batch's clients
        self._observe = observe or (lambda rows, waits: None)
        self._cond = threading.Condition()
        self._queue: list[_Item] = []
        self._want: tuple[object, int] | None = None  # (key, rows still missing) the waiting runner needs
        self._busy = False

    @property
    def enabled(self) -> bool:
        """False when every request runs on its own (``MAX_BATCH_SIZE=1`` or no dynamic first dim)."""
        return self._max_rows > 1

    @property
    def running(self) -> bool:
        """A batch is running (or its runner was elected)."""
        with self._cond:
            return self._busy

    @property
    def pending(self) -> int:
        """Requests queued behind the running batch."""
        with self._cond:
            return len(self._queue)

    def submit(self, inputs: Arrays) -> Arrays:
        """Run validated inputs (signature order) and return exactly their own output rows."""
        if not self.enabled:
            self._observe(_rows(inputs) or 1, [0.0])
            return self._predict(inputs)
        item = self._item(inputs)
        with self._cond:
            if self._busy:
                item.done = threading.Event()
                self._enqueue(item)
            else:
                self._busy = True
                item.lead = True
        if item.done is not None:
            item.done.wait()
        if item.lead:
            self._lead(item)
        return item.outcome()

    def submit_async(self, inputs: Arrays, loop: asyncio.AbstractEventLoop, done: Done) -> None:
        """Queue validated inputs without blocking; ``done(outputs, error)`` is called later in ``loop``."""
        item = self._item(inputs, (loop, done))
        if not self.enabled:
            if self._quick():
                self._run([item])
            else:
                RUNNER.submit(self._run, [item])
            return
        with self._cond:
            lead = not self._busy
            if lead:
                self._busy = item.lead = True
            else:
                self._enqueue(item)
        if not lead:
            return
        if self._quick():
            self._lead(item, wait=False)  # here, in the loop: no linger (the loop is who reads the next requests)
        else:
            RUNNER.submit(self._lead, item)

    def _enqueue(self, item: _Item) -> None:
        """Queue a request (lock held); wake the waiting runner only once the rows it waits for are there."""
        self._queue.append(item)
        if self._want is not None and item.key == self._want[0]:
            missing = self._want[1] - item.rows
            self._want = (item.key, missing)
            if missing <= 0:
                self._cond.notify_all()

    def _wait_rows(self, key: object, rows: int, timeout: float) -> None:
        """Wait (lock held) until ``rows`` rows of ``key`` are queued, or ``timeout``.

        Each wake-up costs the event loop the GIL, so queueing requests notify only the last one needed.
        """
        missing = rows - self._queued_rows(key)
        if missing <= 0:
            return
        self._want = (key, missing)
        try:
            self._cond.wait_for(lambda: self._queued_rows(key) >= rows, timeout)
        finally:
            self._want = None

    def _quick(self) -> bool:
        """The last predict() was short and no other model holds the device: running here cannot stall the loop."""
        _, seconds, ended = self._last
        return ended > 0 and seconds < INLINE_SECONDS and self._device_free()

    def _item(self, inputs: Arrays, callback: tuple[asyncio.AbstractEventLoop, Done] | None = None) -> _Item:
        rows = _rows(inputs)
        # Requests whose inputs disagree on rows, or that fill a batch alone, still queue (one predict
        # at a time) but under a key nothing else shares, so the runtime judges them alone.
        key: object = object() if rows is None or rows >= self._max_rows else _key(inputs)
        return _Item(inputs, rows or 0, key, callback)

    def _lead(self, item: _Item, wait: bool = True) -> None:
        """Run this request's batch, then hand the runtime to the oldest queued request."""
        try:
            batch = self._take(item, wait)
            self._run(batch)
        finally:
            with self._cond:
                following = self._queue[0] if self._queue else None
                self._busy = following is not None
            if following is not None:
                following.lead = True
                if following.callback is not None:
                    RUNNER.submit(self._lead, following)
                elif following.done is not None:
                    following.done.set()

    def _take(self, head: _Item, wait: bool = True) -> list[_Item]:
        with self._cond:
            if head not in self._queue:
                if not wait or not self._lingered(head, queued=False):
                    return [head]  # found the runtime idle: run at once
            elif wait and self._lingered(head, queued=True):
                pass  # a straggler of the last batch, elected: it waited for that batch's clients too
            elif self._max_delay > 0 and isinstance(head.key, tuple):
                self._wait_rows(head.key, self._max_rows, self._max_delay)
            batch, rest, rows = [head], [], head.rows
            for queued in self._queue:
                if queued is head:
                    continue
                if queued.key == head.key and rows + queued.rows <= self._max_rows:
                    batch.append(queued)
                    rows += queued.rows
                else:
                    rest.append(queued)
            self._queue = rest
            return batch

    def _lingered(self, head: _Item, queued: bool) -> bool:
        """Right after a batch of N rows, wait (bounded) for N rows: the clients just answered are coming back.

        Closed-loop clients send their next request as soon as they read an answer, so a request that finds
        the runtime idle just after a batch is usually the first of that batch's clients to return; running
        it alone would cost a whole weight pass for one row and split the next batch in two. The same holds
        for a request that queued just too late for the last batch and is elected when it ends. At c=1 the
        last batch had one row and nothing waits; after a quiet spell (more than ``linger`` since the last
        batch ended) nothing waits either. Called with the lock held.
        """
        rows, seconds, ended = self._last
        expected = min(rows, self._max_rows)
        now = time.perf_counter()
        own = 0 if queued else head.rows  # a queued head's rows are counted with the queue's
        if (
            self._linger <= 0
            or not isinstance(head.key, tuple)
            or now - ended > self._linger
            or own + self._queued_rows(head.key) >= expected
        ):
            return False
        self.lingered += 1
        self._wait_rows(head.key, expected - own, min(self._linger, seconds))
        return True

    def _queued_rows(self, key: object) -> int:
        return sum(i.rows for i in self._queue if i.key == key)

    def _run(self, batch: list[_Item]) -> None:
        started = time.perf_counter()
        self._observe(sum(i.rows for i in batch) or 1, [started - i.queued for i in batch])
        try:
            if len(batch) == 1:
                batch[0].result = self._predict(batch[0].inputs)
            else:
                self._run_joined(batch)
        except BaseException as exc:  # every request of the batch gets the typed error, nobody hangs
            for i in batch:
                i.error = exc if i is batch[0] else copy.copy(exc)
        ended = time.perf_counter()
        with self._cond:
            self._last = (sum(i.rows for i in batch), ended - started, ended)
        answers: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        for i in batch:
            if i.callback is not None:
                answers.setdefault(i.callback[0], []).append(i)
            elif not i.lead and i.done is not None:
                i.done.set()
        for loop, items in answers.items():
            if _running_loop() is loop:  # ran inline in that loop: no wake-up needed
                loop.call_soon(_deliver, items)
                continue
            with contextlib.suppress(RuntimeError):  # a closed loop (worker exit): nobody waits for these
                loop.call_soon_threadsafe(_deliver, items)

    def _run_joined(self, batch: list[_Item]) -> None:
        names = list(batch[0].inputs)
        joined = {n: np.concatenate([i.inputs[n] for i in batch]) for n in names}
        try:
            outputs = self._predict(joined)
        except InferenceInputError:
            # Which request the runtime disliked is unknown: let it judge each alone.
            for i in batch:
                try:
                    i.result = self._predict(i.inputs)
                except Exception as exc:
                    i.error = exc
            return
        total = sum(i.rows for i in batch)
        if any(out.ndim == 0 or out.shape[0] != total for out in outputs.values()):
            raise ModelExecutionError("model returned outputs whose first dimension is not the batch size")
        bounds = np.cumsum([i.rows for i in batch])[:-1]
        parts = {n: np.split(out, bounds) for n, out in outputs.items()}
        for k, i in enumerate(batch):
            i.result = {n: p[k] for n, p in parts.items()}


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _deliver(items: list[_Item]) -> None:
    """In the requests' event loop: each callback gets its outputs or its error."""
    for i in items:
        assert i.callback is not None
        try:
            i.callback[1](i.result if i.error is None else None, i.error)
        except Exception:  # one failing callback must not leave its batchmates unanswered
            log.exception("answering a batched request failed")


def _rows(inputs: Arrays) -> int | None:
    """The common first dimension of every input, or None when they disagree (or are scalars)."""
    firsts = {a.shape[0] if a.ndim else None for a in inputs.values()}
    if len(firsts) != 1:
        return None
    rows = firsts.pop()
    return rows if rows else None


def _key(inputs: Arrays) -> tuple[tuple[str, tuple[int, ...], str], ...]:
    """Requests with equal keys can be concatenated along dim 0."""
    return tuple((n, a.shape[1:], a.dtype.str) for n, a in inputs.items())
