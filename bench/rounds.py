"""Several rounds of the same measurements -> medians (the figures) and [min, max] ranges."""

from __future__ import annotations

import statistics
from typing import Any


def _numbers(values: list[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _combine(values: list[Any], numeric: Any) -> Any:
    if values and all(isinstance(v, dict) for v in values):
        keys = list(dict.fromkeys(k for v in values for k in v))  # a step that failed in one round is absent there
        return {k: _combine([v[k] for v in values if k in v], numeric) for k in keys}
    if values and _numbers(values):
        return numeric(values)
    return values[0] if values else None


def rounds_median(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Leaf-wise median_low over the rounds (an observed value, so batch sizes stay real ones)."""
    return dict(_combine(rounds, statistics.median_low))


def rounds_range(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Leaf-wise [min, max] over the rounds."""
    return dict(_combine(rounds, lambda v: [min(v), max(v)]))
