"""Per-part status records under ``<output>/_status/``, error reports, and the ``_SUCCESS`` manifest."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from function.jobs.shards import Shard
from loader.errors import ArtifactNotFound, ModelfnError
from loader.stores import Store

STATUS_DIR = "_status"
SUCCESS = "_SUCCESS"
log = logging.getLogger("modelfn.batch")


class StatusBoard:
    """What one shard tells the others and ``modelfn batch status`` (progress at most every few seconds)."""

    def __init__(self, store: Store, shard: Shard, every: float = 5.0) -> None:
        self.store = store
        self.shard = shard
        self._every = every
        self._started = time.time()
        self._beat = 0.0

    @property
    def key(self) -> str:
        return f"{STATUS_DIR}/{self.shard.name}.json"

    def start(self) -> None:
        """Record the shard as running (a rerun of a dead or failed shard starts here again)."""
        self._put("running", records=0)

    def progress(self, records: int) -> None:
        """Refresh the running record so watchers see records so far."""
        if time.monotonic() - self._beat >= self._every:
            self._put("running", records=records)

    def fail(self, exc: Exception, permanent: bool) -> None:
        """An error report next to the part, and a failed status (a rerun replaces both)."""
        report = {"part": self.shard.name, "error": str(exc), "kind": type(exc).__name__, "permanent": permanent}
        try:
            self.store.put_bytes(f"{self.shard.name}.error.json", json.dumps(report, indent=2).encode())
            self._put("failed", error=str(exc), kind=type(exc).__name__, permanent=permanent)
        except ModelfnError as again:  # storage itself is down: the job engine's retry reruns the shard
            log.warning("could not record the failure", extra={"fields": {"error": str(again)}})

    def finish(self, result: dict[str, Any]) -> None:
        """Record the part as done; the shard that completes the set writes ``_SUCCESS``."""
        self._put("done", finished=time.time(), **result)
        statuses = read_statuses(self.store, self.shard.count)
        manifest = success_manifest(statuses, self.shard.count)
        if manifest is not None:
            self.store.put_bytes(SUCCESS, json.dumps(manifest, indent=2, sort_keys=True).encode())
            log.info("all parts done", extra={"fields": {"parts": self.shard.count, "records": manifest["records"]}})

    def _put(self, state: str, **details: Any) -> None:
        now = time.time()
        body = {
            "part": self.shard.name,
            "shard": self.shard.index,
            "count": self.shard.count,
            "state": state,
            "started": self._started,
            "updated": now,
            **details,
        }
        self.store.put_bytes(self.key, json.dumps(body, sort_keys=True).encode())
        self._beat = time.monotonic()


def read_statuses(store: Store, count: int | None = None) -> list[dict[str, Any]]:
    """Every part's latest status (of jobs with ``count`` parts, when given), in part order."""
    statuses = []
    for key in sorted(store.list_keys(STATUS_DIR)):
        try:
            record = json.loads(store.read_bytes(key))
        except (ArtifactNotFound, ValueError):
            continue
        if isinstance(record, dict) and (count is None or record.get("count") == count):
            statuses.append(record)
    return statuses


def success_manifest(statuses: list[dict[str, Any]], count: int) -> dict[str, Any] | None:
    """The ``_SUCCESS`` body when all ``count`` parts are done from the same source and model versions."""
    done = {s["shard"]: s for s in statuses if s.get("state") == "done" and s.get("count") == count}
    if len(done) != count:
        return None
    parts = [done[i] for i in range(count)]
    sources = {json.dumps([(o["key"], o["version"]) for o in p["objects"]]) for p in parts}
    models = {p["model_version"] for p in parts}
    if len(sources) != 1 or len(models) != 1:
        log.warning("parts disagree on source or model versions; rerun the stale parts before _SUCCESS")
        return None
    started, finished = min(p["started"] for p in parts), max(p["finished"] for p in parts)
    records = sum(p["records"] for p in parts)
    return {
        "parts": [{"name": p["part"], "records": p["records"], "seconds": p["finished"] - p["started"]} for p in parts],
        "count": count,
        "records": records,
        "sources": [{"key": o["key"], "version": o["version"], "size": o["size"]} for o in parts[0]["objects"]],
        "model": parts[0]["model"],
        "model_version": parts[0]["model_version"],
        "format": parts[0]["format"],
        "started": started,
        "finished": finished,
        "seconds": finished - started,
        "records_per_second": records / (finished - started) if finished > started else None,
    }


def summary(statuses: list[dict[str, Any]]) -> dict[str, Any]:
    """Parts done/failed/running, records and throughput across the latest job in the output."""
    count = max((s["count"] for s in statuses), default=0)
    current = [s for s in statuses if s["count"] == count]
    by_state = {state: [s["part"] for s in current if s["state"] == state] for state in ("done", "failed", "running")}
    records = sum(int(s.get("records", 0)) for s in current)
    started = min((s["started"] for s in current), default=0.0)
    latest = max((s.get("finished", s["updated"]) for s in current), default=0.0)
    return {
        "count": count,
        "done": len(by_state["done"]),
        "failed": by_state["failed"],
        "running": len(by_state["running"]),
        "pending": count - len(current),
        "records": records,
        "records_per_second": records / (latest - started) if latest > started else None,
        "errors": {s["part"]: s.get("error") for s in current if s["state"] == "failed"},
    }
