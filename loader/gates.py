"""Validation gates: ``metric OP number`` checks of an evaluation, recorded in the manifest's provenance."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from loader.errors import InvalidArgument, ModelfnError
from loader.manifest import Evaluation, GateResult, Manifest

# Metrics an evaluation can produce (loader.evaluate); a gate on anything else is a typo, refused up front.
METRICS = ("accuracy", "mae", "rmse", "p50_ms", "p99_ms", "mean_ms", "peak_rss_mb")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
_GATE = re.compile(r"^\s*([a-z0-9_]+)\s*(>=|<=|==|>|<)\s*([-+0-9.eE]+)\s*$")


class GateFailed(ModelfnError):
    """A publish gate did not hold, or a protected alias was asked to point at an ungated version."""


@dataclass(frozen=True)
class Gate:
    """One parsed gate."""

    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"

    def check(self, metrics: dict[str, float]) -> GateResult:
        """The gate against measured metrics; a metric the evaluation could not compute fails it."""
        value = metrics.get(self.metric)
        passed = value is not None and math.isfinite(value) and _OPS[self.op](value, self.threshold)
        return GateResult(gate=str(self), value=value, passed=passed)


def parse_gate(text: str) -> Gate:
    """``accuracy>=0.95`` -> Gate; ModelfnError with the accepted forms otherwise."""
    match = _GATE.match(text)
    if not match:
        raise InvalidArgument(f"gate {text[:60]!r} is not METRIC OP NUMBER (e.g. accuracy>=0.95, p99_ms<=20)")
    metric, op, number = match.groups()
    if metric not in METRICS:
        raise InvalidArgument(f"unknown gate metric {metric!r}; one of {', '.join(METRICS)}")
    try:
        threshold = float(number)
    except ValueError:
        raise InvalidArgument(f"gate {text[:60]!r}: {number[:20]!r} is not a number") from None
    return Gate(metric, op, threshold)


def check_gates(gates: list[Gate], metrics: dict[str, float], dataset_sha256: str, examples: int) -> Evaluation:
    """The evaluation record: every gate's result, passed only when there is a gate and all held."""
    results = [g.check(metrics) for g in gates]
    passed = bool(results) and all(r.passed for r in results)
    return Evaluation(dataset_sha256=dataset_sha256, examples=examples, metrics=metrics, gates=results, passed=passed)


def failure_message(manifest: Manifest, evaluation: Evaluation) -> str:
    """One line naming each failed gate and its measured value."""
    failed = [r for r in evaluation.gates if not r.passed]
    parts = [f"{r.gate} (measured {'n/a' if r.value is None else f'{r.value:g}'})" for r in failed]
    return f"{manifest.name}@{manifest.version} failed gate(s): {'; '.join(parts)}; nothing was published"


def require_passed(manifest: Manifest, alias: str) -> None:
    """Refuse a protected alias for a version whose recorded gates failed or are missing."""
    evaluation = manifest.provenance.evaluation
    where = f"{manifest.name}@{manifest.version}"
    if evaluation is None or not evaluation.gates:
        raise GateFailed(f"alias {alias!r} is protected and {where} was published without gates (--eval/--gate)")
    if not evaluation.passed:
        failed = ", ".join(r.gate for r in evaluation.gates if not r.passed)
        raise GateFailed(f"alias {alias!r} is protected and {where} failed its gates: {failed}")


def protected(alias: str, configured: str, flag: bool) -> bool:
    """True when ALIAS is in the comma-separated PROTECTED_ALIASES setting or --protected was given."""
    return flag or alias in {a.strip() for a in configured.split(",") if a.strip()}
