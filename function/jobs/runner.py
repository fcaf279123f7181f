"""``modelfn batch run``: one shard of an input object (or prefix) -> one part file plus its status."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from function.errors import RequestError
from function.events.predict import Predictor
from function.holder import LoadedModel, Phase
from function.jobs import readers
from function.jobs.objects import stat
from function.jobs.shards import Shard, input_format
from function.jobs.status import StatusBoard
from function.jobs.writer import PartWriter
from function.metrics import create_metrics
from function.serving import loader_for
from function.settings import Settings
from loader.errors import InferenceInputError, ModelExecutionError, ModelfnError
from loader.stores import Store, open_store
from loader.uri import parse_model_uri, parse_store_uri

log = logging.getLogger("modelfn.batch")
# Bad data, not a bad service: the shard leaves an error report and a rerun would fail the same way.
PERMANENT = (InferenceInputError, RequestError, ModelExecutionError)


@dataclass
class Input:
    """The objects a job reads: one object, or every supported object under a prefix (sorted)."""

    store: Store
    keys: list[str]
    prefix: bool
    infos: dict[str, Any] = field(default_factory=dict)


def open_input(uri: str, options: dict[str, str | None], output_uri: str = "") -> Input:
    """An object URI (known suffix) or a prefix URI (never reading back this job's own outputs)."""
    location = parse_store_uri(uri)
    try:
        input_format(location.prefix)
    except InferenceInputError:
        store = open_store(location, options)
        own = parse_store_uri(output_uri).uri.rstrip("/") + "/" if output_uri else None
        keys = sorted(
            k
            for k in store.list_keys("")
            if _supported(k) and not (own and f"{store.location.uri}/{k}".startswith(own))
        )
        return Input(store, keys, prefix=True)
    parent, _, key = location.prefix.rpartition("/")
    if location.scheme == "file":
        parent = parent or "/"
    return Input(open_store(type(location)(location.scheme, location.bucket, parent), options), [key], prefix=False)


def run_shard(settings: Settings, input_uri: str, output_uri: str, shard: Shard) -> dict[str, Any]:
    """Process one shard; permanent input errors leave an error report and raise."""
    options = settings.store_options()
    board = StatusBoard(open_store(output_uri, options), shard, settings.batch_progress_seconds)
    board.start()
    try:
        source = open_input(input_uri, options, output_uri)
        model = _load(settings)
        result = _process(settings, source, model, shard, board)
    except PERMANENT as exc:
        board.fail(exc, permanent=True)
        raise
    except ModelfnError as exc:
        board.fail(exc, permanent=False)
        raise
    board.finish(result)
    return result


def _load(settings: Settings) -> LoadedModel:
    metrics = create_metrics(CollectorRegistry())
    load = loader_for(parse_model_uri(settings.model_uri), settings, metrics)

    def quiet(_: Phase) -> None:
        return None

    return load(quiet)


def _process(settings: Settings, source: Input, model: LoadedModel, shard: Shard, board: StatusBoard) -> dict[str, Any]:
    metrics = create_metrics(CollectorRegistry())
    predictor = Predictor(model, metrics, settings.events_batch_size)
    objects = []
    with PartWriter(settings.batch_output_format) as writer:
        for key in source.keys:
            info = stat(source.store, key)
            before = writer.records
            for batch in _records(settings, readers.Source(source.store, key, info), shard, predictor, model):
                writer.write([{"object": key, **r} for r in batch] if source.prefix else batch)
                board.progress(writer.records)
            objects.append({"key": key, "version": info.version, "size": info.size, "records": writer.records - before})
    try:
        board.store.put_file(shard.name + writer.suffix, writer.path)  # the part appears complete or not at all
    finally:
        writer.discard()
    return {
        "records": writer.records,
        "objects": objects,
        "model": model.name,
        "model_version": model.version,
        "format": settings.batch_output_format,
        "part": shard.name + writer.suffix,
    }


def _records(
    settings: Settings, source: readers.Source, shard: Shard, predictor: Predictor, model: LoadedModel
) -> Iterator[list[Any]]:
    fmt = input_format(source.key)
    size, lines = settings.events_batch_size, settings.max_body_bytes
    names = [s.name for s in model.artifact.manifest.inputs]
    if fmt == "jsonl":
        return readers.jsonl(source, shard, predictor, lines)
    if fmt == "csv":
        return readers.csv(source, shard, predictor, names, lines, size)
    if fmt == "npy":
        return readers.npy(source, shard, predictor, size)
    return readers.parquet(source, shard, predictor, names, size)


def _supported(key: str) -> bool:
    try:
        input_format(key)
    except InferenceInputError:
        return False
    return True
