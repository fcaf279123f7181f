"""The batching engine's parts: one queued request, the keys that say which requests share a batch, answers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from loader.errors import InferenceInputError, ModelExecutionError
from loader.manifest import Manifest

log = logging.getLogger("modelfn.batching")
Arrays = dict[str, np.ndarray]
Done = Callable[[Arrays | None, BaseException | None], None]  # (outputs, error): exactly one is None


def batchable(manifest: Manifest) -> bool:
    """True when every input and output has a dynamic first dimension (rows are independent)."""
    return all(len(t.shape) > 0 and t.shape[0] == -1 for t in (*manifest.inputs, *manifest.outputs))


class Item:
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


class Wait(NamedTuple):
    """What a batch's head waits for: ``rows`` rows of ``key`` queued, while each comes within ``gap`` seconds
    of the one before (or of the start), and ``span`` seconds at most in all."""

    key: object
    rows: int
    gap: float
    span: float


def until(queue: list[Item], wait: Wait, began: float) -> float:
    """When a wait that began at ``began`` ends (perf_counter): one gap after the last row of its key came."""
    last = max((i.queued for i in queue if i.key == wait.key), default=began)
    return min(began + wait.span, max(last, began) + wait.gap)


def soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """``callback`` in ``loop``'s next turn, from any thread; from ``loop`` itself without a wake-up.

    A closed loop (the worker exiting) drops it: nobody waits for it any more.
    """
    if running_loop() is loop:
        loop.call_soon(callback)
        return
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback)


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


_delivering = threading.local()  # the bookkeeping deferred while a batch runs or its answers go out


class Deferring:
    """While entered, ``after_answers`` on this thread appends to ``later`` (nest-safe; cheaper than a generator)."""

    __slots__ = ("later", "outer")

    def __init__(self, later: list[Callable[[], None]]) -> None:
        self.later = later

    def __enter__(self) -> None:
        self.outer, _delivering.later = getattr(_delivering, "later", None), self.later

    def __exit__(self, *exc: object) -> None:
        _delivering.later = self.outer


def run_later(later: list[Callable[[], None]]) -> None:
    """Run deferred bookkeeping; one failing piece never stops the rest."""
    for work in later:
        try:
            work()
        except Exception:  # metrics or a log line must never stop the rest
            log.exception("bookkeeping after a batch failed")


def deliver(items: list[Item], later: list[Callable[[], None]] | None = None) -> None:
    """In the requests' event loop: each callback gets its outputs or its error, then the deferred bookkeeping runs.

    Metrics and access lines (``after_answers``, and the batch's own ``later``) wait until every answer of the
    batch is written: the clients can send their next requests while the loop does them, instead of the last
    answer waiting for them all.
    """
    pending = [] if later is None else later
    with Deferring(pending):
        for i in items:
            assert i.callback is not None
            try:
                i.callback[1](i.result if i.error is None else None, i.error)
            except Exception:  # one failing callback must not leave its batchmates unanswered
                log.exception("answering a batched request failed")
    run_later(pending)


def after_answers(work: Callable[[], None]) -> None:
    """Run ``work`` once the answers being delivered (or of the batch running) are all written; else at once."""
    later = getattr(_delivering, "later", None)
    if later is None:
        work()
    else:
        later.append(work)


def rows_of(inputs: Arrays) -> int | None:
    """The common first dimension of every input, or None when they disagree (or are scalars)."""
    firsts = {a.shape[0] if a.ndim else None for a in inputs.values()}
    if len(firsts) != 1:
        return None
    rows = firsts.pop()
    return rows if rows else None


def key_of(inputs: Arrays) -> tuple[tuple[str, tuple[int, ...], str], ...]:
    """Requests with equal keys can be concatenated along dim 0."""
    return tuple((n, a.shape[1:], a.dtype.str) for n, a in inputs.items())


def run_joined(predict: Callable[[Arrays], Arrays], batch: list[Item]) -> None:
    """One ``predict`` of the batch's rows joined along dim 0; each item gets exactly its own output rows."""
    names = list(batch[0].inputs)
    joined = {n: np.concatenate([i.inputs[n] for i in batch]) for n in names}
    try:
        outputs = predict(joined)
    except InferenceInputError:
        # Which request the runtime disliked is unknown: let it judge each alone.
        for i in batch:
            try:
                i.result = predict(i.inputs)
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
