"""Batch jobs: one input object version -> one JSON Lines output, streamed, written atomically, once."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

from function.context import Context
from function.errors import EventInProgress, RequestError
from function.events.formats import JSONL_SUFFIXES, NPY_SUFFIXES, input_format, iter_lines, iter_npy_rows
from function.events.marker import Marker
from function.events.model import ObjectCreated
from function.events.predict import Predictor
from function.events.scope import Scope
from function.events.spool import spooled_output, sweep
from function.events.stores import StoreCache
from function.holder import LoadedModel
from function.jsonio import dumps_line
from loader.errors import (
    ArtifactNotFound,
    InferenceInputError,
    ModelfnError,
    ObjectChanged,
    StoreConfigError,
    StoreUnavailable,
)
from loader.stores import Store

log = logging.getLogger("modelfn.events")
# Bad data, not a bad service: an error report is written and the delivery is acknowledged. A model
# that fails to run (ModelExecutionError: out of memory, a runtime fault) is the service's problem:
# it propagates as a 5xx, the claim is released and the platform retries the delivery.
PERMANENT = (InferenceInputError, RequestError)
SUPERSEDED = "the object version this event names is gone (overwritten or deleted); a newer version has its own event"


FINAL_STATE = {"processed": "done", "error-report": "failed", "superseded": "superseded"}


def output_key(relative: str) -> str:
    """``a/b.jsonl`` / ``a/b.npy`` -> ``a/b.jsonl`` under the output prefix."""
    return _stem(relative) + ".jsonl"


def error_key(relative: str) -> str:
    """Where the error report for a bad input goes: next to its output."""
    return _stem(relative) + ".error.json"


def _stem(relative: str) -> str:
    lowered = relative.lower()
    for suffix in (*JSONL_SUFFIXES, *NPY_SUFFIXES):
        if lowered.endswith(suffix):
            return relative[: -len(suffix)]
    return relative


class BatchRunner:
    """Runs a job for an input object, guarded by its version's marker."""

    def __init__(self, ctx: Context, scope: Scope, stores: StoreCache) -> None:
        self._ctx = ctx
        self._scope = scope
        self._stores = stores

    def run(self, event: ObjectCreated, relative: str) -> dict[str, Any]:
        """Process once per object version; transient failures propagate (-> 503, retried)."""
        fields = {"object": event.uri, "source_version": event.version, "origin": event.origin}
        try:
            return self._claimed(event, relative, fields)
        except EventInProgress:
            log.info("object version is being processed elsewhere; asking for a retry", extra={"fields": fields})
            raise
        except ModelfnError as exc:
            log.warning(
                "batch job failed; the platform retries",
                extra={"fields": {**fields, "error": f"{type(exc).__name__}: {exc}"}},
            )
            raise _public(exc) from None

    def _claimed(self, event: ObjectCreated, relative: str, fields: dict[str, Any]) -> dict[str, Any]:
        assert self._scope.outputs is not None
        outputs = self._stores.get(self._scope.outputs)
        marker = Marker(outputs, relative, event, float(self._ctx.settings.timeout))
        if not marker.claim():
            log.info("duplicate delivery: object version already processed", extra={"fields": fields})
            return {"object": event.uri, "status": "duplicate"}
        try:
            result = self._attempt(event, relative, outputs, marker)
        except Exception:
            marker.release()
            raise
        marker.finish(FINAL_STATE[result["status"]], **result)
        log.info(f"batch job {result['status']}", extra={"fields": {**fields, **result}})
        return {"object": event.uri, **result}

    def _attempt(self, event: ObjectCreated, relative: str, outputs: Store, marker: Marker) -> dict[str, Any]:
        model = self._ctx.holder.get(self._ctx.settings.load_wait_seconds)
        meta = _metadata(event, model)
        sweep()  # a worker killed mid-job (OOM, timeout) left its temp file behind: reclaim the memory
        try:
            fmt = input_format(relative)
            with spooled_output() as (handle, path):
                handle.write(_dumps({"_modelfn": {**meta, "format": fmt}}))
                records = self._predict(event, relative, fmt, model, handle, marker)
                handle.flush()
                outputs.put_file(output_key(relative), path)  # atomic: the object appears complete or not at all
        except ObjectChanged as exc:
            log.warning("input overwritten since its event; nothing written", extra={"fields": {"error": str(exc)}})
            return {"status": "superseded", "reason": SUPERSEDED, "model_version": model.version}
        except PERMANENT as exc:
            report = {"_modelfn": meta, "error": str(exc), "kind": type(exc).__name__}
            outputs.put_bytes(error_key(relative), json.dumps(report, indent=2).encode())
            return {
                "status": "error-report",
                "report": f"{outputs.location.uri}/{error_key(relative)}",
                "error": str(exc),
                "model_version": model.version,
            }
        return {
            "status": "processed",
            "output": f"{outputs.location.uri}/{output_key(relative)}",
            "records": records,
            "model_version": model.version,
        }

    def _predict(
        self, event: ObjectCreated, relative: str, fmt: str, model: LoadedModel, handle: IO[str], marker: Marker
    ) -> int:
        assert self._scope.inputs is not None
        settings = self._ctx.settings
        chunks = _source_chunks(self._stores.get(self._scope.inputs), relative, event)
        predictor = Predictor(model, self._ctx.metrics, settings.events_batch_size)
        if fmt == "npy":
            batches = predictor.npy(iter_npy_rows(chunks, settings.events_batch_size))
        else:
            batches = predictor.jsonl(iter_lines(chunks, settings.max_body_bytes))
        count = 0
        for records in batches:
            handle.writelines(_dumps(r) for r in records)
            count += len(records)
            marker.heartbeat()
        return count


def _public(exc: ModelfnError) -> ModelfnError:
    """The same error type (same status) with a message that does not repeat the event's object key."""
    if isinstance(exc, StoreUnavailable):
        return StoreUnavailable("storage is temporarily unavailable; the event will be retried")
    return type(exc)(f"{type(exc).__name__} while processing the event; see the function's logs")


def _source_chunks(store: Store, relative: str, event: ObjectCreated) -> Iterator[bytes]:
    """The bytes of exactly the version the event names (S3: its ETag; GCS: generation; Azure: eTag)."""
    pin = event.etag if event.scheme == "s3" else event.version
    if not pin:
        raise InferenceInputError("the event names no ETag, so the object version it announced cannot be read")
    read_version = getattr(store, "iter_version", None)
    if read_version is None:
        raise StoreConfigError(f"{event.scheme}:// stores cannot read a pinned object version")
    try:
        yield from read_version(relative, pin)
    except ArtifactNotFound:
        raise InferenceInputError("the input object no longer exists (deleted before it was processed)") from None


def _metadata(event: ObjectCreated, model: LoadedModel) -> dict[str, Any]:
    return {
        "source": event.uri,
        "source_version": event.version,
        "source_etag": event.etag,
        "source_size": event.size,
        "model": model.name,
        "model_version": model.version,
        "created": datetime.now(UTC).isoformat(),
    }


def _dumps(record: Any) -> str:
    return dumps_line(record)  # strict JSON: numpy in C, non-finite floats as null (as the HTTP bodies)
