"""Size, version and ranged reads of one stored object, per store scheme (shards read only their bytes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from loader.errors import ArtifactNotFound, StoreUnavailable
from loader.stores import CHUNK_SIZE, Store

# Ranged GETs are fetched in windows so memory stays bounded whatever the range.
WINDOW = 8 * 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    """What a shard pins: the object's size and the version it read."""

    size: int
    version: str


def stat(store: Store, key: str) -> ObjectInfo:
    """Size and version (S3 VersionId or ETag, GCS generation, Azure ETag, file mtime)."""
    return _backend(store)[0](store, key)


def iter_range(store: Store, key: str, start: int, end: int, version: str) -> Iterator[bytes]:
    """Bytes ``[start, end)`` of the object's ``version`` in chunks; a changed object is an error."""
    if end <= start:
        return iter(())
    return _backend(store)[1](store, key, start, end, version)


def _backend(store: Store) -> tuple[Callable[..., ObjectInfo], Callable[..., Iterator[bytes]]]:
    scheme = store.location.scheme
    if scheme not in _BACKENDS:
        raise StoreUnavailable(f"ranged reads are not supported for {scheme}:// stores")
    return _BACKENDS[scheme]


def _changed(store: Store, key: str) -> StoreUnavailable:
    return StoreUnavailable(f"{store.location.uri}/{key} changed while a shard was reading it")


def _file_stat(store: Any, key: str) -> ObjectInfo:
    try:
        st = (store.root / key).stat()
    except (FileNotFoundError, NotADirectoryError):
        raise ArtifactNotFound(f"not found: {store.location.uri}/{key}") from None
    return ObjectInfo(st.st_size, str(st.st_mtime_ns))


def _file_range(store: Any, key: str, start: int, end: int, version: str) -> Iterator[bytes]:
    if _file_stat(store, key).version != version:
        raise _changed(store, key)
    with (store.root / key).open("rb") as handle:
        handle.seek(start)
        left = end - start
        while left > 0 and (chunk := handle.read(min(CHUNK_SIZE, left))):
            left -= len(chunk)
            yield chunk


def _s3_stat(store: Any, key: str) -> ObjectInfo:
    with store._errors(key):
        head = store._client.head_object(Bucket=store.location.bucket, Key=store.location.key(key))
    return ObjectInfo(int(head["ContentLength"]), str(head.get("VersionId") or head["ETag"]))


def _s3_range(store: Any, key: str, start: int, end: int, version: str) -> Iterator[bytes]:
    pin = {"IfMatch": version} if version.startswith('"') else {"VersionId": version}
    for lo in range(start, end, WINDOW):
        hi = min(lo + WINDOW, end) - 1
        with store._errors(key):
            response = store._client.get_object(
                Bucket=store.location.bucket, Key=store.location.key(key), Range=f"bytes={lo}-{hi}", **pin
            )
            yield from response["Body"].iter_chunks(CHUNK_SIZE)


def _gcs_stat(store: Any, key: str) -> ObjectInfo:
    with store._errors(key):
        blob = store._blob(key)
        blob.reload(retry=None, timeout=(3.0, 20.0))
    return ObjectInfo(int(blob.size or 0), str(blob.generation))


def _gcs_range(store: Any, key: str, start: int, end: int, version: str) -> Iterator[bytes]:
    blob = store._blob(key)
    for lo in range(start, end, WINDOW):
        with store._errors(key):
            data = blob.download_as_bytes(
                start=lo,
                end=min(lo + WINDOW, end) - 1,
                checksum=None,
                if_generation_match=int(version),
                retry=None,
                timeout=(3.0, 20.0),
            )
        for offset in range(0, len(data), CHUNK_SIZE):
            yield data[offset : offset + CHUNK_SIZE]


def _azure_stat(store: Any, key: str) -> ObjectInfo:
    with store._errors(key):
        props = store._blob(key).get_blob_properties()
    return ObjectInfo(int(props.size), str(props.etag))


def _azure_range(store: Any, key: str, start: int, end: int, version: str) -> Iterator[bytes]:
    from azure.core import MatchConditions

    with store._errors(key):
        stream = store._blob(key).download_blob(
            offset=start, length=end - start, etag=version, match_condition=MatchConditions.IfNotModified
        )
        yield from stream.chunks()


_BACKENDS: dict[str, tuple[Callable[..., ObjectInfo], Callable[..., Iterator[bytes]]]] = {
    "file": (_file_stat, _file_range),
    "s3": (_s3_stat, _s3_range),
    "gs": (_gcs_stat, _gcs_range),
    "az": (_azure_stat, _azure_range),
}
