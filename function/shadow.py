"""Shadow runs: the candidate predicts the primary's inputs off the request path and only its metrics remain."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from function.holder import LoadedModel
from function.release import ReleaseMetrics
from loader.errors import InferenceInputError

if TYPE_CHECKING:
    from function.metrics import Metrics

# serving.run, passed in to keep this module free of the serving imports.
Run = Callable[[LoadedModel, dict[str, np.ndarray], "Metrics", str], dict[str, np.ndarray]]

log = logging.getLogger("modelfn.shadow")

THREADS = 8  # several shadow requests in flight let the candidate's engine batch them, as the primary's does
MAX_PENDING = 256  # beyond this a shadow run is dropped (and counted): it must never queue up behind load


def compare(primary: dict[str, np.ndarray], shadow: dict[str, np.ndarray]) -> tuple[int, int, float]:
    """(rows agreeing, rows disagreeing, max abs difference) over the outputs both models produce.

    Rows agree when their top label matches (outputs with a class axis), else when the values are close.
    """
    agree = disagree = 0
    worst = 0.0
    for name, ours in primary.items():
        theirs = shadow.get(name)
        if theirs is None or theirs.shape != ours.shape:
            disagree += len(ours) if ours.ndim else 1
            worst = float("inf")
            continue
        a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
        if a.size:
            worst = max(worst, float(np.max(np.abs(a - b))))
        if a.ndim >= 2 and a.shape[-1] > 1:
            same = (a.argmax(axis=-1) == b.argmax(axis=-1)).reshape(len(a), -1).all(axis=1)
        else:
            same = np.isclose(a, b, rtol=1e-5, atol=1e-6).reshape(max(len(a), 1), -1).all(axis=1)
        agree += int(same.sum())
        disagree += int(len(same) - same.sum())
    return agree, disagree, worst


class ShadowRunner:
    """A small pool running shadow predictions; a full queue drops the run instead of delaying anything."""

    def __init__(self, metrics: ReleaseMetrics, run: Run) -> None:
        self._metrics = metrics
        self._run = run
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0
        self._lock = threading.Lock()

    def submit(
        self, candidate: LoadedModel, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray], metrics: Metrics
    ) -> None:
        """Queue one shadow run of ``inputs`` on ``candidate``, to be compared with the primary's ``outputs``."""
        with self._lock:
            if self._pending >= MAX_PENDING:
                self._metrics.shadow_dropped.labels(candidate.name, candidate.version).inc()
                return
            self._pending += 1
            if self._pool is None:  # created on first use: a container without a shadow starts no threads
                self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="modelfn-shadow")
            pool = self._pool
        pool.submit(self._shadow, candidate, inputs, outputs, metrics)

    def _shadow(
        self, candidate: LoadedModel, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray], metrics: Metrics
    ) -> None:
        try:
            theirs = self._run(candidate, inputs, metrics, "shadow")
        except InferenceInputError as exc:  # the primary took these inputs: for a shadow it is the version's fault
            self._metrics.bound(candidate, "shadow")[1].inc()
            log.debug("shadow refused the primary's inputs: %s", exc)
            return
        except Exception as exc:  # counted as the shadow's error by run(); the primary already answered
            log.debug("shadow run failed: %s", exc)
            return
        finally:
            with self._lock:
                self._pending -= 1
        try:
            agree, disagree, worst = compare(outputs, theirs)
        except Exception:  # a comparison fault must not take the pool thread down
            log.exception("shadow comparison failed")
            return
        m = self._metrics
        m.shadow_rows.labels(candidate.name, candidate.version, "agree").inc(agree)
        m.shadow_rows.labels(candidate.name, candidate.version, "disagree").inc(disagree)
        m.shadow_max_abs_diff.labels(candidate.name, candidate.version).observe(worst)

    def close(self) -> None:
        """Stop the pool (tests, shutdown); queued runs finish first."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
