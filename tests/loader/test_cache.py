"""The artifact cache: verification, reuse, retries and one download per container."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from loader.artifacts import LocalArtifact, fetch
from loader.cache import ArtifactCache
from loader.errors import ArtifactNotFound, DigestMismatch, StoreUnavailable
from loader.stores import open_store
from loader.stores.file import FileStore
from loader.uri import parse_model_uri
from tests.models import linear_onnx, publish_model, stored_file


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
    model = stored_file(store_dir)
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
    stored_file(store_dir).unlink()
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


def _fetch_versions(store_dir: Path, tmp_path: Path, cache: ArtifactCache) -> dict[str, LocalArtifact]:
    """Publish lin 1.0.0..3.0.0 (3.0.0 reuses 2.0.0's file), fetch each, and age them in that order."""
    files = [linear_onnx(tmp_path / f"{i}.onnx", bias=np.full(3, float(i))) for i in range(2)]
    artifacts = {}
    for age, (version, model) in enumerate(zip(["1.0.0", "2.0.0", "3.0.0"], [*files, files[1]], strict=True)):
        publish_model(store_dir.as_uri(), model, version=version)
        uri = parse_model_uri(f"{store_dir.as_uri()}/lin@{version}")
        artifacts[version] = fetch(open_store(uri.store), uri, cache)
        os.utime(artifacts[version].directory, (100 + age, 100 + age))  # explicit: mtime resolution varies
    return artifacts


def test_prune_keeps_the_most_recently_used(store_dir: Path, tmp_path: Path):
    cache = ArtifactCache(tmp_path / "cache")
    artifacts = _fetch_versions(store_dir, tmp_path, cache)
    uri = parse_model_uri(f"{store_dir.as_uri()}/lin@1.0.0")
    assert fetch(open_store(uri.store), uri, cache).stats.files_downloaded == 0  # a cache hit counts as a use
    blob = {v: cache.blob_path(a.manifest.files[0].sha256) for v, a in artifacts.items()}
    assert blob["2.0.0"] == blob["3.0.0"] != blob["1.0.0"]
    manifest_size = {v: (a.directory / "manifest.json").stat().st_size for v, a in artifacts.items()}
    (cache.blobs / ".partial-crashed").write_bytes(b"x" * 10)  # a download that died with its process

    # Recency: 1.0.0 (just used), 3.0.0, 2.0.0. The shared blob stays; only unshared bytes count as freed.
    assert cache.prune(keep=2) == 10 + manifest_size["2.0.0"]
    assert [v for v, a in artifacts.items() if a.directory.exists()] == ["1.0.0", "3.0.0"]
    assert blob["2.0.0"].exists() and not (cache.blobs / ".partial-crashed").exists()

    shared_size = blob["3.0.0"].stat().st_size
    assert cache.prune(keep=1) == manifest_size["3.0.0"] + shared_size
    assert sorted(p.name for p in cache.blobs.iterdir()) == sorted([blob["1.0.0"].name, blob["1.0.0"].name + ".lock"])
    assert fetch(open_store(uri.store), uri, cache).stats.files_downloaded == 0  # the kept one is intact


def test_prune_never_runs_under_a_fetch_or_load(lin: str, tmp_path: Path):
    cache = ArtifactCache(tmp_path / "cache")
    uri = parse_model_uri(lin)
    with cache.in_use():  # as the server holds it from fetch until the runtime has read the files
        artifact = fetch(open_store(uri.store), uri, cache)
        assert cache.prune(keep=0) == 0
        assert artifact.model_path.exists()
    assert cache.prune(keep=0) > 0 and not artifact.directory.exists()


def test_a_cache_that_cannot_take_the_claim_still_serves(lin: str, tmp_path: Path):
    # Stands in for a read-only, pre-filled cache (root ignores file modes, so a directory blocks the open).
    cache = ArtifactCache(tmp_path / "cache")
    uri = parse_model_uri(lin)
    fetch(open_store(uri.store), uri, cache)
    (cache.root / ".in-use.lock").unlink()
    (cache.root / ".in-use.lock").mkdir()
    again = fetch(open_store(uri.store), uri, cache)
    assert again.stats.files_downloaded == 0 and again.model_path.exists()
    with pytest.raises(OSError):
        cache.prune(keep=0)  # the server logs this and keeps serving (function.serving.prune_cache)
