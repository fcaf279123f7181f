"""The batching engine's metrics: rows per predict(), time queued, rows served."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)


@dataclass
class BatchMetrics:
    """Rows per ``predict()``, time queued before a batch starts, rows served."""

    batch_size: Histogram
    queue_seconds: Histogram
    items: Counter

    def observe(self, rows: int, waits: list[float]) -> None:
        """Record one batch."""
        self.batch_size.observe(rows)
        self.items.inc(rows)
        for wait in waits:
            self.queue_seconds.observe(wait)


def create_batch_metrics(registry: CollectorRegistry) -> BatchMetrics:
    """The batching metrics on a registry."""
    return BatchMetrics(
        batch_size=Histogram("modelfn_batch_size", "Rows per predict() call", buckets=SIZE_BUCKETS, registry=registry),
        queue_seconds=Histogram(
            "modelfn_batch_queue_seconds",
            "Time a request waited for its batch to start",
            buckets=WAIT_BUCKETS,
            registry=registry,
        ),
        items=Counter("modelfn_batch_items", "Rows run by predict() (rate() = items/s)", registry=registry),
    )
