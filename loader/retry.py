"""Retry transient storage errors with capped exponential backoff and full jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from loader.errors import StoreUnavailable

T = TypeVar("T")


def with_retries(
    operation: Callable[[], T],
    retries: int,
    base_delay: float = 0.2,
    max_delay: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``operation``; on ``StoreUnavailable`` wait and try again up to ``retries`` more times."""
    attempt = 0
    while True:
        try:
            return operation()
        except StoreUnavailable:
            if attempt >= retries:
                raise
            # Full jitter spreads a fleet of cold-starting instances over the backoff window.
            sleep(random.uniform(0, min(max_delay, base_delay * 2**attempt)))  # noqa: S311
            attempt += 1
