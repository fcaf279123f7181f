"""Content-addressed local cache: streamed, sha256-verified, atomic, and shared between workers."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from loader.errors import ArtifactNotFound, DigestMismatch, StoreUnavailable
from loader.manifest import MANIFEST_FILE, FileEntry, Manifest
from loader.retry import with_retries
from loader.stores.base import Store

LOCK_TIMEOUT_SECONDS = 900.0
COMPLETE_MARKER = ".complete"
USE_LOCK = ".in-use.lock"


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

    @contextmanager
    def in_use(self) -> Iterator[None]:
        """A shared claim on the cache (any number of holders, any process): prune() never runs under one."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            claim = open(self.root / USE_LOCK, "a")  # noqa: SIM115 (closed by the with below)
        except OSError:  # a read-only, pre-filled cache: nothing can prune it, so there is nothing to guard
            yield
            return
        with claim:
            fcntl.flock(claim, fcntl.LOCK_SH)  # released when the file closes
            yield

    def materialize(self, store: Store, manifest: Manifest, manifest_bytes: bytes, stats: FetchStats) -> Path:
        """Ensure every file of the manifest is cached and return the artifact's directory."""
        digest = hashlib.sha256(manifest_bytes).hexdigest()
        view = self.views / digest
        with self.in_use():
            if (view / COMPLETE_MARKER).exists():
                with suppress(OSError):  # read-only caches have no recency to keep
                    os.utime(view)  # the view's mtime is its last use, which prune() ranks by
                return view
            prefix = f"{manifest.name}/{manifest.version}"
            for entry in manifest.files:
                self.ensure_blob(store, f"{prefix}/{entry.path}", entry, stats)
            return self._build_view(view, manifest, manifest_bytes)

    def prune(self, keep: int) -> int:
        """Keep the ``keep`` most recently used artifacts, delete the rest; bytes freed (0 if the cache is busy)."""
        if not self.root.is_dir():
            return 0
        with open(self.root / USE_LOCK, "a") as claim:
            try:
                fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # someone is fetching or loading; the next load prunes instead
            views = [v for v in _children(self.views) if (v / COMPLETE_MARKER).exists()]
            views.sort(key=lambda v: v.stat().st_mtime, reverse=True)
            kept = views[: max(keep, 0)]
            manifests = [Manifest.from_json((view / MANIFEST_FILE).read_bytes()) for view in kept]
            referenced = {entry.sha256 for manifest in manifests for entry in manifest.files}
            # Under the exclusive claim nobody is building or downloading, so partial leftovers are stale too.
            doomed = [v for v in _children(self.views) if v not in kept]
            doomed += [b for b in _children(self.blobs) if b.name.split(".lock")[0] not in referenced]
            return sum(_remove(path) for path in doomed)

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


def _children(directory: Path) -> list[Path]:
    return list(directory.iterdir()) if directory.is_dir() else []


def _remove(path: Path) -> int:
    """Delete a file or tree; the bytes really freed (a hard link's data stays while another link does)."""
    files = [path] if not path.is_dir() else [Path(d, f) for d, _, names in os.walk(path) for f in names]
    freed = 0
    for file in files:
        info = file.lstat()
        freed += info.st_size if info.st_nlink == 1 else 0
        file.unlink()
    if path.is_dir():
        shutil.rmtree(path)
    return freed


def _link_or_copy(source: Path, dest: Path) -> None:
    # Hard links cost no space; some mounted volumes refuse them, so fall back to a copy.
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)
