"""New model versions: an alias move (event or poll) swaps the served model with no failed request."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest

from function.app import create_app
from loader.keys import object_key
from loader.stores import open_store
from tests.conftest import wait_ready
from tests.events import payloads
from tests.models import linear_onnx, publish_model

X = {"instances": [[1.0, 2.0, 3.0, 4.0]]}


def wait_version(client, version: str, timeout: float = 30.0) -> None:
    """Poll /readyz until it reports ``version`` (bounds a hang; asserts nothing about time)."""
    deadline = time.monotonic() + timeout
    while client.get("/readyz").get_json().get("version") != version:
        assert time.monotonic() < deadline, f"never switched to {version}"
        time.sleep(0.02)


@pytest.fixture
def s3_models(s3_emulator, monkeypatch) -> str:
    """An empty model store on moto: s3://<bucket>/models."""
    for name, value in s3_emulator.env.items():
        monkeypatch.setenv(name, value)
    return f"s3://{s3_emulator.create_bucket(f'm-{uuid.uuid4().hex[:12]}')}/models"


class Hammer:
    """Threads sending predictions until stopped, recording every status and model version."""

    def __init__(self, app, threads: int = 4) -> None:
        self.statuses: list[int] = []
        self.versions: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(app,)) for _ in range(threads)]

    def _run(self, app) -> None:
        client = app.test_client()
        while not self._stop.is_set():
            r = client.post("/v1/models/lin:predict", json=X)
            self.statuses.append(r.status_code)
            self.versions.append((r.get_json() or {}).get("model_version"))

    def __enter__(self) -> Hammer:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def until(self, version: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.versions.count(version) < 20:
            assert time.monotonic() < deadline, f"no predictions from {version}"
            time.sleep(0.01)


def test_alias_move_event_hot_swaps_with_no_failed_request(s3_models, make_settings, onnx_file, tmp_path):
    publish_model(s3_models, onnx_file, version="1.0.0")
    app = create_app(make_settings(model_uri=f"{s3_models}/lin@latest", events_auth="platform"))
    client = app.test_client()
    wait_ready(client)
    before = client.post("/v1/models/lin:predict", json=X).get_json()["predictions"]
    with Hammer(app) as hammer:
        hammer.until("1.0.0")
        publish_model(s3_models, linear_onnx(tmp_path / "v2.onnx", bias=np.array([5.0, 5.0, 5.0])), version="2.0.0")
        headers, body = payloads.s3(s3_models.split("/")[2], "models/lin/aliases/latest.json", "0A1B")
        r = client.post("/events", data=body, headers=headers)
        assert r.status_code == 202 and r.get_json()["results"][0]["status"] == "model-check"
        wait_version(client, "2.0.0")
        hammer.until("2.0.0")
    assert set(hammer.statuses) == {200}, "a request failed during the swap"
    assert set(hammer.versions) == {"1.0.0", "2.0.0"}
    assert client.post("/v1/models/lin:predict", json=X).get_json()["predictions"] != before


def test_a_broken_new_version_keeps_the_old_one_serving(s3_models, make_settings, onnx_file, tmp_path):
    publish_model(s3_models, onnx_file, version="1.0.0")
    app = create_app(make_settings(model_uri=f"{s3_models}/lin@latest", events_auth="platform"))
    client = app.test_client()
    wait_ready(client)
    v2 = publish_model(s3_models, linear_onnx(tmp_path / "v2.onnx", bias=np.array([5.0, 5.0, 5.0])), version="2.0.0")
    open_store(s3_models).put_bytes(object_key(v2, v2.files[0]), b"corrupted after publishing")
    updater = app.extensions["modelfn.events"].updater
    with Hammer(app) as hammer:
        assert updater.check() == "failed"
        hammer.until("1.0.0")
    assert set(hammer.statuses) == {200}
    assert client.get("/readyz").status_code == 200
    assert client.get("/readyz").get_json()["version"] == "1.0.0"


def test_model_events_for_other_files_or_pinned_versions_do_nothing(s3_models, make_settings, onnx_file):
    publish_model(s3_models, onnx_file, version="1.0.0")
    app = create_app(make_settings(model_uri=f"{s3_models}/lin@1.0.0", events_auth="platform"))
    client = app.test_client()
    wait_ready(client)
    headers, body = payloads.s3(s3_models.split("/")[2], "models/lin/1.0.0/model.onnx", "01")
    r = client.post("/events", data=body, headers=headers)
    assert r.status_code == 200 and r.get_json()["results"][0]["status"] == "ignored"
    assert app.extensions["modelfn.events"].updater.check() == "pinned"


def test_polling_picks_up_an_alias_move(make_settings, published, store_dir, tmp_path):
    app = create_app(make_settings(model_uri=f"{published}/lin@latest", model_poll_seconds=0.05))
    try:
        client = app.test_client()
        wait_ready(client)
        other = linear_onnx(tmp_path / "v2.onnx", bias=np.array([5.0, 5.0, 5.0]))
        publish_model(store_dir.as_uri(), other, version="2.0.0")  # no event: only the poll can see it
        wait_version(client, "2.0.0")
        assert client.post("/v1/models/lin:predict", json=X).get_json()["model_version"] == "2.0.0"
    finally:
        app.extensions["modelfn.events"].updater.stop()


def test_a_swap_prunes_the_old_version_from_the_cache(make_settings, published, store_dir, tmp_path):
    settings = make_settings(model_uri=f"{published}/lin@latest", model_poll_seconds=0.05, cache_keep_artifacts=1)
    app = create_app(settings)
    try:
        client = app.test_client()
        wait_ready(client)
        (old_view,) = (settings.cache_dir / "artifacts").iterdir()
        other = linear_onnx(tmp_path / "v2.onnx", bias=np.array([5.0, 5.0, 5.0]))
        publish_model(store_dir.as_uri(), other, version="2.0.0")
        wait_version(client, "2.0.0")
        assert client.post("/v1/models/lin:predict", json=X).status_code == 200
        assert not old_view.exists() and len(list((settings.cache_dir / "artifacts").iterdir())) == 1
        metrics = client.get("/metrics").get_data(as_text=True)
        assert "modelfn_cache_pruned_bytes_total" in metrics and "modelfn_cache_pruned_bytes_total 0.0" not in metrics
    finally:
        app.extensions["modelfn.events"].updater.stop()
