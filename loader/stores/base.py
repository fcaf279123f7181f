"""The storage protocol every backend implements (keys are relative to the store's prefix)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from loader.errors import ModelfnError
from loader.uri import StoreLocation

CHUNK_SIZE = 1024 * 1024
Progress = Callable[[int], None]


def install_hint(extra: str) -> str:
    """How to get a backend's SDK, for an installed package and for a source checkout."""
    return f"pip install 'modelfn[{extra}]' (from a source checkout: pip install -e '.[{extra}]')"


class Store(Protocol):
    """Object storage as modelfn needs it.

    Keys are ``/``-separated and relative to ``location.prefix``. Backends raise
    ``ArtifactNotFound`` for missing objects, ``AlreadyExists`` when an ``if_absent`` write
    finds the key taken, ``StoreUnavailable`` for transient errors (retried by callers) and
    ``StoreConfigError`` for a missing SDK or setting. They never retry themselves.
    """

    location: StoreLocation

    def read_bytes(self, key: str) -> bytes:
        """Whole small object (manifests, aliases)."""
        ...

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Stream an object in chunks; errors may surface while iterating."""
        ...

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        """Write a small object; with ``if_absent`` the write is conditional (atomic where possible)."""
        ...

    def put_file(self, key: str, path: Path, *, progress: Progress | None = None) -> None:
        """Upload a local file, reporting bytes sent to ``progress``."""
        ...

    def exists(self, key: str) -> bool:
        """True when the object exists."""
        ...

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix`` (relative to the store), in any order."""
        ...


StoreFactory = Callable[[StoreLocation, dict[str, str | None]], Store]
ErrorMapper = Callable[[Exception, str, bool], ModelfnError | None]


@contextmanager
def translated(mapper: ErrorMapper, where: str, conditional: bool = False) -> Iterator[None]:
    """Re-raise an SDK exception as the store error contract; exceptions the mapper does not know pass."""
    try:
        yield
    except ModelfnError:
        raise
    except Exception as exc:
        mapped = mapper(exc, where, conditional)
        if mapped is None:
            raise
        raise mapped from None
