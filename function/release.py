"""Canary and shadow releases inside one container: which loaded version answers a request, and its metrics.

The alias record names a primary and an optional candidate with a share. Both are loaded once per
container (each with its own engine); a request goes to the candidate when a hash of its route key
(``X-Route-Key``, else ``X-Request-Id``) falls in the share, so the same key lands on the same version on
every instance, or at random when it has no key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from function.errors import ModelNotFound
from function.holder import LoadedModel, Phase, Split
from loader.manifest import AliasRecord, Candidate, Framework

PRIMARY = "primary"
ROUTE_HEADERS = ("X-Route-Key", "X-Request-Id")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
DIFF_BUCKETS = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0)
LABELS = ["model", "version", "role"]


class Routed(NamedTuple):
    """Who answers a request, under which role, and which version shadows it (if any)."""

    model: LoadedModel
    role: str
    shadow: LoadedModel | None


def bucket(candidate_version: str, key: str) -> float:
    """A key's stable position in [0, 100): the same key and candidate give the same answer everywhere."""
    digest = hashlib.blake2b(f"{candidate_version}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100


def route(model: LoadedModel, version: str | None, key: str | None, use_split: bool = True) -> Routed:
    """Pick the version for one request; an explicit ``version`` addresses the primary or the candidate."""
    split = model.split
    if version is not None:
        if version == model.version:
            return Routed(model, PRIMARY, None)
        if split is not None and version == split.candidate.version:
            return Routed(split.candidate, split.mode, None)
        served = model.version if split is None else f"{model.version} and {split.candidate.version}"
        raise ModelNotFound(f"unknown version of {model.name!r}; this server serves {served}")
    if split is None or not use_split:
        return Routed(model, PRIMARY, None)
    point = bucket(split.candidate.version, key) if key else random.random() * 100  # noqa: S311 traffic split
    if point >= split.share:
        return Routed(model, PRIMARY, None)
    if split.mode == "canary":
        return Routed(split.candidate, "canary", None)
    return Routed(model, PRIMARY, split.candidate)


def target_of(model: LoadedModel) -> tuple[str, Candidate | None]:
    """What a loaded release serves, in the alias record's terms (to compare with the store)."""
    split = model.split
    if split is None:
        return model.version, None
    return model.version, Candidate(version=split.candidate.version, share=split.share, mode=split.mode)


def assemble(
    record: AliasRecord, loaded: list[LoadedModel], load: Callable[[str, bool], LoadedModel]
) -> tuple[LoadedModel, list[str]]:
    """The release ``record`` names, reusing loaded versions; returns it and the versions it loaded.

    ``load(version, candidate)``. An ONNX version loaded as a candidate (no spin-wait) is loaded again
    to become the primary, and the other way round; other runtimes are reused in either role.
    """
    have = {_slot(m): dataclasses.replace(m, split=None) for m in loaded}
    fresh: list[str] = []

    def get(version: str, candidate: bool) -> LoadedModel:
        key = next((k for k in have if k[0] == version and k[1] in (candidate, None)), None)
        if key is None:
            model = load(version, candidate)
            key, have[_slot(model)] = _slot(model), model
            fresh.append(version)
        return have[key]

    primary = get(record.version, False)
    c = record.candidate
    if c is None:
        return primary, fresh
    return dataclasses.replace(primary, split=Split(get(c.version, True), c.share, c.mode)), fresh


def _slot(model: LoadedModel) -> tuple[str, bool | None]:
    # Spin-wait is an ORT session option; torch's thread pool is the process's either way.
    return (model.version, model.candidate if model.artifact.manifest.framework is Framework.ONNX else None)


def members(model: LoadedModel | None) -> list[LoadedModel]:
    """The loaded versions of a release: the primary and its candidate."""
    if model is None:
        return []
    return [model] if model.split is None else [model, model.split.candidate]


def quiet(_phase: Phase) -> None:
    """A phase callback for loads beside a serving model (the holder's state stays READY)."""


@dataclass
class ReleaseMetrics:
    """Per version and role: requests answered and their latency, the split, and what shadows found."""

    predictions: Counter
    prediction_seconds: Histogram
    share: Gauge
    shadow_rows: Counter
    shadow_max_abs_diff: Histogram
    shadow_dropped: Counter
    _bound: dict[tuple[str, str, str], tuple[Any, Any, Any]] = dataclasses.field(default_factory=dict)

    def bound(self, model: LoadedModel, role: str) -> tuple[Any, Any, Any]:
        """(ok counter, error counter, latency histogram) for one version and role, bound once."""
        key = (model.name, model.version, role)
        children = self._bound.get(key)
        if children is None:
            children = (
                self.predictions.labels(*key, "ok"),
                self.predictions.labels(*key, "error"),
                self.prediction_seconds.labels(*key),
            )
            self._bound[key] = children
        return children

    def record_split(self, model: LoadedModel, previous: LoadedModel | None) -> None:
        """Export the share each version of the release gets (the old release's series go to 0)."""
        for old in members(previous):
            self.share.labels(old.name, old.version, _role(previous, old)).set(0)
        split = model.split
        self.share.labels(model.name, model.version, PRIMARY).set(100 - (split.share if split else 0))
        if split is not None:
            self.share.labels(model.name, split.candidate.version, split.mode).set(split.share)


def _role(release: LoadedModel | None, model: LoadedModel) -> str:
    if release is None or release.split is None or model is release:
        return PRIMARY
    return release.split.mode


def create_release_metrics(registry: CollectorRegistry) -> ReleaseMetrics:
    """Register the release metrics on an app's registry."""
    return ReleaseMetrics(
        predictions=Counter(
            "modelfn_predictions", "Predictions answered, by version and role", [*LABELS, "outcome"], registry=registry
        ),
        prediction_seconds=Histogram(
            "modelfn_prediction_seconds",
            "Per-request prediction latency (queue + batch), by version and role",
            LABELS,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        share=Gauge(
            "modelfn_release_share",
            "Percent of requests each version of the alias gets",
            LABELS,
            multiprocess_mode="livemax",
            registry=registry,
        ),
        shadow_rows=Counter(
            "modelfn_shadow_rows",
            "Rows a shadow ran beside the primary: whether its answer agreed (top label, else allclose)",
            ["model", "version", "result"],
            registry=registry,
        ),
        shadow_max_abs_diff=Histogram(
            "modelfn_shadow_max_abs_diff",
            "Largest absolute difference between shadow and primary outputs, per request",
            ["model", "version"],
            buckets=DIFF_BUCKETS,
            registry=registry,
        ),
        shadow_dropped=Counter(
            "modelfn_shadow_dropped",
            "Shadow runs skipped because the shadow queue was full (the primary's answer is unaffected)",
            ["model", "version"],
            registry=registry,
        ),
    )
