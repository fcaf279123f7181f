"""What the cache serves is verified, bad bytes are not re-downloaded in a loop, and retries are bounded in time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loader.artifacts import fetch
from loader.cache import ArtifactCache
from loader.errors import DigestMismatch, StoreUnavailable
from loader.knownbad import RECHECK_MAX_SECONDS as BAD_RECHECK_MAX_SECONDS
from loader.retry import with_retries
from loader.stores.file import FileStore
from loader.uri import parse_model_uri
from tests.models import B, linear_onnx, publish_model, stored_file


class CountingStore(FileStore):
    """A file store that counts file downloads (``iter_chunks`` calls)."""

    def __init__(self, location, options) -> None:
        super().__init__(location, options)
        self.downloads = 0

    def iter_chunks(self, key, chunk_size=1024 * 1024):
        self.downloads += 1
        yield from super().iter_chunks(key, chunk_size)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lin(store_dir: Path, onnx_file: Path) -> str:
    publish_model(store_dir.as_uri(), onnx_file)
    return f"{store_dir.as_uri()}/lin@1.0.0"


def _fetch(uri_text: str, cache: ArtifactCache, store: CountingStore | None = None):
    uri = parse_model_uri(uri_text)
    return fetch(store or CountingStore(uri.store, {}), uri, cache)


def test_a_cached_blob_altered_on_disk_is_not_served_but_fetched_again(lin: str, onnx_file: Path, tmp_path: Path):
    first = _fetch(lin, ArtifactCache(tmp_path / "cache"))
    blob = tmp_path / "cache" / "blobs" / first.manifest.files[0].sha256
    assert not os.stat(blob).st_mode & 0o222  # sealed read-only
    other = linear_onnx(tmp_path / "other.onnx", bias=B + 7).read_bytes()
    assert len(other) == blob.stat().st_size  # same size: a size check cannot tell
    blob.chmod(0o644)
    blob.write_bytes(other)  # in place: the view's hard link sees it too
    again = _fetch(lin, ArtifactCache(tmp_path / "cache"))  # a new process's cache object
    assert again.stats.files_downloaded == 1
    assert again.model_path.read_bytes() == onnx_file.read_bytes()


def test_an_unaltered_cache_is_hashed_once_per_process_and_not_refetched(lin: str, tmp_path: Path):
    _fetch(lin, ArtifactCache(tmp_path / "cache"))
    store = CountingStore(parse_model_uri(lin).store, {})
    for _ in range(3):
        assert _fetch(lin, ArtifactCache(tmp_path / "cache"), store).stats.files_downloaded == 0
    assert store.downloads == 0


def test_known_bad_bytes_are_not_downloaded_again_with_bounded_backoff(lin: str, store_dir: Path, tmp_path: Path):
    model = stored_file(store_dir)
    data = model.read_bytes()
    model.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # the store serves wrong bytes
    clock = FakeClock()
    cache = ArtifactCache(tmp_path / "cache", retries=0, bad_recheck_seconds=30, clock=clock)
    store = CountingStore(parse_model_uri(lin).store, {})
    for _ in range(5):  # the holder retrying every LOAD_RETRY_SECONDS
        with pytest.raises(DigestMismatch, match="sha256"):
            _fetch(lin, cache, store)
    assert store.downloads == 1
    clock.now += 31  # first recheck after 30 s ...
    with pytest.raises(DigestMismatch):
        _fetch(lin, cache, store)
    clock.now += 31  # ... then the wait doubles (60 s)
    with pytest.raises(DigestMismatch):
        _fetch(lin, cache, store)
    assert store.downloads == 2
    for _ in range(20):  # growth is bounded: never longer than the cap
        clock.now += BAD_RECHECK_MAX_SECONDS + 1
        with pytest.raises(DigestMismatch):
            _fetch(lin, cache, store)
    assert store.downloads == 22
    model.write_bytes(data)  # repaired in place: picked up at the next recheck
    clock.now += BAD_RECHECK_MAX_SECONDS + 1
    assert _fetch(lin, cache, store).stats.files_downloaded == 1


def test_a_new_manifest_is_downloaded_at_once_even_after_a_bad_one(
    lin: str, store_dir: Path, onnx_file: Path, tmp_path: Path
):
    stored_file(store_dir).write_bytes(b"\0" * onnx_file.stat().st_size)
    cache = ArtifactCache(tmp_path / "cache", retries=0, clock=FakeClock())
    with pytest.raises(DigestMismatch):
        _fetch(f"{store_dir.as_uri()}/lin@latest", cache)
    fixed = linear_onnx(tmp_path / "fixed.onnx", bias=B + 1)
    publish_model(store_dir.as_uri(), fixed, version="1.0.1")  # latest moves to a new manifest
    assert _fetch(f"{store_dir.as_uri()}/lin@latest", cache).stats.files_downloaded == 1


def test_retries_stop_at_the_time_budget_not_after_retries_times_timeouts():
    """A blackholed store: each attempt burns a 20 s read timeout; 4 retries would take ~100 s."""
    clock = FakeClock()
    attempts = []

    def blackholed() -> bytes:
        attempts.append(clock.now)
        clock.now += 20.0
        raise StoreUnavailable("read timeout")

    def sleep(seconds: float) -> None:
        clock.now += seconds

    with pytest.raises(StoreUnavailable):
        with_retries(blackholed, retries=4, budget=30.0, clock=clock, sleep=sleep)
    assert len(attempts) == 2  # the total is bounded by the budget plus one request timeout
    assert clock.now - 1000.0 <= 30.0 + 20.0


def test_budget_still_allows_quick_retries():
    clock = FakeClock()
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise StoreUnavailable("reset")
        return "ok"

    assert with_retries(flaky, retries=4, budget=30.0, clock=clock, sleep=lambda s: None) == "ok"
    assert len(calls) == 4


class LoggingStore(FileStore):
    """A file store that appends one line per download to a file (countable across processes)."""

    log: Path

    def iter_chunks(self, key, chunk_size=1024 * 1024):
        with open(self.log, "a") as out:
            out.write(key + "\n")
        yield from super().iter_chunks(key, chunk_size)


def _worker_fetch(uri_text: str, cache_dir: str, log: str, barrier) -> str:
    uri = parse_model_uri(uri_text)
    store = LoggingStore(uri.store, {})
    store.log = Path(log)
    barrier.wait(60)
    try:
        fetch(store, uri, ArtifactCache(Path(cache_dir), retries=0))
    except DigestMismatch:
        return "mismatch"
    return "ok"


def test_workers_share_the_verdict_on_bad_bytes(lin: str, store_dir: Path, tmp_path: Path):
    """Two workers of one container starting together against a store serving wrong bytes: one download."""
    import multiprocessing

    model = stored_file(store_dir)
    data = model.read_bytes()
    model.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    ctx = multiprocessing.get_context("spawn")
    log = tmp_path / "downloads.log"
    with ctx.Manager() as manager:
        barrier = manager.Barrier(4)
        with ctx.Pool(4) as pool:
            args = [(lin, str(tmp_path / "cache"), str(log), barrier)] * 4
            outcomes = pool.starmap(_worker_fetch, args)
    assert outcomes == ["mismatch"] * 4
    assert len(log.read_text().splitlines()) == 1
