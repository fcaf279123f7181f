"""Store registry entries that record every call (and can inject faults), wrapping the real backends."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from loader.uri import StoreLocation

CALLS: list[tuple[str, str]] = []  # (operation, uri)
FAULTS: dict[str, list[Exception]] = {}  # operation -> exceptions to raise, one per call


class Recording:
    """Forwards to the real store after recording the call."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.location = store.location

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            key = args[0] if args else ""
            CALLS.append((name, f"{self.location.uri}/{key}"))
            if FAULTS.get(name):
                raise FAULTS[name].pop(0)
            return method(*args, **kwargs)

        return call


def _factory(target: str) -> Callable[[StoreLocation, dict[str, str | None]], Recording]:
    module, _, attr = target.partition(":")

    def factory(location: StoreLocation, options: dict[str, str | None]) -> Recording:
        CALLS.append(("open", location.uri))
        return Recording(getattr(importlib.import_module(module), attr)(location, options))

    return factory


s3 = _factory("loader.stores.s3:S3Store")
gs = _factory("loader.stores.gcs:GCSStore")
az = _factory("loader.stores.azure:AzureBlobStore")
