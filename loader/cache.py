"""Content-addressed local cache: streamed, sha256-verified, atomic, and shared between workers."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from loader.errors import ArtifactNotFound, DigestMismatch, StoreUnavailable
from loader.manifest import MANIFEST_FILE, FileEntry, Manifest
from loader.retry import with_retries
from loader.stores.base import Store

LOCK_TIMEOUT_SECONDS = 900.0
COMPLETE_MARKER = ".complete"


@dataclass
class FetchStats:
    """What one fetch cost: files and bytes that came from the store rather than the cache."""

    files_downloaded: int = 0
    bytes_downloaded: int = 0


class ArtifactCache:
    """Blobs under ``blobs/<sha256>``; per-manifest views of hard links under ``artifacts/<digest>``."""

    def __init__(self, root: Path, retries: int = 4) -> None:
        self.root = root
        self.retries = retries
        self.blobs = root / "blobs"
        self.views = root / "artifacts"

    def blob_path(self, sha256: str) -> Path:
        """Where a verified blob lives."""
        return self.blobs / sha256

    def materialize(self, store: Store, manifest: Manifest, manifest_bytes: bytes, stats: FetchStats) -> Path:
        """Ensure every file of the manifest is cached and return the artifact's directory."""
        digest = hashlib.sha256(manifest_bytes).hexdigest()
        view = self.views / digest
        if (view / COMPLETE_MARKER).exists():
            return view
        prefix = f"{manifest.name}/{manifest.version}"
        for entry in manifest.files:
            self.ensure_blob(store, f"{prefix}/{entry.path}", entry, stats)
        return self._build_view(view, manifest, manifest_bytes)

    def ensure_blob(self, store: Store, key: str, entry: FileEntry, stats: FetchStats) -> Path:
        """Download one file once per container: other workers wait on the lock, then reuse it."""
        target = self.blob_path(entry.sha256)
        if _is_valid(target, entry):
            return target
        self.blobs.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock", timeout=LOCK_TIMEOUT_SECONDS):
            if _is_valid(target, entry):
                return target
            with_retries(lambda: self._download(store, key, entry, target), self.retries)
        stats.files_downloaded += 1
        stats.bytes_downloaded += entry.size
        return target

    def _download(self, store: Store, key: str, entry: FileEntry, target: Path) -> None:
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.blobs, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in store.iter_chunks(key):
                    size += len(chunk)
                    if size > entry.size:
                        break  # a larger object can never match; stop reading it
                    digest.update(chunk)
                    out.write(chunk)
            if size != entry.size or digest.hexdigest() != entry.sha256:
                raise DigestMismatch(
                    f"{entry.path}: expected sha256 {entry.sha256} ({entry.size} bytes), store returned "
                    f"{'more than ' if size > entry.size else ''}{size} bytes"
                    + ("" if size != entry.size else f" with sha256 {digest.hexdigest()}")
                )
            os.replace(tmp, target)
        except (ArtifactNotFound, DigestMismatch, StoreUnavailable):
            raise
        except OSError as exc:
            raise StoreUnavailable(f"cannot write cache file for {entry.path}: {exc.strerror}") from None
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _build_view(self, view: Path, manifest: Manifest, manifest_bytes: bytes) -> Path:
        # The view keeps the artifact's own file names, which runtimes need (e.g. ONNX external data).
        self.views.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.views, prefix=".building-"))
        try:
            for entry in manifest.files:
                dest = tmp / entry.path
                dest.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(self.blob_path(entry.sha256), dest)
            (tmp / MANIFEST_FILE).write_bytes(manifest_bytes)
            (tmp / COMPLETE_MARKER).touch()
            try:
                os.rename(tmp, view)
            except OSError:
                if not (view / COMPLETE_MARKER).exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return view


def _is_valid(path: Path, entry: FileEntry) -> bool:
    # Blobs are only ever renamed into place after verification, so size is a cheap sanity check.
    try:
        return path.stat().st_size == entry.size
    except FileNotFoundError:
        return False


def _link_or_copy(source: Path, dest: Path) -> None:
    # Hard links cost no space; some mounted volumes refuse them, so fall back to a copy.
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)
