"""The error table is the one source of statuses; server faults are 5xx with bodies that reveal nothing."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import function.errors as fe
import loader.errors as le
from function.app import create_app
from tests.conftest import wait_ready

FEATURES = {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}


def _error_classes() -> list[type[Exception]]:
    found = []
    for module in (fe, le):
        found += [
            c
            for _, c in inspect.getmembers(module, inspect.isclass)
            if issubclass(c, Exception) and c.__module__ == module.__name__
        ]
    return found


def test_no_row_of_the_table_is_shadowed_by_an_earlier_one():
    rows = fe.STATUS_BY_ERROR
    for i, row in enumerate(rows):
        earlier = [r[0].__name__ for r in rows[:i] if issubclass(row[0], r[0])]
        assert not earlier, f"row {row[0].__name__} never runs: {earlier} match first"


def test_statuses_come_from_the_table_not_from_class_attributes():
    with_status = [c.__name__ for c in _error_classes() if "status" in vars(c)]
    assert with_status == [], f"a class attribute would bypass the table: {with_status}"

    class Teapot(fe.EventRefused):
        status = 418  # ignored: the table's EventRefused row decides

    assert fe.status_for(Teapot("x")) == 403
    assert fe.status_for(fe.ModelNotFound("x")) == 404
    assert fe.status_for(fe.UnsupportedMediaType("x")) == 415
    assert fe.status_for(fe.EventInProgress("x")) == 503
    assert fe.status_for(le.ModelExecutionError("x")) == 500
    assert fe.status_for(le.UnsupportedDatatype("x")) == 500
    assert fe.status_for(KeyError("x")) == 500


def test_every_error_class_maps_to_a_row_and_server_faults_have_fixed_messages():
    for cls in _error_classes():
        row = fe.row_for(cls.__new__(cls))
        assert row.status >= 500 or row.public is None, cls
        if row.status >= 500:
            assert row.public and "{" not in row.public


def test_an_output_dtype_the_protocol_cannot_name_is_a_server_fault(client):
    runtime = client.application.extensions["modelfn"].holder.model.runtime
    runtime.predict = lambda arrays: {"logits": np.array([[1 + 2j, 0, 1]], dtype=np.complex64)}
    r = client.post("/v2/models/lin/infer", json={"inputs": [FEATURES]})
    assert r.status_code == 500, r.get_json()
    assert "complex" not in r.get_json()["error"]  # the detail is in the log


@pytest.fixture
def faulty(app):
    """The app with a route that raises whatever error the test asks for (through the real handlers)."""
    box: dict[str, Exception] = {}

    def raise_it():
        raise box["error"]

    app.add_url_rule("/_faulty", "faulty", raise_it)
    return app.test_client(), box


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (le.StoreUnavailable("S3 unreachable for s3://secret-bucket/models/iris/1.0.0/model.onnx"), 503),
        (le.DigestMismatch("model.onnx: expected sha256 20f12f8138 got 260730c522 from s3://secret-bucket"), 502),
        (le.ManifestInvalid("s3://secret-bucket/iris/manifest.json: files.0.sha256: bad"), 502),
        (le.ModelExecutionError("model execution failed: /opt/secret-bucket/op.cc:12 OOM"), 500),
        (fe.EventInProgress("marker s3://secret-bucket/_modelfn/markers/x is held"), 503),
    ],
    ids=["unavailable", "digest", "manifest", "execution", "in-progress"],
)
def test_5xx_bodies_carry_a_public_reason_and_the_log_the_detail(faulty, capsys, error, status):
    client, box = faulty
    box["error"] = error
    r = client.get("/_faulty")
    assert r.status_code == status and set(r.get_json()) == {"error"}
    assert "secret-bucket" not in r.get_data(as_text=True) and "sha256" not in r.get_data(as_text=True)
    assert "secret-bucket" in capsys.readouterr().out  # operators read the detail in the log
    if status == 503:
        assert r.headers["Retry-After"] == str(fe.RETRY_AFTER_SECONDS)


def test_a_failed_load_503_hides_the_store_uri(make_settings, store_dir, capsys):
    client = create_app(make_settings(model_uri=f"{store_dir.as_uri()}/missing@prod")).test_client()
    for _ in range(500):
        r = client.post("/v1/models/missing:predict", json={"instances": [[1.0, 2.0, 3.0, 4.0]]})
        if r.status_code == 503 and r.get_json().get("phase") == "failed":
            break
        capsys.readouterr()
        import time

        time.sleep(0.01)
    assert r.status_code == 503 and r.get_json()["state"] == "FAILED"
    assert str(store_dir) not in r.get_data(as_text=True)
    assert "log" in r.get_json()["error"]


def test_4xx_messages_still_say_what_was_wrong(client):
    r = client.post("/v2/models/lin/infer", json={"inputs": [{**FEATURES, "shape": [1, 3]}]})
    assert r.status_code == 400 and "features" in r.get_json()["error"]
    wait_ready(client)
