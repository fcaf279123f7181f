"""Hot swap: pick up the version an alias points at, load it beside the old one, switch once READY."""

from __future__ import annotations

import logging
import threading

from function.context import Context
from function.serving import loader_for
from loader.artifacts import resolve
from loader.stores import open_store
from loader.uri import ModelURI

log = logging.getLogger("modelfn.model")


class ModelUpdater:
    """Checks the served alias; one check at a time, a request during a check queues one more."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self._again = threading.Event()
        self._stop = threading.Event()

    def check(self) -> str:
        """Resolve the alias now and swap if it moved: ``swapped|current|pinned|not-loaded|failed``."""
        with self._lock:
            return self._check()

    def trigger(self) -> None:
        """Check in the background (events must not wait for a model load)."""
        self._again.set()
        # Waiting threads find the flag already cleared and exit: a burst of events costs one check.
        threading.Thread(target=self._drain, name="modelfn-model-check", daemon=True).start()

    def start_polling(self, interval: float) -> None:
        """Check every ``interval`` seconds: an event reaches only one instance, polling reaches all."""

        def loop() -> None:
            while not self._stop.wait(interval):
                self.check()

        threading.Thread(target=loop, name="modelfn-model-poll", daemon=True).start()

    def stop(self) -> None:
        """Stop polling (tests, shutdown)."""
        self._stop.set()

    def _drain(self) -> None:
        with self._lock:
            while self._again.is_set():
                self._again.clear()
                self._check()

    def _check(self) -> str:
        ctx = self._ctx
        current = ctx.holder.model
        if current is None:
            return "not-loaded"  # the holder's own (retrying) load resolves the alias itself
        if current.version == ctx.uri.ref:
            return "pinned"
        settings = ctx.settings
        try:
            store = open_store(ctx.uri.store, settings.store_options())
            manifest, _ = resolve(store, ctx.uri, settings.fetch_retries)
            if manifest.version == current.version:
                return "current"
            target = ModelURI(ctx.uri.store, ctx.uri.name, manifest.version)
            model = loader_for(target, settings, ctx.metrics)(lambda phase: None)
        except Exception as exc:  # never let a bad new version take the old one down
            log.error(
                "new model version not loaded; still serving the old one",
                extra={
                    "fields": {
                        "model": str(ctx.uri),
                        "serving": current.version,
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                },
            )
            return "failed"
        ctx.holder.swap(model)
        log.info(
            "model swapped", extra={"fields": {"model": str(ctx.uri), "from": current.version, "to": model.version}}
        )
        return "swapped"
