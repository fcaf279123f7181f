"""Stores opened once per app and shared by requests (the SDK clients are thread-safe)."""

from __future__ import annotations

import threading

from loader.stores import Store, open_store
from loader.uri import StoreLocation


class StoreCache:
    """Opens each configured location on first use only: a refused event never opens anything."""

    def __init__(self, options: dict[str, str | None]) -> None:
        self._options = options
        self._stores: dict[StoreLocation, Store] = {}
        self._lock = threading.Lock()

    def get(self, location: StoreLocation) -> Store:
        """The store for ``location``, opened once."""
        with self._lock:
            store = self._stores.get(location)
            if store is None:
                store = self._stores[location] = open_store(location, self._options)
            return store
