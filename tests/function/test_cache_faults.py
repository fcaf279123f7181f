"""Faults around the cache and the store, seen through the app: prune errors, store outages, public reasons."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from function.app import create_app
from function.metrics import create_metrics
from function.serving import prune_cache
from loader.cache import ArtifactCache
from tests.conftest import wait_ready
from tests.models import expected_logits, publish_model, stored_file

X = {"instances": [[1.0, 2.0, 3.0, 4.0]]}
V2 = {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}


def _metric(client, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", client.get("/metrics").text, re.M)
    return float(match.group(1)) if match else 0.0


def _failed(client) -> dict:
    for _ in range(1000):
        r = client.get("/readyz")
        if r.status_code == 503 and r.get_json()["phase"] == "failed":
            return r.get_json()
        threading.Event().wait(0.01)
    raise AssertionError(f"load never failed: {client.get('/readyz').get_json()}")


def test_a_foreign_view_in_the_cache_does_not_fail_a_good_load(make_settings, published, tmp_path):
    """E.g. a cache volume shared with another image version whose manifests this one cannot parse."""
    foreign = tmp_path / "cache" / "artifacts" / ("f" * 64)
    foreign.mkdir(parents=True)
    (foreign / "manifest.json").write_text('{"schema_version": 99}')
    (foreign / ".complete").touch()
    future = time.time() + 3600
    os.utime(foreign, (future, future))  # most recently used: prune keeps it and reads its manifest
    client = create_app(make_settings(model_uri=f"{published}/lin", cache_keep_artifacts=2)).test_client()
    wait_ready(client)
    assert client.post("/v1/models/lin:predict", json=X).status_code == 200
    assert foreign.exists()


def test_any_prune_error_is_logged_and_counted_never_raised(tmp_path):
    class BrokenCache(ArtifactCache):
        def prune(self, keep: int) -> int:
            raise RuntimeError("something nobody expected")

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("modelfn.model").addHandler(handler)
    try:
        metrics = create_metrics(CollectorRegistry())
        prune_cache(BrokenCache(tmp_path), 2, metrics)
    finally:
        logging.getLogger("modelfn.model").removeHandler(handler)
    assert metrics.cache_prune_failures._value.get() == 1
    assert [r.getMessage() for r in records] == ["cache prune failed"]


@pytest.mark.timeout(180)
def test_a_warm_cache_serves_while_the_cloud_store_is_down(make_settings, onnx_file, s3_emulator, monkeypatch):
    for name, value in s3_emulator.env.items():
        monkeypatch.setenv(name, value)
    bucket = s3_emulator.create_bucket(f"offline-{uuid.uuid4().hex[:12]}")
    store_uri = f"s3://{bucket}/models"
    publish_model(store_uri, onnx_file)
    settings = make_settings(model_uri=f"{store_uri}/lin@latest", fetch_retries=0)
    first = create_app(settings).test_client()
    wait_ready(first)
    assert first.get("/readyz").get_json()["source"] == "store"
    s3_emulator.stop()
    try:
        restarted = create_app(settings).test_client()  # a worker respawned during the outage
        wait_ready(restarted)
        body = restarted.get("/readyz").get_json()
        assert body["version"] == "1.0.0" and body["source"] == "cache" and "unreachable" in body["detail"]
        out = restarted.post("/v2/models/lin/infer", json=V2).get_json()["outputs"][0]["data"]
        np.testing.assert_allclose(out, expected_logits(np.array([[1, 2, 3, 4]])).ravel(), rtol=1e-5)
        assert _metric(restarted, "modelfn_offline_loads_total") == 1
        assert _metric(restarted, "modelfn_fetch_files_total") == 0
    finally:
        s3_emulator.restart()


def test_a_store_that_answers_not_found_gets_no_cache_fallback(make_settings, published, store_dir):
    settings = make_settings(model_uri=f"{published}/lin@latest")
    wait_ready(create_app(settings).test_client())
    (store_dir / "lin" / "aliases" / "latest.json").unlink()  # the alias was deleted on purpose
    body = _failed(create_app(settings).test_client())
    assert "no such version or alias" in body["error"]


def test_readyz_reasons_never_reveal_store_uris_paths_or_digests(make_settings, published, store_dir):
    model = stored_file(store_dir)
    good = model.read_bytes()
    model.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    client = create_app(make_settings(model_uri=f"{published}/lin@1.0.0")).test_client()
    body = _failed(client)
    text = str(body)
    assert "sha256" in body["error"] and body["reason"] == body["error"]
    assert str(store_dir) not in text and "file://" not in text
    assert not re.search(r"[0-9a-f]{64}", text)
    missing = create_app(make_settings(model_uri=f"{published}/lin@9.9.9")).test_client()
    text = str(_failed(missing))
    assert "no such version or alias" in text and str(store_dir) not in text and "file://" not in text
