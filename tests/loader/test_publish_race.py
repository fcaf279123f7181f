"""Two publisher processes racing for the same version, round after round, on every store backend."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from function.settings import Settings
from loader.artifacts import fetch
from loader.cache import ArtifactCache
from loader.stores import open_store
from loader.uri import parse_model_uri
from tests.models import B, linear_onnx

ROUNDS = 20
BARRIER_TIMEOUT = 120.0


def _publisher(uri: str, env: dict[str, str], model: str, rounds: int, barrier: Any, results: Any) -> None:
    """One publisher: every round, build the manifest, wait for the others, then publish the same version."""
    os.environ.update(env)
    from function.publishing import build_manifest
    from loader.errors import AlreadyExists
    from loader.publish import publish

    store = open_store(uri, Settings().store_options())
    for i in range(rounds):
        manifest, sources = build_manifest(Path(model), "lin", f"r{i}", None, [], [], [], {}, {}, {})
        barrier.wait(BARRIER_TIMEOUT)
        try:
            publish(store, manifest, sources, ())
            results.put((i, "won", manifest.files[0].sha256))
        except AlreadyExists:
            results.put((i, "lost", ""))
        except Exception as exc:  # reported to the parent, which fails the test with it
            results.put((i, "error", f"{type(exc).__name__}: {exc}"))


@pytest.mark.timeout(600)
def test_racing_publishers_never_corrupt_a_version(race_store: tuple[str, dict], tmp_path: Path) -> None:
    uri, env = race_store
    for k in (0, 1):
        (tmp_path / f"m{k}").mkdir()
    models = [str(linear_onnx(tmp_path / f"m{k}" / "model.onnx", bias=B + k)) for k in (0, 1)]
    digests = {_sha(Path(m)) for m in models}
    assert len(digests) == 2  # the racers really upload different bytes under the same name
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_publisher, args=(uri, env, m, ROUNDS, barrier, results)) for m in models]
    for proc in procs:
        proc.start()
    try:
        for i in range(ROUNDS):
            barrier.wait(BARRIER_TIMEOUT)  # both publishers start this round together
            outcomes = sorted(results.get(timeout=BARRIER_TIMEOUT)[1:] for _ in procs)
            assert not [o for o in outcomes if o[0] == "error"], outcomes
            winners = [sha for kind, sha in outcomes if kind == "won"]
            if not uri.startswith("gs://"):
                # gcp-storage-emulator ignores ifGenerationMatch (real GCS enforces it: see
                # test_gcs_if_absent_sends_precondition), so there both writes "win" and the last stays.
                assert len(winners) == 1, outcomes
            artifact = _load(uri, i, tmp_path / f"cache-{i}")  # verifies every digest
            assert artifact.manifest.files[0].sha256 in winners
    finally:
        barrier.abort()  # a failed round releases the publishers instead of leaving them waiting
        for proc in procs:
            proc.join(timeout=BARRIER_TIMEOUT)
            if proc.is_alive():
                proc.kill()


def _load(uri: str, round_: int, cache_dir: Path) -> Any:
    model = parse_model_uri(f"{uri}/lin@r{round_}")
    artifact = fetch(open_store(model.store, Settings().store_options()), model, ArtifactCache(cache_dir, retries=0))
    import onnxruntime as ort

    session = ort.InferenceSession(str(artifact.model_path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"features": np.ones((1, 4), dtype=np.float32)})[0]
    assert out.shape == (1, 3)
    return artifact


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
