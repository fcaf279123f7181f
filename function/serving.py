"""Glue between settings, the loader and the holder: how this process gets and runs its model."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from function import memory, monitoring
from function.batch_parts import after_answers
from function.batching import Batcher, batchable
from function.codec import instances_to_arrays, predictions, v2_inputs, v2_outputs
from function.cpus import runtime_threads
from function.holder import LoadedModel, Phase
from function.metrics import Metrics
from function.release import PRIMARY
from function.schemas import V2InferRequest
from function.settings import Settings
from loader.artifacts import LocalArtifact, fetch
from loader.cache import ArtifactCache
from loader.errors import InferenceInputError
from loader.runtimes import DeviceChoice, Runtime, RuntimeOptions, create_runtime
from loader.signature import check_inputs
from loader.stores import open_store
from loader.uri import ModelURI
from loader.warmup import batches_for, warm_up

log = logging.getLogger("modelfn.model")
# One predict() at a time per container, across versions: a canary's, a shadow's or an outgoing model's
# session would otherwise run beside the primary's, each sized to every CPU, and oversubscribe them.
DEVICE_GATE = threading.Lock()
__all__ = ["infer_v2", "instances_to_arrays", "loader_for", "predictions", "prune_cache", "run", "start"]


def loader_for(
    uri: ModelURI, settings: Settings, metrics: Metrics, candidate: bool = False
) -> Callable[[Callable[[Phase], None]], LoadedModel]:
    """A loader for the holder: resolve + fetch (verified) into the cache, then load the runtime.

    A ``candidate`` (canary, shadow) runs beside the primary: its ORT threads do not spin between runs.
    """
    cache = ArtifactCache(
        settings.cache_dir, settings.fetch_retries, settings.fetch_retry_budget_seconds, settings.load_retry_seconds
    )
    device = DeviceChoice(settings.device.value)
    options = settings.store_options()
    runtime_options = RuntimeOptions(runtime_threads(settings.runtime_threads), spin_wait=not candidate)

    def load(set_phase: Callable[[Phase], None]) -> LoadedModel:
        set_phase(Phase.FETCHING)
        started = time.perf_counter()
        try:
            with cache.in_use():  # the files must stay until the runtime has read them
                artifact = fetch(open_store(uri.store, options), uri, cache)
                fetched = time.perf_counter()
                set_phase(Phase.LOADING)
                runtime = create_runtime(artifact.manifest.framework, device, runtime_options)
                runtime.load(artifact)
            loaded = time.perf_counter()
            batches = warm(runtime, artifact, settings, set_phase)
            warmed = time.perf_counter()
        except Exception:
            metrics.load_failures.inc()
            raise
        model = LoadedModel(artifact, runtime, engine_for(artifact, runtime, settings, metrics), candidate=candidate)
        prune_cache(cache, settings.cache_keep_artifacts, metrics)
        metrics.record_load(model, artifact.stats, fetched - started, loaded - fetched)
        metrics.warmup_seconds.observe(warmed - loaded)
        log.info(
            "model ready",
            extra={
                "fields": {
                    "model": model.name,
                    "version": model.version,
                    "device": runtime.device,
                    "provider": runtime.provider,
                    "bytes_downloaded": artifact.stats.bytes_downloaded,
                    "fetch_seconds": round(fetched - started, 4),
                    "load_seconds": round(loaded - fetched, 4),
                    "warmup_seconds": round(warmed - loaded, 4),
                    "warmup_batches": batches,
                }
            },
        )
        if settings.huge_pages and runtime.device == "cpu":  # pinned CUDA staging memory is left as it is
            memory.huge_pages_later(f"{model.name}@{model.version}")
        return model

    return load


def warm(runtime: Runtime, artifact: LocalArtifact, settings: Settings, set_phase: Callable[[Phase], None]) -> int:
    """The warm-up phase: dummy batches before READY, so the first request does not pay for them."""
    set_phase(Phase.WARMING)
    batches = batches_for(runtime, settings.warmup_batches)
    warm_up(runtime, artifact.manifest.inputs, batches, settings.warmup_dynamic_size)
    return batches


def prune_cache(cache: ArtifactCache, keep: int, metrics: Metrics) -> None:
    """Free the cache of artifacts beyond the ``keep`` most recent (Cloud Run's /tmp is memory)."""
    if keep == 0:
        return
    try:
        freed = cache.prune(keep)
    except Exception as exc:  # a full, read-only or foreign cache must never fail a model that already loaded
        metrics.cache_prune_failures.inc()
        log.warning("cache prune failed", extra={"fields": {"error": f"{type(exc).__name__}: {exc}"}})
        return
    if freed:
        metrics.cache_pruned_bytes.inc(freed)
        log.info("cache pruned", extra={"fields": {"bytes_freed": freed, "kept": keep}})


def engine_for(artifact: LocalArtifact, runtime: Runtime, settings: Settings, metrics: Metrics) -> Batcher:
    """The model's one inference owner: batches when the signature allows and ``MAX_BATCH_SIZE`` > 1."""
    manifest = artifact.manifest
    timer = metrics.inference_seconds.labels(manifest.name, manifest.version)

    def predict(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with DEVICE_GATE:
            began = time.perf_counter()
            try:
                return runtime.predict(inputs)
            finally:  # observed once the batch's answers are written (at once outside a batch)
                after_answers(partial(timer.observe, time.perf_counter() - began))

    rows = settings.max_batch_size if batchable(manifest) else 1
    delay, linger = settings.max_batch_delay_ms / 1000, settings.max_batch_linger_ms / 1000
    return Batcher(predict, rows, delay, metrics.batching.observe, linger, lambda: not DEVICE_GATE.locked())


Shadow = Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], None]


def run(
    model: LoadedModel,
    arrays: dict[str, np.ndarray],
    metrics: Metrics,
    role: str = PRIMARY,
    shadow: Shadow | None = None,
) -> dict[str, np.ndarray]:
    """Validate against the signature (before queueing: a bad request never joins a batch), then predict.

    ``role`` labels the version's metrics (primary, canary, shadow); ``shadow`` gets the inputs and this
    answer afterwards, to run the candidate off the request path.
    """
    ordered = check_inputs(model.artifact.manifest.inputs, arrays)
    settle = _settlement(model, ordered, metrics, role, shadow)
    try:
        if model.engine is not None:
            outputs = model.engine.submit(ordered)
        else:
            with metrics.inference_seconds.labels(model.name, model.version).time():
                outputs = model.runtime.predict(ordered)
    except Exception as exc:
        settle(None, exc)
        raise
    settle(outputs, None)
    return outputs


def start(
    model: LoadedModel,
    arrays: dict[str, np.ndarray],
    metrics: Metrics,
    routing: tuple[str, Shadow | None],
    loop: asyncio.AbstractEventLoop,
    then: Callable[[dict[str, np.ndarray] | None, BaseException | None], None],
) -> None:
    """``run`` without blocking (the worker's event loop): ``then(outputs, error)`` is called later in ``loop``.

    ``arrays`` come checked against this model's signature, in its order (``inference.v2_prepare`` and
    ``v1_prepare`` check them before anything is queued). The model must have an engine.
    """
    assert model.engine is not None
    settle = _settlement(model, arrays, metrics, *routing)

    def done(outputs: dict[str, np.ndarray] | None, error: BaseException | None) -> None:
        then(outputs, error)
        after_answers(partial(_settle_quietly, settle, outputs, error))

    model.engine.submit_async(arrays, loop, done)


def _settle_quietly(settle: Callable[..., None], outputs: dict[str, np.ndarray] | None, error: Any) -> None:
    try:
        settle(outputs, error)
    except Exception:  # metrics, monitoring or the shadow must never reach the client's answer
        log.exception("after-predict bookkeeping failed")


def _settlement(
    model: LoadedModel, ordered: dict[str, np.ndarray], metrics: Metrics, role: str, shadow: Shadow | None
) -> Callable[[dict[str, np.ndarray] | None, BaseException | None], None]:
    """What follows a predict: the version's counters and latency, sampled monitoring, the shadow."""
    ok, failed, seconds = metrics.release.bound(model, role)
    started = time.perf_counter()

    def settle(outputs: dict[str, np.ndarray] | None, error: BaseException | None) -> None:
        if error is not None:
            if not isinstance(error, InferenceInputError):  # the client's fault (found inside a joined batch)
                failed.inc()
            return
        assert outputs is not None
        seconds.observe(time.perf_counter() - started)
        ok.inc()
        monitoring.observe(model, ordered, outputs, metrics, role)  # this request's own rows, sampled
        if shadow is not None:
            shadow(ordered, outputs)

    return settle


def infer_v2(
    model: LoadedModel,
    request: V2InferRequest,
    metrics: Metrics,
    blob: bytes | memoryview = b"",
    binary: bool = False,
    routing: tuple[str, Shadow | None] = (PRIMARY, None),
) -> tuple[dict[str, Any], list[bytes]]:
    """One Open Inference Protocol request -> (response body, raw output tensors); no pre/post-processing.

    ``blob`` holds binary-extension inputs; with ``binary`` the outputs that ask for it come back raw.
    """
    outputs = run(model, v2_inputs(model, request, blob), metrics, *routing)
    return v2_outputs(model, request, outputs, binary)
