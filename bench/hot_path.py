"""Microseconds per request that model-health monitoring and release routing add, measured in-process.

    PYTHONPATH=. python -m bench.hot_path [--calls 200000]

The wrk runs of ``bench.release_cost`` cannot resolve a 2% difference on a shared 2-CPU machine
(round-to-round noise is about 5%), so this times the added code itself on the bench's request shapes.
It covers the per-request metrics of ``serving.run``, ``monitoring.observe`` at a sample rate of 0, 10
and 1, and ``release.route`` without and with a canary. Divide by a request's server CPU time
(``cpu_ms_per_request`` in ``bench.release_cost``) for the share of the hot path.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from function.holder import LoadedModel, Split
from function.metrics import create_metrics
from function.monitoring import Monitor, create_health_metrics
from function.release import route
from loader.artifacts import LocalArtifact
from loader.cache import FetchStats
from loader.manifest import FileEntry, Framework, Manifest, PostProcessing, Reference, TensorSpec
from loader.reference import quantile_bins


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    """Median over 5 batches of ``calls // 5`` calls, in microseconds per call."""
    batch = max(calls // 5, 1)
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - start) / batch * 1e6)
    return sorted(samples)[2]


def demo_model(work: Path) -> LoadedModel:
    """A LoadedModel shaped like the bench's demo: 4 features, 3 labelled classes, a drift reference."""
    sample = np.random.default_rng(1).standard_normal((1000, 4))
    bins = [quantile_bins(f"f{i}", sample[:, i]) for i in range(4)]
    scores = quantile_bins("score", np.random.default_rng(2).uniform(0.4, 1.0, 1000))
    manifest = Manifest(
        name="iris",
        version="1",
        framework=Framework.ONNX,
        model_file="model.onnx",
        inputs=[TensorSpec(name="features", datatype="FP32", shape=[-1, 4])],
        outputs=[TensorSpec(name="probabilities", datatype="FP32", shape=[-1, 3])],
        files=[FileEntry(path="model.onnx", sha256="0" * 64, size=1)],
        postprocess=PostProcessing(labels=["a", "b", "c"], softmax=True, top_k=1),
        reference=Reference(sample_sha256="0" * 64, rows=1000, features=bins, scores=scores),
    )
    artifact = LocalArtifact(manifest, work, FetchStats())
    return LoadedModel(artifact, runtime=None, engine=None)  # type: ignore[arg-type]


def main() -> None:
    """Time each piece and print JSON (µs per call)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=200_000)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    inputs = {"features": rng.standard_normal((1, 4)).astype(np.float32)}
    outputs = {"probabilities": np.array([[0.7, 0.2, 0.1]], dtype=np.float32)}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = demo_model(Path(tmp))
        metrics = create_metrics(CollectorRegistry())

        def release_metrics() -> None:
            ok, _, seconds = metrics.release.bound(model, "primary")
            seconds.observe(0.001)
            ok.inc()

        results["serving.run metrics (per request)"] = per_call_us(release_metrics, args.calls)
        for every in (0, 10, 1):
            monitor = Monitor(create_health_metrics(CollectorRegistry()), every, 1000, 64)
            results[f"monitoring.observe, every {every}"] = per_call_us(
                lambda m=monitor: m.observe(model, inputs, outputs, "primary"), args.calls // (10 if every == 1 else 1)
            )
        canary = dataclasses.replace(model, split=Split(model, 10.0, "canary"))
        results["route, no split"] = per_call_us(lambda: route(model, None, None), args.calls)
        results["route, 10% canary, random"] = per_call_us(lambda: route(canary, None, None), args.calls)
        results["route, 10% canary, keyed"] = per_call_us(lambda: route(canary, None, "user-12345"), args.calls)
    print(json.dumps({k: round(v, 3) for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
