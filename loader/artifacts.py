"""Resolve a model URI to one immutable version and bring it into the local cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loader.cache import ArtifactCache, FetchStats
from loader.errors import ArtifactNotFound, ManifestInvalid
from loader.manifest import MANIFEST_FILE, AliasRecord, Manifest
from loader.retry import with_retries
from loader.stores.base import Store
from loader.uri import ModelURI


@dataclass(frozen=True)
class LocalArtifact:
    """A verified artifact on local disk."""

    manifest: Manifest
    directory: Path
    stats: FetchStats

    @property
    def model_path(self) -> Path:
        """The entry file the runtime loads."""
        return self.directory / self.manifest.model_file


def manifest_key(name: str, version: str) -> str:
    """Key of a version's manifest."""
    return f"{name}/{version}/{MANIFEST_FILE}"


def alias_key(name: str, alias: str) -> str:
    """Key of an alias record."""
    return f"{name}/aliases/{alias}.json"


def read_alias(store: Store, name: str, alias: str, retries: int = 0) -> AliasRecord:
    """The version an alias points at."""
    try:
        raw = with_retries(lambda: store.read_bytes(alias_key(name, alias)), retries)
    except ArtifactNotFound:
        raise ArtifactNotFound(f"{name}@{alias}: no such version or alias in {store.location.uri}") from None
    try:
        return AliasRecord.model_validate_json(raw)
    except ValueError:
        raise ManifestInvalid(f"alias record {name}@{alias} is not valid JSON of the expected shape") from None


def resolve(store: Store, uri: ModelURI, retries: int = 0) -> tuple[Manifest, bytes]:
    """Return the manifest (and its exact bytes) for a version, or for the version an alias names."""
    try:
        raw = with_retries(lambda: store.read_bytes(manifest_key(uri.name, uri.ref)), retries)
    except ArtifactNotFound:
        version = read_alias(store, uri.name, uri.ref, retries).version
        try:
            raw = with_retries(lambda: store.read_bytes(manifest_key(uri.name, version)), retries)
        except ArtifactNotFound:
            raise ArtifactNotFound(f"{uri.name}@{uri.ref} points at version {version}, which has no manifest") from None
    manifest = Manifest.from_json(raw)
    if manifest.name != uri.name:
        raise ManifestInvalid(f"manifest names model {manifest.name!r}, expected {uri.name!r}")
    return manifest, raw


def fetch(store: Store, uri: ModelURI, cache: ArtifactCache) -> LocalArtifact:
    """Resolve, download what the cache lacks (verifying every digest) and return the local artifact."""
    manifest, raw = resolve(store, uri, cache.retries)
    stats = FetchStats()
    directory = cache.materialize(store, manifest, raw, stats)
    return LocalArtifact(manifest, directory, stats)
