"""Fixtures for batch jobs: settings serving the linear test model, a shard runner and part merging."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from function.events.predict import Predictor
from function.jobs.runner import run_shard
from function.jobs.shards import Shard
from function.metrics import create_metrics
from function.serving import loader_for
from function.settings import Settings
from loader.uri import parse_model_uri


@pytest.fixture
def job_settings(make_settings: Callable[..., Settings], published: str) -> Callable[..., Settings]:
    """Settings serving lin@latest with a small batch size, so shards span several predict() calls."""

    def factory(**overrides: Any) -> Settings:
        values = {"model_uri": f"{published}/lin", "events_batch_size": 3, "batch_progress_seconds": 0.01}
        values.update(overrides)
        return make_settings(**values)

    return factory


@pytest.fixture
def inline(job_settings: Callable[..., Settings]) -> Predictor:
    """The events path's Predictor on the same model (the inline reference)."""
    settings = job_settings()
    metrics = create_metrics(CollectorRegistry())
    model = loader_for(parse_model_uri(settings.model_uri), settings, metrics)(lambda _: None)
    return Predictor(model, metrics, settings.events_batch_size)


def run_all(settings: Settings, input_uri: str, out: Path, count: int) -> list[dict[str, Any]]:
    """Run shards 0..count-1 in turn and return the union of their JSON Lines parts, in part order."""
    for index in range(count):
        run_shard(settings, input_uri, out.as_uri(), Shard(index, count))
    return merged(out, count) if settings.batch_output_format == "jsonl" else []


def merged(out: Path, count: int, suffix: str = ".jsonl") -> list[dict[str, Any]]:
    """Every record of parts 0..count-1 concatenated (JSON Lines parts)."""
    records = []
    for index in range(count):
        text = (out / f"{Shard(index, count).name}{suffix}").read_text()
        records += [json.loads(line) for line in text.splitlines()]
    return records
