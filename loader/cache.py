"""Content-addressed local cache: streamed, sha256-verified, atomic, and shared between workers."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from loader.errors import ArtifactNotFound, DigestMismatch, ModelfnError, StoreUnavailable
from loader.keys import object_key
from loader.knownbad import RECHECK_SECONDS, KnownBad
from loader.manifest import MANIFEST_FILE, FileEntry, Manifest
from loader.retry import DEFAULT_BUDGET_SECONDS, with_retries
from loader.stores.base import Store
from loader.verify import is_intact, mark_verified

log = logging.getLogger("modelfn.cache")

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

    def __init__(
        self,
        root: Path,
        retries: int = 4,
        retry_budget: float = DEFAULT_BUDGET_SECONDS,
        bad_recheck_seconds: float = RECHECK_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.retries = retries
        self.retry_budget = retry_budget
        self.blobs = root / "blobs"
        self.views = root / "artifacts"
        self.refs = root / "refs"
        self.known_bad = KnownBad(root / "bad", bad_recheck_seconds, clock)

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
            if self._usable_view(view, manifest):
                return view
            self.known_bad.refuse(digest)
            for entry in manifest.files:
                self.ensure_blob(store, object_key(manifest, entry), entry, stats, manifest_digest=digest)
            self.known_bad.clear(digest)
            return self._build_view(view, manifest, manifest_bytes)

    def _usable_view(self, view: Path, manifest: Manifest) -> bool:
        """A complete view whose files all hash right; an altered one is removed so it is rebuilt."""
        if not (view / COMPLETE_MARKER).exists():
            return False
        if any(not is_intact(view / entry.path, entry) for entry in manifest.files):
            log.warning("cached artifact %s failed verification; fetching it again", view.name)
            with suppress(OSError):
                _remove(view)
            return False
        with suppress(OSError):  # read-only caches have no recency to keep
            os.utime(view)  # the view's mtime is its last use, which prune() ranks by
        return True

    def remember_resolution(self, uri: str, manifest_bytes: bytes) -> None:
        """Record which verified manifest ``uri`` resolved to, for use while the store is unreachable."""
        record = json.dumps({"uri": uri, "manifest": hashlib.sha256(manifest_bytes).hexdigest()})
        with suppress(OSError):  # a read-only cache simply has no fallback to offer
            self.refs.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.refs, prefix=".tmp-")
            with os.fdopen(fd, "w") as out:
                out.write(record)
            os.replace(tmp, self._ref_path(uri))

    def last_resolution(self, uri: str) -> tuple[Manifest, Path] | None:
        """The manifest and view ``uri`` last resolved to, if still cached and intact."""
        try:
            record = json.loads(self._ref_path(uri).read_text())
            view = self.views / str(record["manifest"])
            manifest = Manifest.from_json((view / MANIFEST_FILE).read_bytes())
        except (OSError, ValueError, KeyError, TypeError, ModelfnError):
            return None
        with self.in_use():
            return (manifest, view) if record.get("uri") == uri and self._usable_view(view, manifest) else None

    def _ref_path(self, uri: str) -> Path:
        return self.refs / hashlib.sha256(uri.encode()).hexdigest()

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
            referenced = _referenced_blobs(kept)
            # Under the exclusive claim nobody is building or downloading, so partial leftovers are stale too.
            doomed = [v for v in _children(self.views) if v not in kept]
            if referenced is not None:
                doomed += [b for b in _children(self.blobs) if b.name.split(".lock")[0] not in referenced]
            return sum(_remove(path) for path in doomed)

    def ensure_blob(
        self, store: Store, key: str, entry: FileEntry, stats: FetchStats, manifest_digest: str | None = None
    ) -> Path:
        """Download one file once per container: other workers wait on the lock, then reuse it."""
        target = self.blob_path(entry.sha256)
        if is_intact(target, entry):
            return target
        self.blobs.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock", timeout=LOCK_TIMEOUT_SECONDS):
            if is_intact(target, entry):
                return target
            if manifest_digest:  # a worker that waited on the lock learns the holder's verdict here
                self.known_bad.refuse(manifest_digest)
            with suppress(FileNotFoundError):
                target.unlink()  # altered on disk: never serve it, fetch the real bytes
            try:
                with_retries(lambda: self._download(store, key, entry, target), self.retries, budget=self.retry_budget)
            except DigestMismatch as exc:
                if manifest_digest:
                    self.known_bad.record(manifest_digest, str(exc))
                raise
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
            os.chmod(tmp, 0o444)  # sealed: verified bytes are never written in place
            os.replace(tmp, target)
            mark_verified(target, entry.sha256)
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
                return view  # another worker built it; its files get checked on first use
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        with suppress(OSError):  # linking changed their ctime; their bytes were verified just now
            for entry in manifest.files:
                mark_verified(view / entry.path, entry.sha256)
                mark_verified(self.blob_path(entry.sha256), entry.sha256)
        return view


def _referenced_blobs(views: list[Path]) -> set[str] | None:
    """Blob digests the views use; None when one view's manifest is unreadable (e.g. another image's schema)."""
    referenced: set[str] = set()
    for view in views:
        try:
            manifest = Manifest.from_json((view / MANIFEST_FILE).read_bytes())
        except (OSError, ModelfnError) as exc:
            # Its blobs are unknown, so none is deleted; the view's own hard links keep it working.
            log.warning("cache prune: unreadable manifest in %s (%s); keeping every blob", view.name, exc)
            return None
        referenced.update(entry.sha256 for entry in manifest.files)
    return referenced


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
