"""``file://`` stores: a directory tree with the same layout as a bucket."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from loader.errors import AlreadyExists, ArtifactNotFound, StoreUnavailable
from loader.stores.base import CHUNK_SIZE, Progress
from loader.uri import StoreLocation


class FileStore:
    """A local (or mounted) directory; conditional writes use link(2) so they are atomic."""

    def __init__(self, location: StoreLocation, options: dict[str, str | None]) -> None:
        self.location = location
        self.root = Path(location.prefix)

    def _path(self, key: str) -> Path:
        return self.root / key

    def read_bytes(self, key: str) -> bytes:
        """Whole small object."""
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ArtifactNotFound(f"not found: {self.location.uri}/{key}") from None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {self.location.uri}/{key}: {exc.strerror}") from None

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Stream a file in chunks."""
        try:
            handle = self._path(key).open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ArtifactNotFound(f"not found: {self.location.uri}/{key}") from None
        with handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        """Write via a temp file; ``if_absent`` publishes with link(), which fails if the key exists."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            self._commit(Path(tmp), target, if_absent)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def put_file(self, key: str, path: Path, *, progress: Progress | None = None) -> None:
        """Copy a local file into the store atomically."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out, path.open("rb") as src:
                while chunk := src.read(CHUNK_SIZE):
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))
            self._commit(Path(tmp), target, if_absent=False)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _commit(self, tmp: Path, target: Path, if_absent: bool) -> None:
        tmp.chmod(0o644)  # mkstemp creates 0600; stored objects are meant to be shared
        if not if_absent:
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise AlreadyExists(f"already exists: {self.location.uri}/{target.relative_to(self.root)}") from None

    def exists(self, key: str) -> bool:
        """True when the file exists."""
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Files under a prefix, skipping our temp files."""
        base = self._path(prefix)
        if not base.is_dir():
            return
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                yield path.relative_to(self.root).as_posix()
