"""Where things live in a store: manifests, aliases and (by layout) the files of a version."""

from __future__ import annotations

from loader.manifest import MANIFEST_FILE, FileEntry, Manifest
from loader.uri import BLOBS_DIR


def manifest_key(name: str, version: str) -> str:
    """Key of a version's manifest."""
    return f"{name}/{version}/{MANIFEST_FILE}"


def alias_key(name: str, alias: str) -> str:
    """Key of an alias record."""
    return f"{name}/aliases/{alias}.json"


def blob_key(name: str, sha256: str) -> str:
    """Content-addressed key of a file: the key names the bytes, so rewriting it can only write them again."""
    return f"{name}/{BLOBS_DIR}/sha256/{sha256}"


def object_key(manifest: Manifest, entry: FileEntry) -> str:
    """Where one file of a manifest lives in the store (depends on the manifest's layout)."""
    if manifest.layout == "by-digest":
        return blob_key(manifest.name, entry.sha256)
    return f"{manifest.name}/{manifest.version}/{entry.path}"
