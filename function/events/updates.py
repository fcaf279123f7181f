"""Hot swap: pick up the version an alias points at, load it beside the old one, switch once READY."""

from __future__ import annotations

import logging
import threading

from function import rollout
from function.context import Context
from function.holder import when_serving

log = logging.getLogger("modelfn.model")


class ModelUpdater:
    """Checks the served alias; one check at a time, a request during a check queues one more."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self._pending = threading.Lock()  # guards the two flags below
        self._again = False
        self._draining = False
        self._stop = threading.Event()

    def check(self) -> str:
        """Resolve the alias now and swap if it moved: ``swapped|current|pinned|not-loaded|failed``."""
        with self._lock:
            return self._check()

    def trigger(self) -> None:
        """Check in the background (events must not wait for a model load); at most one thread at a time."""
        with self._pending:
            self._again = True
            if self._draining:
                return  # the running thread checks once more after its current check: a burst costs two
            self._draining = True
        threading.Thread(target=self._drain, name="modelfn-model-check", daemon=True).start()

    def start_polling(self, interval: float) -> None:
        """Check every ``interval`` seconds: an event reaches only one instance, polling reaches all."""

        def loop() -> None:
            while not self._stop.wait(interval):
                self.check()

        # Under Gunicorn this waits for the fork: a thread started in a --preload master would not run.
        when_serving(lambda: threading.Thread(target=loop, name="modelfn-model-poll", daemon=True).start())

    def stop(self) -> None:
        """Stop polling (tests, shutdown)."""
        self._stop.set()

    def _drain(self) -> None:
        while True:
            with self._pending:
                if not self._again:
                    self._draining = False
                    return
                self._again = False
            try:
                self.check()
            except Exception:  # a bug in one check must not leave the flags claiming a live thread
                log.exception("model check failed")

    def _check(self) -> str:
        ctx = self._ctx
        current = ctx.holder.model
        if current is None:
            return "not-loaded"  # the holder's own (retrying) load resolves the alias itself
        if current.version == ctx.uri.ref:
            return "pinned"
        try:
            model = rollout.check(ctx.uri, current, ctx.settings, ctx.metrics)
        except Exception as exc:  # never let a bad new version take the old one down
            log.error(
                "new model version not loaded; still serving the old one",
                extra={
                    "fields": {
                        "model": str(ctx.uri),
                        "serving": rollout.describe(current),
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                },
            )
            return "failed"
        if model is None:
            return "current"
        ctx.holder.swap(model)
        log.info(
            "model swapped",
            extra={"fields": {"model": str(ctx.uri), "from": rollout.describe(current), "to": rollout.describe(model)}},
        )
        return "swapped"
