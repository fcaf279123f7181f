"""Full-digest checks of cached files, done once per process per file state (the cache is not trusted by size)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from loader.manifest import FileEntry
from loader.stores.base import CHUNK_SIZE

# path -> (sha256, stat signature) of files this process has hashed; any write, rename or chmod of a
# file changes its ctime, so a file altered after its check is hashed again.
_VERIFIED: dict[str, tuple[str, tuple[int, ...]]] = {}
_LOCK = threading.Lock()


def _signature(info: os.stat_result) -> tuple[int, ...]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def mark_verified(path: Path, sha256: str) -> None:
    """Record that ``path`` (just written and hashed) holds ``sha256``."""
    with _LOCK:
        _VERIFIED[str(path)] = (sha256, _signature(path.stat()))


def is_intact(path: Path, entry: FileEntry) -> bool:
    """True when ``path`` holds exactly the entry's bytes (hashed unless this process already did for this state)."""
    try:
        info = path.stat()
    except OSError:
        return False
    if info.st_size != entry.size:
        return False
    with _LOCK:
        known = _VERIFIED.get(str(path))
    if known == (entry.sha256, _signature(info)):
        return True
    try:
        actual = sha256_file(path)
    except OSError:
        return False
    if actual != entry.sha256:
        return False
    with _LOCK:
        _VERIFIED[str(path)] = (actual, _signature(info))
    return True
