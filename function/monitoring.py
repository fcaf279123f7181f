"""Model health metrics, sampled off the hot path: confidence, predicted labels, input/output drift (PSI).

``observe()`` runs after every ``predict()``; all but every Nth call (MONITOR_SAMPLE_EVERY) return after
one counter step. A sampled call adds at most MONITOR_MAX_ROWS rows to a bounded per-version window of
bin indices, so PSI against the manifest's reference bins costs O(rows x features), never O(window).
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from flask import Flask
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from function.holder import LoadedModel
from function.metrics import Metrics
from function.settings import Settings
from loader.manifest import FeatureBins, Manifest
from loader.reference import psi, top_scores

log = logging.getLogger("modelfn.monitoring")

CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
MIN_ROWS = 100  # PSI of a handful of rows is noise; export once the window holds this many (or is full)
KEEP_VERSIONS = 4  # hot swaps and canaries: old versions' windows are dropped beyond this
LABELS = ["model", "version", "role"]
_MONITORS: weakref.WeakKeyDictionary[CollectorRegistry, Monitor] = weakref.WeakKeyDictionary()


@dataclass
class HealthMetrics:
    """The model-health metrics, on the app's registry."""

    confidence: Histogram
    predicted_labels: Counter
    sampled_rows: Counter
    input_psi: Gauge
    input_psi_max: Gauge
    output_psi: Gauge
    window_rows: Gauge


def create_health_metrics(registry: CollectorRegistry) -> HealthMetrics:
    """Register the model-health metrics; gauges aggregate workers as the max over live processes."""

    def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, [*LABELS, *extra], multiprocess_mode="livemax", registry=registry)

    return HealthMetrics(
        confidence=Histogram(
            "modelfn_prediction_confidence",
            "Top score of sampled classifier predictions",
            LABELS,
            buckets=CONFIDENCE_BUCKETS,
            registry=registry,
        ),
        predicted_labels=Counter(
            "modelfn_predicted_labels", "Predicted label of sampled rows", [*LABELS, "label"], registry=registry
        ),
        sampled_rows=Counter("modelfn_monitor_sampled_rows", "Rows model health observed", LABELS, registry=registry),
        input_psi=gauge("modelfn_input_psi", "PSI of an input feature's window against its reference", ("feature",)),
        input_psi_max=gauge("modelfn_input_psi_max", "Largest input feature PSI"),
        output_psi=gauge("modelfn_output_psi", "PSI of the top score's window against the reference scores"),
        window_rows=gauge("modelfn_drift_window_rows", "Rows in the drift window"),
    )


class BinWindow:
    """The last ``size`` rows as bin indices per feature, with running counts per (feature, bin)."""

    def __init__(self, bins: list[FeatureBins], size: int) -> None:
        width = max(len(b.edges) for b in bins)
        # Pad with +inf so one vectorised comparison bins every feature; padded bins expect (and get) nothing.
        self.edges = np.full((len(bins), width), np.inf)
        self.expected = np.zeros((len(bins), width + 1))
        for i, b in enumerate(bins):
            self.edges[i, : len(b.edges)] = b.edges
            self.expected[i, : len(b.expected)] = b.expected
        self.nbins = width + 1
        self.offsets = np.arange(len(bins)) * self.nbins
        self.rows = np.zeros((size, len(bins)), dtype=np.int64)
        self.counts = np.zeros((len(bins), self.nbins), dtype=np.int64)
        self.filled = 0
        self.pos = 0

    def add(self, x: np.ndarray) -> None:
        """Bin ``(n, F)`` values and slide them into the window (rows hold flat ``feature * nbins + bin``)."""
        size = len(self.rows)
        new = (self.edges[None, :, :] <= x[-size:, :, None]).sum(axis=2) + self.offsets
        n = len(new)
        flat = self.counts.reshape(-1)
        if self.pos + n <= size:  # the common case: one contiguous slice, no modulo arithmetic
            if self.filled == size:
                np.subtract.at(flat, self.rows[self.pos : self.pos + n].ravel(), 1)
            self.rows[self.pos : self.pos + n] = new
        else:
            slots = (self.pos + np.arange(n)) % size
            overflow = self.filled + n - size  # the last ``overflow`` slots written hold the oldest rows
            np.subtract.at(flat, self.rows[slots[n - overflow :]].ravel(), 1)
            self.rows[slots] = new
        np.add.at(flat, new.ravel(), 1)
        self.filled = min(size, self.filled + n)
        self.pos = (self.pos + n) % size

    def psi(self) -> list[float]:
        """PSI per feature of the window's rows."""
        values: list[float] = psi(self.expected, self.counts).tolist()
        return values


class VersionMonitor:
    """Health state of one model version."""

    def __init__(self, manifest: Manifest, metrics: HealthMetrics, window: int, max_rows: int, role: str) -> None:
        self.manifest = manifest
        self.metrics = metrics
        self.max_rows = max_rows
        self.key = (manifest.name, manifest.version, role)
        post = manifest.postprocess
        self.classifier = post.labels is not None or post.softmax or post.top_k is not None
        ref = manifest.reference
        self.features = BinWindow(ref.features, window) if ref else None
        self.scores = BinWindow([ref.scores], window) if ref and ref.scores else None
        self.lock = threading.Lock()
        self.pending = 0
        # Children resolved once: labels() takes a lock and a dict lookup per call.
        self.sampled = metrics.sampled_rows.labels(*self.key)
        self.confidence = metrics.confidence.labels(*self.key)
        labels = post.labels or []
        self.label_counts = [metrics.predicted_labels.labels(*self.key, name) for name in labels]
        self.feature_psi = [metrics.input_psi.labels(*self.key, b.name) for b in ref.features] if ref else []
        self.psi_max = metrics.input_psi_max.labels(*self.key)
        self.output_psi = metrics.output_psi.labels(*self.key)
        self.window_rows = metrics.window_rows.labels(*self.key)

    def update(self, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> None:
        """Feed one sampled batch (at most max_rows rows of it)."""
        manifest = self.manifest
        y = outputs[manifest.outputs[0].name][: self.max_rows]
        rows = len(y)
        if rows == 0:
            return
        self.sampled.inc(rows)
        scores = top_scores(y, manifest.postprocess) if self.classifier or self.scores else None
        if scores is not None:
            scores = scores[np.isfinite(scores)]  # one NaN would poison the histogram's sum for good
        if self.classifier and scores is not None:
            for score in scores.tolist():
                self.confidence.observe(score)
        if self.label_counts:
            best = np.bincount(y.reshape(rows, -1).argmax(axis=1), minlength=len(self.label_counts))
            for i in np.flatnonzero(best).tolist():
                self.label_counts[i].inc(int(best[i]))
        if self.features is not None:
            x = np.asarray(inputs[manifest.inputs[0].name][:rows], dtype=np.float64).reshape(rows, -1)
            with self.lock:
                self.features.add(x)
                if scores is not None and self.scores is not None:
                    self.scores.add(scores.reshape(-1, 1))
                self.pending += rows
                # PSI moves little per row: recompute after 2% of the window is new, not after every sample.
                if self.pending >= max(1, len(self.features.rows) // 50):
                    self.pending = 0
                    self._export(self.features)

    def _export(self, features: BinWindow) -> None:
        self.window_rows.set(features.filled)
        if features.filled < min(MIN_ROWS, len(features.rows)):
            return
        values = features.psi()
        for gauge, value in zip(self.feature_psi, values, strict=True):
            gauge.set(value)
        self.psi_max.set(max(values))
        if self.scores is not None:
            self.output_psi.set(self.scores.psi()[0])


class Monitor:
    """Samples ``observe()`` calls and keeps one VersionMonitor per recent (model, version, role)."""

    def __init__(self, metrics: HealthMetrics, every: int, window: int, max_rows: int) -> None:
        self.metrics, self.every, self.window, self.max_rows = metrics, every, window, max_rows
        self._calls = itertools.count()  # next() is atomic under the GIL: no lock on the unsampled path
        self._versions: OrderedDict[tuple[str, str, str], VersionMonitor] = OrderedDict()
        self._lock = threading.Lock()
        self._warned = False

    def observe(
        self, model: LoadedModel, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray], role: str
    ) -> None:
        """Feed every Nth call; a monitoring fault is logged once and never fails the request."""
        if self.every == 0 or next(self._calls) % self.every:
            return
        try:
            self._version(model.artifact.manifest, role).update(inputs, outputs)
        except Exception:
            if not self._warned:
                self._warned = True
                log.exception("model health monitoring failed; predictions are unaffected")

    def _version(self, manifest: Manifest, role: str) -> VersionMonitor:
        key = (manifest.name, manifest.version, role)
        with self._lock:
            state = self._versions.get(key)
            if state is None:
                state = VersionMonitor(manifest, self.metrics, self.window, self.max_rows, role)
                self._versions[key] = state
                while len(self._versions) > KEEP_VERSIONS:
                    self._versions.popitem(last=False)
            return state


def observe(
    model: LoadedModel,
    inputs: dict[str, np.ndarray],
    outputs: dict[str, np.ndarray],
    metrics: Metrics,
    role: str = "primary",
) -> None:
    """The hot-path hook after ``predict()``: a no-op for apps without monitoring (e.g. a bare Metrics)."""
    monitor = _MONITORS.get(metrics.registry)
    if monitor is not None:
        monitor.observe(model, inputs, outputs, role)


def init_app(app: Flask, metrics: Metrics, settings: Settings) -> Monitor:
    """Register the health metrics on the app's registry and enable ``observe()`` for it."""
    monitor = Monitor(
        create_health_metrics(metrics.registry),
        settings.monitor_sample_every,
        settings.monitor_window,
        settings.monitor_max_rows,
    )
    _MONITORS[metrics.registry] = monitor
    app.extensions["modelfn.monitor"] = monitor
    return monitor
