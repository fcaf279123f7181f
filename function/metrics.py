"""Prometheus metrics, aggregated across Gunicorn workers when PROMETHEUS_MULTIPROC_DIR is set."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from flask import Flask, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from function import gpu_metrics
from function.batch_metrics import BatchMetrics, create_batch_metrics
from function.holder import LoadedModel
from function.release import ReleaseMetrics, create_release_metrics
from loader.cache import FetchStats

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Label values a client cannot choose: anything else is "other" (one series, not one per request).
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
STATUS_CODES = frozenset(int(s) for s in HTTPStatus)


def method_label(method: str) -> str:
    """The request method if it is a standard one, else ``other``."""
    return method if method in HTTP_METHODS else "other"


def status_label(code: int) -> str:
    """The status code if it is a registered one, else ``other``."""
    return str(code) if code in STATUS_CODES else "other"


@dataclass
class Metrics:
    """Every metric the service exports, bound to one registry."""

    registry: CollectorRegistry
    requests: Counter
    request_seconds: Histogram
    inference_seconds: Histogram
    artifact_downloads: Counter
    file_downloads: Counter
    fetch_bytes: Counter
    cache_pruned_bytes: Counter
    cache_prune_failures: Counter
    offline_loads: Counter
    fetch_seconds: Histogram
    load_seconds: Histogram
    warmup_seconds: Histogram
    load_failures: Counter
    start_to_ready: Gauge
    model_info: Gauge
    batching: BatchMetrics
    release: ReleaseMetrics
    info_labels: tuple[str, ...] = ()
    _http: dict[tuple[str, str, str], tuple[Any, Any]] = field(default_factory=dict)

    def http(self, route: str, method: str, status: str) -> tuple[Any, Any]:
        """(request counter, latency histogram) for one route, method and status, bound once (labels() ~2 µs)."""
        children = self._http.get((route, method, status))
        if children is None:
            children = (self.requests.labels(route, method, status), self.request_seconds.labels(route, method))
            self._http[(route, method, status)] = children
        return children

    def record_load(self, model: LoadedModel, stats: FetchStats, fetch_s: float, load_s: float) -> None:
        """Record one successful fetch + load."""
        if stats.files_downloaded:
            self.artifact_downloads.inc()
        if model.artifact.offline:
            self.offline_loads.inc()
        self.file_downloads.inc(stats.files_downloaded)
        self.fetch_bytes.inc(stats.bytes_downloaded)
        self.fetch_seconds.observe(fetch_s)
        self.load_seconds.observe(load_s)

    def ready_hook(self, process_start: float) -> Callable[[LoadedModel], None]:
        """The holder's ``on_ready``: model info, start-to-ready, and the release split (old series zeroed)."""
        previous: list[LoadedModel] = []

        def ready(model: LoadedModel) -> None:
            self.record_ready(model, process_start)
            self.release.record_split(model, previous[0] if previous else None)
            previous[:] = [model]

        return ready

    def record_ready(self, model: LoadedModel, process_start: float) -> None:
        """Model-info gauge and time from process start to (first) ready."""
        first = not self.info_labels
        if self.info_labels:
            # clear() does not reach other workers' files in multiprocess mode; zero the old series.
            self.model_info.labels(*self.info_labels).set(0)
        self.info_labels = (model.name, model.version, model.runtime.device, model.runtime.provider)
        self.model_info.labels(*self.info_labels).set(1)
        if first:
            self.start_to_ready.set(time.time() - process_start)


def create_metrics(registry: CollectorRegistry) -> Metrics:
    """Create the metrics on a registry (one per app, so tests can build many apps)."""
    return Metrics(
        registry=registry,
        requests=Counter("modelfn_http_requests", "HTTP requests", ["route", "method", "status"], registry=registry),
        request_seconds=Histogram(
            "modelfn_http_request_seconds",
            "HTTP request latency",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        inference_seconds=Histogram(
            "modelfn_inference_seconds",
            "Model predict() latency",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        artifact_downloads=Counter(
            "modelfn_artifact_downloads", "Artifacts fetched from the store (cache misses)", registry=registry
        ),
        file_downloads=Counter("modelfn_fetch_files", "Artifact files downloaded", registry=registry),
        fetch_bytes=Counter("modelfn_fetch_bytes", "Artifact bytes downloaded", registry=registry),
        cache_pruned_bytes=Counter(
            "modelfn_cache_pruned_bytes", "Bytes freed from the artifact cache by pruning", registry=registry
        ),
        cache_prune_failures=Counter(
            "modelfn_cache_prune_failures", "Cache prunes that failed (logged, never fatal)", registry=registry
        ),
        offline_loads=Counter(
            "modelfn_offline_loads",
            "Loads served from the cache's last verified resolution because the store was unreachable",
            registry=registry,
        ),
        fetch_seconds=Histogram(
            "modelfn_fetch_seconds", "Resolve + fetch phase", buckets=LOAD_BUCKETS, registry=registry
        ),
        load_seconds=Histogram(
            "modelfn_model_load_seconds", "Runtime load phase", buckets=LOAD_BUCKETS, registry=registry
        ),
        warmup_seconds=Histogram(
            "modelfn_model_warmup_seconds", "Warm-up phase (dummy batches)", buckets=LOAD_BUCKETS, registry=registry
        ),
        load_failures=Counter("modelfn_model_load_failures", "Failed load attempts", registry=registry),
        start_to_ready=Gauge(
            "modelfn_start_to_ready_seconds",
            "Process start to model ready",
            multiprocess_mode="livemax",
            registry=registry,
        ),
        model_info=Gauge(
            "modelfn_model_info",
            "The model being served",
            ["name", "version", "device", "provider"],
            multiprocess_mode="livemax",
            registry=registry,
        ),
        batching=create_batch_metrics(registry),
        release=create_release_metrics(registry),
    )


def init_app(app: Flask, metrics: Metrics, multiproc_dir: str | None) -> None:
    """Expose ``/metrics``; with a multiprocess dir, aggregate every worker's files."""

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        registry = metrics.registry
        if multiproc_dir:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=multiproc_dir)
        return Response(generate_latest(registry) + gpu_metrics.app_exposition(), mimetype=CONTENT_TYPE_LATEST)
