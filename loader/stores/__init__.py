"""Storage backends, registered by URI scheme and imported only when first used."""

from __future__ import annotations

import importlib

from loader.errors import InvalidURI
from loader.stores.base import CHUNK_SIZE, Store, StoreFactory
from loader.uri import StoreLocation, parse_store_uri

# scheme -> "module:factory"; importing the module is what pulls in a cloud SDK, so it waits
# until a URI with that scheme is actually opened.
_REGISTRY: dict[str, str] = {
    "file": "loader.stores.file:FileStore",
    "s3": "loader.stores.s3:S3Store",
    "gs": "loader.stores.gcs:GCSStore",
    "az": "loader.stores.azure:AzureBlobStore",
}

__all__ = ["CHUNK_SIZE", "Store", "open_store", "register", "schemes"]


def register(scheme: str, target: str) -> None:
    """Register (or replace) the backend for a scheme as ``"module:factory"``."""
    _REGISTRY[scheme.lower()] = target


def schemes() -> list[str]:
    """Schemes with a registered backend."""
    return sorted(_REGISTRY)


def open_store(uri: str | StoreLocation, options: dict[str, str | None] | None = None) -> Store:
    """Instantiate the backend for a store URI or parsed location."""
    location = parse_store_uri(uri) if isinstance(uri, str) else uri
    target = _REGISTRY.get(location.scheme)
    if target is None:
        raise InvalidURI(f"unsupported scheme {location.scheme}://; supported: {', '.join(schemes())}")
    module_name, _, attr = target.partition(":")
    factory: StoreFactory = getattr(importlib.import_module(module_name), attr)
    return factory(location, dict(options or {}))
