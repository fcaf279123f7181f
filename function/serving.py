"""Glue between settings, the loader and the holder: how this process gets and runs its model."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from function import monitoring
from function.batching import Batcher, batchable
from function.binary import decode_inputs, encode_output, wants_binary
from function.cpus import runtime_threads
from function.errors import RequestError
from function.holder import LoadedModel, Phase
from function.metrics import Metrics
from function.schemas import V2InferRequest
from function.settings import Settings
from loader.artifacts import LocalArtifact, fetch
from loader.cache import ArtifactCache
from loader.errors import InferenceInputError
from loader.prepost import postprocess, preprocess
from loader.runtimes import DeviceChoice, Runtime, RuntimeOptions, create_runtime
from loader.signature import V2_TO_NUMPY, check_inputs, check_names, v2_datatype
from loader.stores import open_store
from loader.uri import ModelURI
from loader.warmup import batches_for, warm_up

log = logging.getLogger("modelfn.model")


def loader_for(uri: ModelURI, settings: Settings, metrics: Metrics) -> Callable[[Callable[[Phase], None]], LoadedModel]:
    """A loader for the holder: resolve + fetch (verified) into the cache, then load the runtime."""
    cache = ArtifactCache(
        settings.cache_dir, settings.fetch_retries, settings.fetch_retry_budget_seconds, settings.load_retry_seconds
    )
    device = DeviceChoice(settings.device.value)
    options = settings.store_options()
    threads = runtime_threads(settings.runtime_threads)

    def load(set_phase: Callable[[Phase], None]) -> LoadedModel:
        set_phase(Phase.FETCHING)
        started = time.perf_counter()
        try:
            with cache.in_use():  # the files must stay until the runtime has read them
                artifact = fetch(open_store(uri.store, options), uri, cache)
                fetched = time.perf_counter()
                set_phase(Phase.LOADING)
                runtime = create_runtime(artifact.manifest.framework, device, RuntimeOptions(threads))
                runtime.load(artifact)
            loaded = time.perf_counter()
            batches = warm(runtime, artifact, settings, set_phase)
            warmed = time.perf_counter()
        except Exception:
            metrics.load_failures.inc()
            raise
        model = LoadedModel(artifact, runtime, engine_for(artifact, runtime, settings, metrics))
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
        with timer.time():
            return runtime.predict(inputs)

    rows = settings.max_batch_size if batchable(manifest) else 1
    return Batcher(predict, rows, settings.max_batch_delay_ms / 1000, metrics.batching.observe)


def run(model: LoadedModel, arrays: dict[str, np.ndarray], metrics: Metrics) -> dict[str, np.ndarray]:
    """Validate against the signature (before queueing: a bad request never joins a batch), then predict."""
    ordered = check_inputs(model.artifact.manifest.inputs, arrays)
    if model.engine is not None:
        outputs = model.engine.submit(ordered)
    else:
        with metrics.inference_seconds.labels(model.name, model.version).time():
            outputs = model.runtime.predict(ordered)
    monitoring.observe(model, ordered, outputs, metrics)  # this request's own rows, sampled
    return outputs


def infer_v2(
    model: LoadedModel, request: V2InferRequest, metrics: Metrics, blob: bytes = b"", binary: bool = False
) -> tuple[dict[str, Any], list[bytes]]:
    """One Open Inference Protocol request -> (response body, raw output tensors); no pre/post-processing.

    ``blob`` holds binary-extension inputs; with ``binary`` the outputs that ask for it come back raw.
    """
    check_names(model.artifact.manifest.inputs, [t.name for t in request.inputs])
    outputs = run(model, decode_inputs(request.inputs, blob), metrics)
    wanted = [o.name for o in request.outputs] if request.outputs else list(outputs)
    if any(n not in outputs for n in wanted):
        raise RequestError(f"unknown output name(s) requested; the model returns {list(outputs)}")
    blobs: list[bytes] = []
    encoded = []
    for n in wanted:
        raw_to = blobs if binary and wants_binary(request, n) else None
        encoded.append(encode_output(n, outputs[n], v2_datatype(outputs[n].dtype), raw_to))
    body: dict[str, Any] = {"model_name": model.name, "model_version": model.version, "outputs": encoded}
    if request.id is not None:
        body["id"] = request.id
    return body, blobs


def instances_to_arrays(model: LoadedModel, instances: list[Any]) -> dict[str, np.ndarray]:
    """``instances`` -> batched input arrays, applying the manifest's pre-processing to the first input."""
    manifest = model.artifact.manifest
    specs = manifest.inputs
    if all(isinstance(i, dict) for i in instances):
        columns = {s.name: [i.get(s.name) for i in instances] for s in specs}
        if set().union(*(i.keys() for i in instances)) - columns.keys():
            raise InferenceInputError(f"unknown input name(s); the model takes {[s.name for s in specs]}")
    elif len(specs) == 1:
        columns = {specs[0].name: instances}
    else:
        raise InferenceInputError(
            f"this model takes {len(specs)} inputs: send each instance as an object keyed by input name"
        )
    arrays = {}
    for spec in specs:
        values = columns[spec.name]
        if any(v is None for v in values):
            raise InferenceInputError(f"every instance needs input {spec.name!r}")
        arrays[spec.name] = _as_array(spec.name, values, V2_TO_NUMPY[spec.datatype])
    first = specs[0].name
    arrays[first] = preprocess(arrays[first], manifest.preprocess)
    return arrays


def _as_array(name: str, values: list[Any], dtype: np.dtype) -> np.ndarray:
    try:
        raw = np.asarray(values)
    except ValueError:
        raise InferenceInputError(f"input {name!r}: instances must all have the same shape") from None
    if raw.dtype.kind not in "biuf":
        raise InferenceInputError(f"input {name!r}: instances must be numbers or nested lists of numbers")
    return raw.astype(dtype)


def predictions(model: LoadedModel, outputs: dict[str, np.ndarray]) -> list[Any]:
    """The first output, post-processed into one prediction per instance."""
    manifest = model.artifact.manifest
    return postprocess(outputs[manifest.outputs[0].name], manifest.postprocess)
