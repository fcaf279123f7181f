"""Adaptive batching: concurrent requests for one model share a ``predict()`` along the first dimension.

A request that finds the runtime idle runs at once (no added latency at c=1); requests arriving meanwhile
queue, and when a batch finishes its runner elects the oldest queued request to run the next batch, built
from every queued request with the same non-batch dimensions. So the batch grows exactly while the previous
one runs, one ``predict()`` runs at a time per model, and a model that is swapped out drains its own queue.

Two kinds of request share the queue. ``submit`` blocks its thread, which runs the batch when elected.
``submit_async`` (the worker's event loop) never blocks: an elected one is run by the ``RUNNER`` thread,
and the answers of a batch go back to their loop in one ``call_soon_threadsafe``, so a batch of N costs
two thread hand-offs, not 3N. A model whose last ``predict()`` was short (``LOOP_SECONDS``) has its batches
run by the loop itself, after the loop turn that queued them, with no hand-off at all.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from function.batch_parts import (
    Arrays,
    Deferring,
    Done,
    Item,
    Wait,
    batchable,
    deliver,
    key_of,
    rows_of,
    run_joined,
    run_later,
    running_loop,
    soon,
    until,
)

__all__ = ["LINGER_SPAN", "LOOP_SECONDS", "RUNNER", "Batcher", "batchable"]
Predict = Callable[[Arrays], Arrays]
# Runs the batches that an asynchronous request was elected to lead (one predict() runs at a time anyway).
RUNNER = ThreadPoolExecutor(1, thread_name_prefix="modelfn-batch")
# A model whose last predict() took less than this runs an idle-found asynchronous request in the event loop
# itself: two thread hand-offs cost ~170 µs of latency here, far more than such a predict().
INLINE_SECONDS = 0.001
# A model whose last predict() took less than this has its batches run by the event loop (after the turn that
# read them, the linger waiting on a timer): the two hand-offs and the GIL traffic between the loop and the
# runner cost ~0.2 ms at c=1 and a share of every 32-row cycle of the MLP at c=32. The loop reads nothing
# while predict() runs, so the bound keeps probes and new connections waiting at most this long.
LOOP_SECONDS = 0.05
# A linger goes on while rows keep coming, each within one gap of the last, at most this many gaps in all.
LINGER_SPAN = 4


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
        self._queue: list[Item] = []
        self._want: tuple[object, int] | None = None  # (key, rows still missing) the waiting runner needs
        self._wake: Callable[[], None] | None = None  # the loop's lead waits for _want on a timer: call this
        self._timer: asyncio.TimerHandle | None = None
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
            self._observe(rows_of(inputs) or 1, [0.0])
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
        elif self._in_loop():
            loop.call_soon(self._lead_in_loop, item, loop)  # after this turn's other reads queued theirs
        else:
            RUNNER.submit(self._lead, item)

    def _enqueue(self, item: Item) -> None:
        """Queue a request (lock held); wake the waiting runner only once the rows it waits for are there."""
        self._queue.append(item)
        if self._want is not None and item.key == self._want[0]:
            missing = self._want[1] - item.rows
            self._want = (item.key, missing)
            if missing <= 0:
                self._cond.notify_all()
                wake, self._wake = self._wake, None
                if wake is not None:
                    wake()

    def _wait_rows(self, wait: Wait) -> None:
        """Wait (lock held) until ``wait.rows`` rows of its key are queued, or ``wait`` ends (``until``).

        Each wake-up costs the event loop the GIL, so queueing requests notify only the last one needed.
        """
        missing = wait.rows - self._queued_rows(wait.key)
        if missing <= 0:
            return
        self._want = (wait.key, missing)
        began = time.perf_counter()
        try:
            while (left := self._left(wait, began)) > 0:
                self._cond.wait(left)
        finally:
            self._want = None

    def _left(self, wait: Wait, began: float) -> float:
        """Seconds a wait that began at ``began`` still has (lock held); <= 0 once its rows are queued or it ended."""
        if self._queued_rows(wait.key) >= wait.rows:
            return 0.0
        return until(self._queue, wait, began) - time.perf_counter()

    def _in_loop(self) -> bool:
        """The last predict() was short enough to run its batches in the loop (``_short``)."""
        return self._short(LOOP_SECONDS)

    def _lead_in_loop(self, head: Item, loop: asyncio.AbstractEventLoop) -> None:
        """In ``loop``: run ``head``'s batch now, or once the rows it waits for are queued (a timer bounds it)."""
        with self._cond:
            wait = self._target(head)
            if wait is not None and (missing := wait.rows - self._queued_rows(wait.key)) > 0:
                self._want = wait.key, missing
                fire = partial(self._fire, head, loop, wait, time.perf_counter())
                self._wake = partial(soon, loop, fire)
                self._timer = loop.call_later(wait.gap, fire)
                return
        self._gather(head)

    def _fire(self, head: Item, loop: asyncio.AbstractEventLoop, wait: Wait, began: float) -> None:
        """The rows came or the wait is over, whichever first: run the batch that ``_lead_in_loop`` set up.

        While rows still arrive (each within ``wait.gap`` of the last) the timer is set again: a loop busy
        decoding the returning requests, slower than ``gap`` for all of them, must not split their batch.
        """
        with self._cond:
            if self._timer is None:
                return  # the other of the two ran it
            if (left := self._left(wait, began)) > 0:
                self._timer = loop.call_later(left, partial(self._fire, head, loop, wait, began))
                return
            timer, self._timer, self._wake, self._want = self._timer, None, None, None
        timer.cancel()
        self._gather(head)

    def _gather(self, head: Item) -> None:
        """Run the head's batch of what is queued now: here, unless another model took the device meanwhile."""
        if self._device_free():
            self._lead(head, wait=False, gather=True)
        else:  # its predict() would block the loop until the other one's ends: the runner waits instead
            RUNNER.submit(self._lead, head, False, True)

    def _target(self, head: Item) -> Wait | None:
        """What the head's batch waits for before it is taken (``Wait``); None: take it now.

        Linger: right after a batch of N rows, wait (bounded) for N rows, because the clients just answered
        are coming back. Closed-loop clients send their next request as soon as they read an answer, so a
        request that finds the runtime idle just after a batch is usually the first of that batch's clients
        to return; running it alone would cost a whole weight pass for one row and split the next batch in
        two. The same holds for a request that queued just too late for the last batch and is elected when
        it ends. At c=1 the last batch had one row and nothing waits; after a quiet spell (more than
        ``linger`` since the last batch ended) nothing waits either. Otherwise an elected request waits up
        to ``max_delay`` for a full batch. Called with the lock held.

        The linger ends when no row came for ``gap`` (the bound above), at most ``LINGER_SPAN`` gaps in all:
        a loop that decodes slow requests (large JSON bodies) takes longer than one gap to read them all.
        """
        queued = head in self._queue
        if not isinstance(head.key, tuple):
            return None
        rows, seconds, ended = self._last
        own = 0 if queued else head.rows  # a queued head's rows are counted with the queue's
        expected = min(rows, self._max_rows)
        if (
            self._linger > 0
            and time.perf_counter() - ended <= self._linger
            and own + self._queued_rows(head.key) < expected
        ):
            self.lingered += 1
            gap = min(self._linger, seconds)
            return Wait(head.key, expected - own, gap, gap * LINGER_SPAN)
        if queued and self._max_delay > 0:
            return Wait(head.key, self._max_rows, self._max_delay, self._max_delay)
        return None

    def _quick(self) -> bool:
        """The last predict() was so short that a lone request runs at once, unbatched, in the loop."""
        return self._short(INLINE_SECONDS)

    def _short(self, bound: float) -> bool:
        """The last predict() took less than ``bound`` and no other model holds the device."""
        _, seconds, ended = self._last
        return ended > 0 and seconds < bound and self._device_free()

    def _item(self, inputs: Arrays, callback: tuple[asyncio.AbstractEventLoop, Done] | None = None) -> Item:
        rows = rows_of(inputs)
        # Requests whose inputs disagree on rows, or that fill a batch alone, still queue (one predict
        # at a time) but under a key nothing else shares, so the runtime judges them alone.
        key: object = object() if rows is None or rows >= self._max_rows else key_of(inputs)
        return Item(inputs, rows or 0, key, callback)

    def _lead(self, item: Item, wait: bool = True, gather: bool = False) -> None:
        """Run this request's batch, then hand the runtime to the oldest queued request."""
        try:
            batch = self._take(item, wait, gather)
            self._run(batch, here=gather)
        finally:
            with self._cond:
                following = self._queue[0] if self._queue else None
                self._busy = following is not None
            if following is not None:
                following.lead = True
                if following.callback is None:
                    assert following.done is not None
                    following.done.set()
                elif self._in_loop():
                    soon(following.callback[0], partial(self._lead_in_loop, following, following.callback[0]))
                else:
                    RUNNER.submit(self._lead, following)

    def _take(self, head: Item, wait: bool = True, gather: bool = False) -> list[Item]:
        with self._cond:
            target = self._target(head) if wait else None
            if target is not None:
                self._wait_rows(target)
            elif head not in self._queue and not gather:
                return [head]  # found the runtime idle: run at once
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

    def _queued_rows(self, key: object) -> int:
        return sum(i.rows for i in self._queue if i.key == key)

    def _run(self, batch: list[Item], here: bool = False) -> None:
        started, rows = time.perf_counter(), sum(i.rows for i in batch)
        # The batch's metrics (and predict()'s, through after_answers) wait until its answers are written.
        later: list[Callable[[], None]] = [partial(self._observe, rows or 1, [started - i.queued for i in batch])]
        with Deferring(later):
            try:
                if len(batch) == 1:
                    batch[0].result = self._predict(batch[0].inputs)
                else:
                    run_joined(self._predict, batch)
            except BaseException as exc:  # every request of the batch gets the typed error, nobody hangs
                for i in batch:
                    i.error = exc if i is batch[0] else copy.copy(exc)
        ended = time.perf_counter()
        with self._cond:
            self._last = (rows, ended - started, ended)
        answers: dict[asyncio.AbstractEventLoop, list[Item]] = {}
        for i in batch:
            if i.callback is not None:
                answers.setdefault(i.callback[0], []).append(i)
            elif not i.lead and i.done is not None:
                i.done.set()
        # A batch the loop gathered and ran answers now, not a loop turn later. A quick request run as it is
        # read is answered in the next turn with the others read meanwhile: one pass over the answer code for
        # them all (answering each as it is read took 15% more of the loop's CPU at c=32, bench.loop_cost).
        loop_here = running_loop() if here else None
        for loop, items in answers.items():
            if loop is loop_here:
                deliver(items, later)
                later = []
            else:  # one hand-off per loop
                soon(loop, partial(deliver, items))
        run_later(later)  # not answered here (a thread's batch, or a quick one answered next turn): now
