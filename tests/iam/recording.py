"""Record every storage operation the code performs: store registry entries wrapping the real backends."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

import loader.stores
from loader.errors import AlreadyExists, ArtifactNotFound
from loader.uri import StoreLocation

BACKENDS = {
    "file": "loader.stores.file:FileStore",
    "s3": "loader.stores.s3:S3Store",
    "gs": "loader.stores.gcs:GCSStore",
    "az": "loader.stores.azure:AzureBlobStore",
}
READS = {"read_bytes": "get", "iter_chunks": "get", "exists": "get"}


@dataclass(frozen=True)
class Op:
    """One storage operation: kind (get, put, put-if-absent, overwrite, list), bucket, full key, outcome."""

    kind: str
    bucket: str
    key: str
    outcome: str  # ok | not-found | exists | error:<type>


class Recorder:
    """Thread-safe list of operations (the app loads and hot-swaps in background threads)."""

    def __init__(self, probe_overwrites: bool) -> None:
        self.ops: list[Op] = []
        self.probe_overwrites = probe_overwrites
        self.paused = False
        self._lock = threading.Lock()

    def add(self, op: Op) -> None:
        with self._lock:
            if not self.paused:
                self.ops.append(op)

    @contextmanager
    def pause(self) -> Iterator[None]:
        """Leave out what the admin does (publishing, uploading): only the app's calls count."""
        self.paused = True
        try:
            yield
        finally:
            self.paused = False


class _Recording:
    """Forwards to the real store after classifying the call."""

    def __init__(self, store: Any, recorder: Recorder) -> None:
        self._store = store
        self._recorder = recorder
        self.location: StoreLocation = store.location

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if name not in (*READS, "put_bytes", "put_file", "list_keys"):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            key = self.location.key(args[0] if args else kwargs.get("key", kwargs.get("prefix", "")))
            kind = self._kind(name, args, kwargs)
            try:
                result = method(*args, **kwargs)
                if name == "list_keys":
                    result = list(result)
            except ArtifactNotFound:
                self._recorder.add(Op(kind, self.location.bucket, key, "not-found"))
                raise
            except AlreadyExists:
                self._recorder.add(Op(kind, self.location.bucket, key, "exists"))
                raise
            except Exception as exc:
                self._recorder.add(Op(kind, self.location.bucket, key, f"error:{type(exc).__name__}"))
                raise
            outcome = "not-found" if name == "exists" and result is False else "ok"
            self._recorder.add(Op(kind, self.location.bucket, key, outcome))
            return iter(result) if name == "list_keys" else result

        return call

    def _kind(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if name in READS:
            return READS[name]
        if name == "list_keys":
            return "list"
        if kwargs.get("if_absent"):
            return "put-if-absent"
        if self._recorder.probe_overwrites and not self._recorder.paused and self._store.exists(args[0]):
            return "overwrite"
        return "put"


@contextmanager
def recording(monkeypatch: pytest.MonkeyPatch, probe_overwrites: bool = False) -> Iterator[Recorder]:
    """Every store opened inside records into the yielded Recorder."""
    recorder = Recorder(probe_overwrites)
    for scheme, target in BACKENDS.items():
        monkeypatch.setitem(loader.stores._REGISTRY, scheme, f"{__name__}:{scheme}")
        _TARGETS[scheme] = target
    _ACTIVE.append(recorder)
    try:
        yield recorder
    finally:
        _ACTIVE.remove(recorder)


_ACTIVE: list[Recorder] = []
_TARGETS: dict[str, str] = {}


def _factory(scheme: str) -> Callable[[StoreLocation, dict[str, str | None]], Any]:
    def factory(location: StoreLocation, options: dict[str, str | None]) -> Any:
        module, _, attr = _TARGETS[scheme].partition(":")
        store = getattr(importlib.import_module(module), attr)(location, options)
        return _Recording(store, _ACTIVE[-1]) if _ACTIVE else store

    return factory


file = _factory("file")
s3 = _factory("s3")
gs = _factory("gs")
az = _factory("az")


@contextmanager
def paused() -> Iterator[None]:
    """Pause the active recorder (if any) while the admin works."""
    if not _ACTIVE:
        yield
        return
    with _ACTIVE[-1].pause():
        yield
