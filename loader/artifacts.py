"""Resolve a model URI to one immutable version and bring it into the local cache."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from loader.cache import ArtifactCache, FetchStats
from loader.errors import ArtifactNotFound, ManifestInvalid, StoreUnavailable
from loader.keys import alias_key, blob_key, manifest_key, object_key
from loader.manifest import AliasRecord, Manifest
from loader.retry import with_retries
from loader.stores.base import Store
from loader.uri import ModelURI

__all__ = ["LocalArtifact", "alias_key", "blob_key", "fetch", "manifest_key", "object_key", "read_alias", "resolve"]

log = logging.getLogger("modelfn.artifacts")


@dataclass(frozen=True)
class LocalArtifact:
    """A verified artifact on local disk; ``offline`` when the store was unreachable and the cache answered."""

    manifest: Manifest
    directory: Path
    stats: FetchStats
    offline: bool = False

    @property
    def model_path(self) -> Path:
        """The entry file the runtime loads."""
        return self.directory / self.manifest.model_file


def read_alias(store: Store, name: str, alias: str, retries: int = 0, budget: float | None = None) -> AliasRecord:
    """The version an alias points at."""
    try:
        raw = with_retries(lambda: store.read_bytes(alias_key(name, alias)), retries, budget=budget)
    except ArtifactNotFound:
        raise ArtifactNotFound(f"{name}@{alias}: no such version or alias in {store.location.uri}") from None
    try:
        return AliasRecord.model_validate_json(raw)
    except ValueError:
        raise ManifestInvalid(f"alias record {name}@{alias} is not valid JSON of the expected shape") from None


def resolve(store: Store, uri: ModelURI, retries: int = 0, budget: float | None = None) -> tuple[Manifest, bytes]:
    """The manifest (and its exact bytes) for a version, or for the version an alias names.

    A ref is a version when ``<name>/<ref>/manifest.json`` exists, else an alias; a ref that is
    both (publishing refuses that, but a store can be written by other tools) is refused as ambiguous.
    """
    try:
        raw = with_retries(lambda: store.read_bytes(manifest_key(uri.name, uri.ref)), retries, budget=budget)
    except ArtifactNotFound:
        version = read_alias(store, uri.name, uri.ref, retries, budget).version
        try:
            raw = with_retries(lambda: store.read_bytes(manifest_key(uri.name, version)), retries, budget=budget)
        except ArtifactNotFound:
            raise ArtifactNotFound(f"{uri.name}@{uri.ref} points at version {version}, which has no manifest") from None
    else:
        if with_retries(lambda: store.exists(alias_key(uri.name, uri.ref)), retries, budget=budget):
            raise ManifestInvalid(f"{uri.name}@{uri.ref} is both a version and an alias; refusing to guess")
    manifest = Manifest.from_json(raw)
    if manifest.name != uri.name:
        raise ManifestInvalid(f"manifest names model {manifest.name!r}, expected {uri.name!r}")
    return manifest, raw


def fetch(store: Store, uri: ModelURI, cache: ArtifactCache) -> LocalArtifact:
    """Resolve, download what the cache lacks (verifying every digest) and return the local artifact.

    When the store is unreachable (not when it answers "not found" or "denied"), the last resolution
    this cache verified for the same URI is served instead, marked ``offline``.
    """
    try:
        manifest, raw = resolve(store, uri, cache.retries, cache.retry_budget)
        stats = FetchStats()
        directory = cache.materialize(store, manifest, raw, stats)
    except StoreUnavailable as exc:
        cached = cache.last_resolution(str(uri))
        if cached is None:
            raise
        log.warning("store unreachable; serving the last verified resolution from the cache: %s", exc)
        manifest, directory = cached
        return LocalArtifact(manifest, directory, FetchStats(), offline=True)
    cache.remember_resolution(str(uri), raw)
    return LocalArtifact(manifest, directory, stats)
