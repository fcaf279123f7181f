"""Canary and shadow through the alias: the split, stickiness, shadows that never answer, finish, rollback."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from function.app import create_app
from function.release import bucket
from function.settings import Settings
from loader import aliases
from loader.stores import open_store
from tests.conftest import wait_ready
from tests.models import B, expected_logits, publish_linear_versions, publish_model

X = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
# 1.1.0 adds 10 to every logit (same top label); 2.0.0 makes the last class win every row.
BIAS = {"1.0.0": B, "1.1.0": B + 10, "2.0.0": B + np.array([0.0, 0.0, 100.0], dtype=np.float32)}
BODY = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": X[0].tolist()}]}


def six_sigma(n: int, share: float) -> tuple[float, float]:
    """Binomial bounds: a correct split falls outside them about once in 500 million runs."""
    mean, sd = n * share, (n * share * (1 - share)) ** 0.5
    return mean - 6 * sd, mean + 6 * sd


@pytest.fixture
def store(store_dir: Path, tmp_path: Path) -> Any:
    """A file store with lin@1.0.0, 1.1.0 and 2.0.0 and ``prod`` -> 1.0.0."""
    uri = store_dir.as_uri()
    publish_linear_versions(uri, tmp_path, BIAS)
    store = open_store(uri, {})
    aliases.promote(store, "lin", "prod", "1.0.0", by="test")
    return store


@pytest.fixture
def serve(store: Any, make_settings: Callable[..., Settings]) -> Callable[..., tuple[Flask, FlaskClient]]:
    """Start an app (one "container") serving lin@prod and wait until it is ready."""

    def start(**overrides: Any) -> tuple[Flask, FlaskClient]:
        app = create_app(make_settings(model_uri=f"{store.location.uri}/lin@prod", **overrides))
        client = app.test_client()
        wait_ready(client)
        return app, client

    return start


def infer(client: FlaskClient, headers: dict[str, str] | None = None, version: str | None = None) -> str:
    """One V2 request; checks the answer was computed by the version the response names, and returns it."""
    path = "/v2/models/lin/infer" if version is None else f"/v2/models/lin/versions/{version}/infer"
    r = client.post(path, json=BODY, headers=headers or {})
    assert r.status_code == 200, r.get_json()
    doc = r.get_json()
    answered = r.headers["X-Model-Version"]
    assert doc["model_version"] == answered
    got = np.array(doc["outputs"][0]["data"], np.float32).reshape(1, 3)
    np.testing.assert_allclose(got, expected_logits(X) - B + BIAS[answered], rtol=1e-5)
    return answered


def metric(app: Flask, name: str, **labels: str) -> float:
    """One sample of the app's registry (0 when the series does not exist yet)."""
    value = app.extensions["modelfn"].metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_canary_split_stays_within_binomial_bounds_with_and_without_keys(store, serve) -> None:
    aliases.start_candidate(store, "lin", "prod", "1.1.0", 10, "canary", by="test")
    app, client = serve()
    assert client.get("/readyz").get_json()["candidate"] == {"version": "1.1.0", "mode": "canary", "share": 10.0}
    n = 3000
    random_split = Counter(infer(client) for _ in range(n))
    keyed_split = Counter(infer(client, {"X-Request-Id": f"req-{i}"}) for i in range(n))
    low, high = six_sigma(n, 0.10)
    for split in (random_split, keyed_split):
        assert set(split) == {"1.0.0", "1.1.0"}
        assert low <= split["1.1.0"] <= high, split
    # Every canary answer is counted under its role, every other one under the primary's.
    canary = metric(app, "modelfn_predictions_total", model="lin", version="1.1.0", role="canary", outcome="ok")
    primary = metric(app, "modelfn_predictions_total", model="lin", version="1.0.0", role="primary", outcome="ok")
    assert canary == random_split["1.1.0"] + keyed_split["1.1.0"]
    assert primary == random_split["1.0.0"] + keyed_split["1.0.0"]
    assert metric(app, "modelfn_release_share", model="lin", version="1.1.0", role="canary") == 10
    assert metric(app, "modelfn_release_share", model="lin", version="1.0.0", role="primary") == 90


def test_a_route_key_sticks_to_one_version_in_every_container(store, serve) -> None:
    aliases.start_candidate(store, "lin", "prod", "1.1.0", 30, "canary", by="test")
    _, first = serve()
    _, second = serve()  # another container of the same service, its own load and process state
    keys = [f"user-{i}" for i in range(300)]
    chosen = {}
    for key in keys:
        seen = {infer(c, {"X-Route-Key": key, "X-Request-Id": f"{key}-{j}"}) for j, c in enumerate([first, second] * 2)}
        assert len(seen) == 1, (key, seen)  # X-Route-Key wins over a changing request id
        chosen[key] = seen.pop()
    low, high = six_sigma(len(keys), 0.30)
    assert low <= sum(v == "1.1.0" for v in chosen.values()) <= high
    assert all((bucket("1.1.0", k) < 30) == (v == "1.1.0") for k, v in chosen.items())


@pytest.mark.parametrize(("candidate", "result"), [("1.1.0", "agree"), ("2.0.0", "disagree")])
def test_a_shadow_never_changes_the_answer_and_reports_agreement(store, serve, candidate, result) -> None:
    aliases.start_candidate(store, "lin", "prod", candidate, 100, "shadow", by="test")
    app, client = serve()
    n = 200
    assert Counter(infer(client) for _ in range(n)) == {"1.0.0": n}  # the primary answered every request
    app.extensions["modelfn"].shadow.close()  # wait for the queued shadow runs
    shadowed = metric(app, "modelfn_predictions_total", model="lin", version=candidate, role="shadow", outcome="ok")
    dropped = metric(app, "modelfn_shadow_dropped_total", model="lin", version=candidate)
    assert shadowed + dropped == n and shadowed > 0
    rows = {
        r: metric(app, "modelfn_shadow_rows_total", model="lin", version=candidate, result=r)
        for r in ("agree", "disagree")
    }
    assert rows[result] == shadowed and sum(rows.values()) == shadowed
    diff = {
        n: metric(app, f"modelfn_shadow_max_abs_diff_{n}", model="lin", version=candidate) for n in ("sum", "count")
    }
    assert diff["count"] == shadowed
    expected = float(np.max(np.abs(BIAS[candidate] - BIAS["1.0.0"])))  # 10 for 1.1.0, 100 for 2.0.0
    assert diff["sum"] / diff["count"] == pytest.approx(expected, rel=1e-5)


def test_the_candidate_can_be_addressed_by_version_and_metadata_lists_both(store, serve) -> None:
    aliases.start_candidate(store, "lin", "prod", "2.0.0", 5, "shadow", by="test")
    _, client = serve()
    assert infer(client, version="2.0.0") == "2.0.0"
    assert infer(client, version="1.0.0") == "1.0.0"
    assert client.get("/v2/models/lin").get_json()["versions"] == ["1.0.0", "2.0.0"]
    assert client.get("/v2/models/lin/versions/2.0.0/ready").status_code == 200
    missing = client.post("/v2/models/lin/versions/1.1.0/infer", json=BODY)
    assert missing.status_code == 404 and "1.0.0 and 2.0.0" in missing.get_json()["error"]


def test_finish_and_rollback_swap_from_the_cache_with_one_copy_per_role(store, serve) -> None:
    aliases.start_candidate(store, "lin", "prod", "1.1.0", 50, "canary", by="test")
    app, client = serve()
    updater = app.extensions["modelfn.events"].updater
    loads = lambda: metric(app, "modelfn_model_load_seconds_count")  # noqa: E731
    downloads = lambda: metric(app, "modelfn_artifact_downloads_total")  # noqa: E731
    assert (loads(), downloads()) == (2, 2)  # primary and canary, one copy each
    aliases.finish(store, "lin", "prod", by="test")
    assert updater.check() == "swapped"
    # The canary's session does not spin-wait (it ran beside the primary); as the primary it is loaded
    # again from the cache with the primary's options, and the old primary is dropped.
    assert (loads(), downloads()) == (3, 2)
    release = app.extensions["modelfn"].holder.model
    assert release.split is None and release.runtime.options.spin_wait
    assert {infer(client) for _ in range(50)} == {"1.1.0"}
    assert metric(app, "modelfn_release_share", model="lin", version="1.1.0", role="canary") == 0
    assert metric(app, "modelfn_release_share", model="lin", version="1.1.0", role="primary") == 100
    aliases.rollback(store, "lin", "prod", by="test")  # back to 1.0.0 + canary 1.1.0
    assert updater.check() == "swapped"
    assert (loads(), downloads()) == (5, 2) and updater.check() == "current"
    assert {infer(client) for _ in range(200)} == {"1.0.0", "1.1.0"}
    aliases.promote(store, "lin", "prod", "1.0.0", by="test")  # the canary ends: the primary is reused
    assert updater.check() == "swapped" and loads() == 5


def test_a_candidate_that_fails_to_load_leaves_the_primary_serving(store, serve, store_dir: Path) -> None:
    broken = next((store_dir / "lin" / "_blobs" / "sha256").iterdir())
    aliases.start_candidate(store, "lin", "prod", "2.0.0", 50, "canary", by="test")
    # Corrupt every blob but the primary's: the candidate fails its digest check, the primary must not.
    primary = re.search(r'"sha256": "([0-9a-f]{64})"', (store_dir / "lin" / "1.0.0" / "manifest.json").read_text())
    assert primary and broken.exists()
    for blob in (store_dir / "lin" / "_blobs" / "sha256").iterdir():
        if blob.name != primary.group(1):
            blob.chmod(0o644)
            blob.write_bytes(b"not a model")
    app, client = serve()
    assert "candidate" not in client.get("/readyz").get_json()
    assert {infer(client) for _ in range(50)} == {"1.0.0"}
    assert app.extensions["modelfn.events"].updater.check() == "failed"  # tried again, still serving 1.0.0


def test_a_shadow_that_cannot_take_the_inputs_counts_errors_and_answers_nothing(store, serve, tmp_path) -> None:
    from tests.models import two_input_onnx

    publish_model(store.location.uri, two_input_onnx(tmp_path / "two.onnx"), version="3.0.0", aliases=())
    aliases.start_candidate(store, "lin", "prod", "3.0.0", 100, "shadow", by="test")
    app, client = serve()
    assert Counter(infer(client) for _ in range(20)) == {"1.0.0": 20}
    app.extensions["modelfn"].shadow.close()
    errors = metric(app, "modelfn_predictions_total", model="lin", version="3.0.0", role="shadow", outcome="error")
    assert errors == 20
    assert metric(app, "modelfn_shadow_rows_total", model="lin", version="3.0.0", result="agree") == 0


def test_primary_and_canary_never_run_on_the_device_at_the_same_time(store, serve) -> None:
    import threading
    import time

    aliases.start_candidate(store, "lin", "prod", "1.1.0", 50, "canary", by="test")
    app, _ = serve()
    release = app.extensions["modelfn"].holder.model
    # The primary's threads spin between runs; the candidate's sleep, so they never take the primary's CPUs.
    assert release.runtime.options.spin_wait and not release.split.candidate.runtime.options.spin_wait
    lock, active, peak = threading.Lock(), [0], [0]
    for model in (release, release.split.candidate):
        real = model.runtime.predict

        def gated(inputs, real=real):  # type: ignore[no-untyped-def]
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.001)  # long enough for a second session to start beside it, were it allowed
            try:
                return real(inputs)
            finally:
                with lock:
                    active[0] -= 1

        model.runtime.predict = gated  # type: ignore[method-assign]
    barrier, answered = threading.Barrier(16), Counter()

    def client() -> None:
        c = app.test_client()
        barrier.wait()
        for _ in range(40):
            answered[infer(c)] += 1

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(answered) == {"1.0.0", "1.1.0"} and sum(answered.values()) == 640
    assert peak[0] == 1
