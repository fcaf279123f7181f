"""The artifact cache: verification, reuse, retries and one download per container."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from loader.artifacts import fetch
from loader.cache import ArtifactCache
from loader.errors import ArtifactNotFound, DigestMismatch, StoreUnavailable
from loader.stores import open_store
from loader.stores.file import FileStore
from loader.uri import parse_model_uri
from tests.models import publish_model


class FlakyStore(FileStore):
    """A file store whose reads fail transiently a given number of times (fault injection)."""

    def __init__(self, location, options, failures: int) -> None:
        super().__init__(location, options)
        self.failures = failures
        self.chunk_reads = 0

    def iter_chunks(self, key, chunk_size=1024 * 1024):
        self.chunk_reads += 1
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailable("injected: connection reset")
        yield from super().iter_chunks(key, chunk_size)


@pytest.fixture
def lin(store_dir: Path, onnx_file: Path) -> str:
    publish_model(store_dir.as_uri(), onnx_file)
    return f"{store_dir.as_uri()}/lin@1.0.0"


def test_fetch_verifies_and_reuses(lin: str, tmp_path: Path):
    uri = parse_model_uri(lin)
    cache = ArtifactCache(tmp_path / "cache")
    first = fetch(open_store(uri.store), uri, cache)
    assert first.stats.files_downloaded == 1 and first.model_path.read_bytes()
    assert (first.directory / "manifest.json").exists()
    second = fetch(open_store(uri.store), uri, cache)
    assert second.stats.files_downloaded == 0 and second.directory == first.directory


def test_transient_errors_are_retried(lin: str, tmp_path: Path):
    uri = parse_model_uri(lin)
    store = FlakyStore(uri.store, {}, failures=2)
    artifact = fetch(store, uri, ArtifactCache(tmp_path / "cache", retries=3))
    assert artifact.stats.files_downloaded == 1 and store.chunk_reads == 3


def test_retries_are_bounded(lin: str, tmp_path: Path):
    uri = parse_model_uri(lin)
    store = FlakyStore(uri.store, {}, failures=10)
    with pytest.raises(StoreUnavailable):
        fetch(store, uri, ArtifactCache(tmp_path / "cache", retries=2))
    assert store.chunk_reads == 3


@pytest.mark.parametrize("corruption", ["same-size", "truncated", "longer"])
def test_digest_mismatch_is_typed_and_not_retried(lin: str, store_dir: Path, tmp_path: Path, corruption):
    model = store_dir / "lin" / "1.0.0" / "model.onnx"
    data = model.read_bytes()
    model.write_bytes({"same-size": data[:-1] + b"\x00", "truncated": data[:-5], "longer": data + b"x"}[corruption])
    uri = parse_model_uri(lin)
    store = FlakyStore(uri.store, {}, failures=0)
    cache = ArtifactCache(tmp_path / "cache", retries=3)
    with pytest.raises(DigestMismatch, match=r"model\.onnx"):
        fetch(store, uri, cache)
    assert store.chunk_reads == 1
    assert not list(cache.blobs.glob("[0-9a-f]*[!k]"))  # nothing unverified left behind


def test_missing_file_is_typed(lin: str, store_dir: Path, tmp_path: Path):
    (store_dir / "lin" / "1.0.0" / "model.onnx").unlink()
    uri = parse_model_uri(lin)
    with pytest.raises(ArtifactNotFound):
        fetch(open_store(uri.store), uri, ArtifactCache(tmp_path / "cache"))


def _fetch_in_process(args: tuple[str, str]) -> int:
    uri_text, cache_dir = args
    uri = parse_model_uri(uri_text)
    return fetch(open_store(uri.store), uri, ArtifactCache(Path(cache_dir))).stats.files_downloaded


def test_concurrent_workers_download_once(lin: str, tmp_path: Path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as pool:
        downloads = pool.map(_fetch_in_process, [(lin, str(tmp_path / "cache"))] * 6)
    assert sum(downloads) == 1


def test_views_fall_back_to_copies_without_hard_links(lin: str, tmp_path: Path, monkeypatch):
    def refuse(*_: object) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr("loader.cache.os.link", refuse)
    uri = parse_model_uri(lin)
    artifact = fetch(open_store(uri.store), uri, ArtifactCache(tmp_path / "cache"))
    blob = ArtifactCache(tmp_path / "cache").blob_path(artifact.manifest.files[0].sha256)
    assert artifact.model_path.read_bytes() == blob.read_bytes()
    assert artifact.model_path.stat().st_ino != blob.stat().st_ino
