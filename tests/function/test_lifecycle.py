"""Model lifecycle through HTTP: lazy/eager loading, exactly-once under a burst, failures and recovery."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from function.app import create_app
from function.holder import LoadedModel, ModelHolder, ModelNotReady, Phase, State
from tests.conftest import wait_ready
from tests.models import linear_onnx, publish_model, stored_file

X = {"instances": [[1.0, 2.0, 3.0, 4.0]]}


def metric(client, name: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name} not exported"
    return float(match.group(1))


def test_burst_of_first_requests_loads_once(make_settings, published):
    app = create_app(make_settings(model_uri=f"{published}/lin", load_mode="lazy", load_wait_seconds=30))
    client = app.test_client()
    assert app.extensions["modelfn"].holder.status().state is State.IDLE  # lazy: nothing started yet
    barrier = threading.Barrier(32)

    def first_request(_: int) -> int:
        barrier.wait()
        return app.test_client().post("/v1/models/lin:predict", json=X).status_code

    with ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(first_request, range(32)))
    assert statuses == [200] * 32
    assert metric(client, "modelfn_artifact_downloads_total") == 1
    assert metric(client, "modelfn_fetch_files_total") == 1
    assert metric(client, "modelfn_model_load_seconds_count") == 1


def test_restart_reuses_the_cache(make_settings, published):
    settings = make_settings(model_uri=f"{published}/lin")
    first = create_app(settings).test_client()
    wait_ready(first)
    second = create_app(settings).test_client()  # a second worker or a restart: same cache dir
    wait_ready(second)
    assert metric(first, "modelfn_artifact_downloads_total") == 1
    assert metric(second, "modelfn_artifact_downloads_total") == 0
    assert second.post("/v1/models/lin:predict", json=X).status_code == 200


def _failed(client) -> dict:
    for _ in range(500):
        r = client.get("/readyz")
        if r.status_code == 503 and r.get_json()["phase"] == "failed":
            assert "Retry-After" in r.headers
            return r.get_json()
        threading.Event().wait(0.01)
    raise AssertionError("load never failed")


def test_digest_mismatch_reports_and_recovers_without_restart(make_settings, published, store_dir):
    model_file = stored_file(store_dir)
    good = model_file.read_bytes()
    model_file.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))  # same size, different bytes
    client = create_app(make_settings(model_uri=f"{published}/lin@1.0.0")).test_client()
    body = _failed(client)
    assert body["state"] == "FAILED" and "sha256" in body["error"]
    assert client.get("/healthz").status_code == 200  # the process stays up
    r = client.post("/v1/models/lin:predict", json=X)
    assert r.status_code == 503 and "Retry-After" in r.headers
    assert re.search(r"[0-9a-f]{64}", r.get_data(as_text=True)) is None  # digests stay in the log
    assert r.get_json()["error"] == body["error"]  # one public reason for probes and requests
    model_file.write_bytes(good)  # the operator fixes the artifact
    wait_ready(client)
    assert client.post("/v1/models/lin:predict", json=X).status_code == 200


@pytest.mark.parametrize(
    ("ref", "words"), [("9.9.9", "no such version or alias"), ("nope", "no such version or alias")]
)
def test_missing_version_or_alias(make_settings, published, ref, words):
    client = create_app(make_settings(model_uri=f"{published}/lin@{ref}")).test_client()
    assert words in _failed(client)["error"]


def test_missing_manifest_behind_alias(make_settings, published, store_dir):
    (store_dir / "lin" / "1.0.0" / "manifest.json").unlink()
    client = create_app(make_settings(model_uri=f"{published}/lin@latest")).test_client()
    assert "has no manifest" in _failed(client)["error"]


def test_publishing_later_recovers_a_cold_start(make_settings, store_dir, onnx_file):
    client = create_app(make_settings(model_uri=f"{store_dir.as_uri()}/lin@prod")).test_client()
    _failed(client)
    publish_model(store_dir.as_uri(), onnx_file, aliases=("prod",))
    wait_ready(client)


def test_requests_wait_bounded_then_503_with_retry_after(tmp_path: Path):
    release = threading.Event()
    phases: list[Phase] = []

    def slow_load(set_phase) -> LoadedModel:
        set_phase(Phase.FETCHING)
        phases.append(Phase.FETCHING)
        release.wait(10)
        raise RuntimeError("boom")

    holder = ModelHolder(slow_load, retry_seconds=60, on_ready=lambda m: None)
    with pytest.raises(ModelNotReady) as waited:
        holder.get(timeout=0.05)
    assert waited.value.status.state is State.LOADING and waited.value.status.phase is Phase.FETCHING
    release.set()
    with pytest.raises(ModelNotReady) as failed:
        holder.get(timeout=5)
    assert failed.value.status.state is State.FAILED and "boom" in str(failed.value)
    assert 0 < failed.value.status.retry_in <= 60
    assert phases == [Phase.FETCHING]  # one attempt, no busy retry


@pytest.mark.parametrize("probe", ["/readyz", "/v2/health/ready", "/v2/models/lin/ready"])
def test_lazy_mode_probe_starts_loading(make_settings, published, probe):
    # With several workers, any probe may be a worker's first request: each must start that worker's load.
    client = create_app(make_settings(model_uri=f"{published}/lin", load_mode="lazy")).test_client()
    first = client.get(probe)
    assert first.status_code == 503 and first.get_json()["state"] != "IDLE"
    deadline = time.monotonic() + 20  # bounds a hang only
    while client.get(probe).status_code != 200:
        assert time.monotonic() < deadline, client.get(probe).get_json()
        time.sleep(0.02)


def test_second_version_is_a_different_artifact(make_settings, store_dir, onnx_file, tmp_path):
    import numpy as np

    uri = store_dir.as_uri()
    publish_model(uri, onnx_file, version="1.0.0")
    other = linear_onnx(tmp_path / "v2.onnx", bias=np.array([5.0, 5.0, 5.0]))
    publish_model(uri, other, version="2.0.0")
    client = create_app(make_settings(model_uri=f"{uri}/lin")).test_client()
    wait_ready(client)
    assert client.get("/readyz").get_json()["version"] == "2.0.0"  # latest moved
