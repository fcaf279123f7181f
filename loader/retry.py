"""Retry transient storage errors with capped exponential backoff, full jitter and a total time budget."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from loader.errors import StoreUnavailable

T = TypeVar("T")

# Total seconds one operation may spend retrying; a blackholed store must surface as a failure (and a
# reason on /readyz) after about this long plus one request timeout, not retries x timeout.
DEFAULT_BUDGET_SECONDS = 30.0


def with_retries(
    operation: Callable[[], T],
    retries: int,
    base_delay: float = 0.2,
    max_delay: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    budget: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``operation``; on ``StoreUnavailable`` wait and retry, up to ``retries`` times and ``budget`` seconds."""
    budget = DEFAULT_BUDGET_SECONDS if budget is None else budget
    deadline = clock() + budget
    attempt = 0
    while True:
        try:
            return operation()
        except StoreUnavailable:
            # Full jitter spreads a fleet of cold-starting instances over the backoff window.
            delay = random.uniform(0, min(max_delay, base_delay * 2**attempt))  # noqa: S311
            if attempt >= retries or clock() + delay >= deadline:
                raise
            sleep(delay)
            attempt += 1
