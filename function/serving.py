"""Glue between settings, the loader and the holder: how this process gets and runs its model."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from function.codec import instances_to_arrays, predictions, v2_inputs, v2_outputs
from function.holder import LoadedModel, Phase
from function.metrics import Metrics
from function.schemas import V2InferRequest
from function.settings import Settings
from loader.artifacts import fetch
from loader.cache import ArtifactCache
from loader.runtimes import DeviceChoice, create_runtime
from loader.signature import check_inputs
from loader.stores import open_store
from loader.uri import ModelURI

log = logging.getLogger("modelfn.model")
__all__ = ["infer_v2", "instances_to_arrays", "loader_for", "predictions", "prune_cache", "run"]


def loader_for(uri: ModelURI, settings: Settings, metrics: Metrics) -> Callable[[Callable[[Phase], None]], LoadedModel]:
    """A loader for the holder: resolve + fetch (verified) into the cache, then load the runtime."""
    cache = ArtifactCache(settings.cache_dir, settings.fetch_retries)
    device = DeviceChoice(settings.device.value)
    options = settings.store_options()

    def load(set_phase: Callable[[Phase], None]) -> LoadedModel:
        set_phase(Phase.FETCHING)
        started = time.perf_counter()
        try:
            with cache.in_use():  # the files must stay until the runtime has read them
                artifact = fetch(open_store(uri.store, options), uri, cache)
                fetched = time.perf_counter()
                set_phase(Phase.LOADING)
                runtime = create_runtime(artifact.manifest.framework, device)
                runtime.load(artifact)
        except Exception:
            metrics.load_failures.inc()
            raise
        model = LoadedModel(artifact, runtime)
        prune_cache(cache, settings.cache_keep_artifacts, metrics)
        metrics.record_load(model, artifact.stats, fetched - started, time.perf_counter() - fetched)
        log.info(
            "model ready",
            extra={
                "fields": {
                    "model": model.name,
                    "version": model.version,
                    "device": runtime.device,
                    "provider": runtime.provider,
                    "bytes_downloaded": artifact.stats.bytes_downloaded,
                }
            },
        )
        return model

    return load


def prune_cache(cache: ArtifactCache, keep: int, metrics: Metrics) -> None:
    """Free the cache of artifacts beyond the ``keep`` most recent (Cloud Run's /tmp is memory)."""
    if keep == 0:
        return
    try:
        freed = cache.prune(keep)
    except OSError as exc:  # a full or read-only cache must not fail a model that already loaded
        log.warning("cache prune failed", extra={"fields": {"error": str(exc)}})
        return
    if freed:
        metrics.cache_pruned_bytes.inc(freed)
        log.info("cache pruned", extra={"fields": {"bytes_freed": freed, "kept": keep}})


def run(model: LoadedModel, arrays: dict[str, np.ndarray], metrics: Metrics) -> dict[str, np.ndarray]:
    """Validate against the signature and time ``predict()``."""
    ordered = check_inputs(model.artifact.manifest.inputs, arrays)
    with metrics.inference_seconds.labels(model.name, model.version).time():
        return model.runtime.predict(ordered)


def infer_v2(
    model: LoadedModel, request: V2InferRequest, metrics: Metrics, blob: bytes | memoryview = b"", binary: bool = False
) -> tuple[dict[str, Any], list[bytes]]:
    """One Open Inference Protocol request -> (response body, raw output tensors); no pre/post-processing.

    ``blob`` holds binary-extension inputs; with ``binary`` the outputs that ask for it come back raw.
    """
    outputs = run(model, v2_inputs(model, request, blob), metrics)
    return v2_outputs(model, request, outputs, binary)
