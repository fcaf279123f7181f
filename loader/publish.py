"""Publishing: immutable versions (manifest written last, conditionally) and movable aliases."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from loader import aliases
from loader.artifacts import read_alias
from loader.errors import AlreadyExists
from loader.keys import alias_key, blob_key, manifest_key
from loader.manifest import AliasRecord, FileEntry, Manifest
from loader.retry import with_retries
from loader.stores.base import CHUNK_SIZE, Progress, Store

ProgressFactory = Callable[[str, int], Progress]


def file_entry(path: Path, relative: str) -> FileEntry:
    """Digest and size of a local file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return FileEntry(path=relative, sha256=digest.hexdigest(), size=path.stat().st_size)


def publish(
    store: Store,
    manifest: Manifest,
    sources: dict[str, Path],
    aliases: Iterable[str] = (),
    progress: ProgressFactory | None = None,
    retries: int = 2,
    by: str = "unknown",
) -> None:
    """Upload files to content-addressed keys, then the manifest as a conditional create.

    A file's key is its sha256, so a racing publisher can only ever write the same bytes to it; the
    manifest write is the commit point, and the loser's files are simply unreferenced.
    """
    if manifest.layout != "by-digest":
        manifest = manifest.model_copy(update={"layout": "by-digest"})
    key = manifest_key(manifest.name, manifest.version)
    if store.exists(key):
        raise AlreadyExists(f"{manifest.name}@{manifest.version} already exists; versions are immutable")
    if store.exists(alias_key(manifest.name, manifest.version)):
        raise AlreadyExists(f"{manifest.version!r} is an alias of {manifest.name}; a version cannot shadow it")
    for entry in manifest.files:
        object_key = blob_key(manifest.name, entry.sha256)
        if with_retries(lambda k=object_key: store.exists(k), retries):  # type: ignore[misc]
            continue  # the same bytes are already there (an earlier version, or a racing publisher)
        source = sources[entry.path]
        callback = progress(entry.path, entry.size) if progress else None
        with_retries(lambda s=source, k=object_key, c=callback: store.put_file(k, s, progress=c), retries)  # type: ignore[misc]
    # The manifest is the commit point: two racing publishers cannot both win this write.
    try:
        store.put_bytes(key, manifest.to_json(), if_absent=True)
    except AlreadyExists:
        raise AlreadyExists(f"{manifest.name}@{manifest.version} already exists; versions are immutable") from None
    for alias in aliases:
        set_alias(store, manifest.name, alias, manifest.version, by)


def set_alias(store: Store, name: str, alias: str, version: str, by: str = "unknown") -> AliasRecord:
    """Point an alias at an existing version (recorded in the alias's history)."""
    return aliases.promote(store, name, alias, version, by).record


@dataclass(frozen=True)
class ModelListing:
    """Versions and aliases of one model in a store."""

    name: str
    versions: list[str]
    aliases: dict[str, str]


def list_models(store: Store) -> list[ModelListing]:
    """Every model in a store with its versions and aliases."""
    versions: dict[str, set[str]] = {}
    alias_names: dict[str, set[str]] = {}
    for key in store.list_keys(""):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == "manifest.json":
            versions.setdefault(parts[0], set()).add(parts[1])
        elif len(parts) == 3 and parts[1] == "aliases" and parts[2].endswith(".json"):
            alias_names.setdefault(parts[0], set()).add(parts[2].removesuffix(".json"))
    listings = []
    for name in sorted(versions.keys() | alias_names.keys()):
        aliases = {a: read_alias(store, name, a).version for a in sorted(alias_names.get(name, ()))}
        listings.append(ModelListing(name, sorted(versions.get(name, ()), key=_version_key), aliases))
    return listings


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    # Numeric-aware ordering so 1.10.0 sorts after 1.9.0.
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in version.replace("-", ".").split("."))
