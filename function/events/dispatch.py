"""Inputs over BATCH_INLINE_MAX_BYTES start a sharded batch job instead of running inside the request.

The job is recorded in the same idempotency marker as an inline run (state ``done``, mode
``dispatched``), so duplicate deliveries start nothing, and racing first deliveries launch once.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from function.context import Context
from function.events.batch import BatchRunner, output_key
from function.events.marker import Marker
from function.events.model import ObjectCreated
from function.events.scope import Scope
from function.events.stores import StoreCache
from function.jobs.launchers import JobRequest, Launcher, launcher_for

log = logging.getLogger("modelfn.events")


def task_count(size: int, target: int, most: int) -> int:
    """Tasks for an input of ``size`` bytes: one per ``target`` bytes, at least 1, at most ``most``."""
    return max(1, min(most, math.ceil(size / target)))


class DispatchingRunner(BatchRunner):
    """A BatchRunner that hands oversize inputs to the configured job engine."""

    def __init__(self, ctx: Context, scope: Scope, stores: StoreCache, launcher: Launcher | None = None) -> None:
        super().__init__(ctx, scope, stores)
        settings = ctx.settings
        self._launcher = launcher
        if launcher is None and settings.batch_launcher != "none":
            self._launcher = launcher_for(settings)

    def run(self, event: ObjectCreated, relative: str) -> dict[str, Any]:
        """Dispatch when the input is over the inline limit and a job engine is configured; else run inline."""
        limit = self._ctx.settings.batch_inline_max_bytes
        if self._launcher is None or event.size is None or event.size <= limit:
            return super().run(event, relative)
        return self._dispatch(event, relative, self._launcher)

    def _dispatch(self, event: ObjectCreated, relative: str, launcher: Launcher) -> dict[str, Any]:
        settings = self._ctx.settings
        assert self._scope.outputs is not None and event.size is not None
        outputs = self._stores.get(self._scope.outputs)
        fields = {"object": event.uri, "source_version": event.version, "size": event.size}
        marker = Marker(outputs, relative, event, float(settings.timeout))
        if not marker.claim():  # EventInProgress (503) while a racing delivery is launching
            log.info("duplicate delivery: batch job already started", extra={"fields": fields})
            return {"object": event.uri, "status": "duplicate"}
        tasks = task_count(event.size, settings.batch_task_target_bytes, settings.batch_max_tasks)
        request = JobRequest(event.uri, f"{outputs.location.uri}/{output_key(relative)[: -len('.jsonl')]}", tasks)
        try:
            execution = launcher(request)
        except Exception:
            marker.release()  # the retry may launch; nothing was started
            raise
        result = {"status": "dispatched", "execution": execution, "tasks": tasks, "output": request.output_uri}
        marker.finish("done", mode="dispatched", **result)
        log.info("batch job started", extra={"fields": {**fields, **result}})
        return {"object": event.uri, **result}
