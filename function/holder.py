"""The process-global model: an explicit LOADING -> READY | FAILED state, loaded exactly once."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from function.batching import Batcher
from loader.artifacts import LocalArtifact
from loader.errors import ModelfnError
from loader.public import public_message
from loader.runtimes import Runtime

log = logging.getLogger("modelfn.model")


class State(StrEnum):
    IDLE = "IDLE"  # lazy mode, before the first request
    LOADING = "LOADING"
    READY = "READY"
    FAILED = "FAILED"


class Phase(StrEnum):
    WAITING = "waiting"
    FETCHING = "fetching"
    LOADING = "loading"
    WARMING = "warming"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class LoadedModel:
    """An artifact and the runtime serving it; replaced as a whole, never mutated."""

    artifact: LocalArtifact
    runtime: Runtime
    engine: Batcher | None = None  # None: predict() per request, unbatched
    split: Split | None = None  # the alias's canary or shadow, loaded beside this primary
    candidate: bool = False  # loaded with a candidate's runtime options (ORT: no spin-wait)
    # Binary-extension headers this version accepted, and their byte layout (function.header_cache).
    header_plans: dict[bytes, Any] = field(default_factory=dict, compare=False, repr=False)
    # The answers' JSON headers to those requests, by header and output layout (function.header_cache).
    answer_heads: dict[tuple[Any, ...], Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.artifact.manifest.name

    @property
    def version(self) -> str:
        return self.artifact.manifest.version


@dataclass(frozen=True)
class Split:
    """A candidate version and the percent of requests it gets: ``canary`` answers them, ``shadow`` only runs."""

    candidate: LoadedModel
    share: float
    mode: str


@dataclass(frozen=True)
class Status:
    """A consistent snapshot for probes and errors."""

    state: State
    phase: Phase
    reason: str | None  # the full reason, for logs and operators
    retry_in: float | None
    public_reason: str | None = None  # the same without store URIs, paths or digests (probes, 503 bodies)


class ModelNotReady(Exception):
    """Raised to requests that cannot be served yet; carries the status for a 503."""

    def __init__(self, status: Status) -> None:
        super().__init__(status.reason or f"model is {status.phase.value}")
        self.status = status


Loader = Callable[[Callable[[Phase], None]], LoadedModel]
_LIVE: weakref.WeakSet[ModelHolder] = weakref.WeakSet()
# Background work (the load, alias polling) must run in the process that serves: under Gunicorn the
# master defers it (its threads would not survive the fork, and a model loaded there is a wasted copy).
_deferred: list[Callable[[], None]] | None = None


def defer_background_work() -> None:
    """From now on, hold background starts in this process until ``start_deferred()`` (Gunicorn master)."""
    global _deferred
    _deferred = []


def when_serving(start: Callable[[], None]) -> None:
    """Run ``start`` now, or after the fork into the serving process when this process defers."""
    if _deferred is None:
        start()
    else:
        _deferred.append(start)


def start_deferred() -> None:
    """In the forked worker: stop deferring and run what the master held back (``--preload``)."""
    global _deferred
    held, _deferred = _deferred or [], None
    for start in held:
        start()


def close_all() -> None:
    """Stop the retry loops of every holder in this process (worker exit, test teardown)."""
    for holder in list(_LIVE):
        holder.close()


class ModelHolder:
    """Runs the loader in one background thread, retrying failures, and lets requests wait for it."""

    def __init__(self, load: Loader, retry_seconds: float, on_ready: Callable[[LoadedModel], None]) -> None:
        self._load = load
        self._retry_seconds = retry_seconds
        self._on_ready = on_ready
        self._cond = threading.Condition()
        self._state = State.IDLE
        self._phase = Phase.WAITING
        self._reason: str | None = None
        self._public_reason: str | None = None
        self._next_retry: float | None = None
        self._model: LoadedModel | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        _LIVE.add(self)

    def close(self) -> None:
        """Stop retrying failed loads; a model already serving keeps serving."""
        self._closed.set()

    def start(self) -> None:
        """Start loading once; later calls (even concurrent ones) do nothing."""
        if _deferred is not None:
            when_serving(self.start)  # never load in a Gunicorn master (``--preload``)
            return
        with self._cond:
            if self._thread is not None:
                return
            self._state = State.LOADING
            self._thread = threading.Thread(target=self._run, name="modelfn-loader", daemon=True)
            self._thread.start()

    def status(self) -> Status:
        """The current state, phase and failure reason."""
        with self._cond:
            retry_in = None if self._next_retry is None else max(0.0, self._next_retry - time.monotonic())
            return Status(self._state, self._phase, self._reason, retry_in, self._public_reason)

    @property
    def model(self) -> LoadedModel | None:
        """The serving model, if any (no waiting)."""
        return self._model

    def get(self, timeout: float) -> LoadedModel:
        """The ready model, waiting up to ``timeout`` seconds while it loads."""
        model = self._model
        if model is not None:
            return model
        self.start()
        with self._cond:
            self._cond.wait_for(lambda: self._state is not State.LOADING, timeout=timeout)
            if self._model is not None:
                return self._model
        raise ModelNotReady(self.status())

    def swap(self, model: LoadedModel) -> None:
        """Atomically replace the serving model (a reference assignment; requests keep their snapshot)."""
        with self._cond:
            self._model = model
            self._state, self._phase, self._reason, self._next_retry = State.READY, Phase.READY, None, None
            self._public_reason = None
            self._cond.notify_all()
        self._on_ready(model)

    def _set_phase(self, phase: Phase) -> None:
        with self._cond:
            self._phase = phase

    def _run(self) -> None:
        while True:
            try:
                model = self._load(self._set_phase)
            except Exception as exc:
                self._fail(exc)
                if self._closed.wait(self._retry_seconds):
                    return
                with self._cond:
                    self._state, self._next_retry = State.LOADING, None
                continue
            self.swap(model)
            return

    def _fail(self, exc: Exception) -> None:
        # Typed errors carry a message meant for operators; anything else is a bug worth a traceback.
        reason = str(exc) if isinstance(exc, ModelfnError) else f"unexpected {type(exc).__name__}: {exc}"
        if isinstance(exc, ModelfnError):
            log.error("model load failed: %s", reason)
        else:
            log.exception("model load failed")
        with self._cond:
            self._state, self._phase, self._reason = State.FAILED, Phase.FAILED, reason
            self._public_reason = public_message(exc)
            self._next_retry = time.monotonic() + self._retry_seconds
            self._cond.notify_all()
