"""Upload -> event -> output, against the real emulators (moto, gcp-storage-emulator, Azurite)."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest

from function.errors import RETRY_AFTER_SECONDS
from function.events.marker import version_token
from loader.errors import StoreUnavailable
from tests.events.cloud import MODES, deliver, upload

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 1.0]]


@pytest.fixture
def setup(cloud_backend, events_client, recorder):
    """``(backend, client, output store)`` with inputs/ and outputs/ in the backend's bucket."""
    base = f"{cloud_backend.scheme}://{cloud_backend.bucket}"
    client = events_client(input_uri=f"{base}/inputs", output_uri=f"{base}/outputs")
    return cloud_backend, client, cloud_backend.open("outputs")


def expected(client, rows):
    return client.post("/v1/models/lin:predict", json={"instances": rows}).get_json()["predictions"]


def read_jsonl(store, key):
    return [json.loads(line) for line in store.read_bytes(key).decode().splitlines()]


def jsonl(*values) -> bytes:
    return "".join(json.dumps(v) + "\n" for v in values).encode()


def puts(recorder, suffix):
    return [c for c in recorder.CALLS if c[0] in ("put_file", "put_bytes") and c[1].endswith(suffix)]


def test_jsonl_input_produces_output_for_every_delivery_format(setup):
    backend, client, outputs = setup
    v2_line = {
        "id": "r1",
        "inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": ROWS[0]}],
        "parameters": {"binary_data_output": True},  # a JSONL output has no room for raw bytes: still JSON
    }
    for mode in MODES[backend.scheme]:
        key = f"inputs/day 1/{mode}.jsonl"
        version = upload(backend, key, jsonl(ROWS[0], ROWS[1]) + b"\n" + jsonl(v2_line, ROWS[2]))
        r = deliver(client, backend, key, version, mode)
        assert r.status_code == 200, r.get_json()
        [result] = r.get_json()["results"]
        assert result["status"] == "processed" and result["records"] == 4
        assert result["output"] == f"{outputs.location.uri}/day 1/{mode}.jsonl"
        header, *records = read_jsonl(outputs, f"day 1/{mode}.jsonl")
        meta = header["_modelfn"]
        assert meta["source"] == f"{backend.scheme}://{backend.bucket}/{key}"
        assert (meta["source_version"], meta["model"], meta["model_version"]) == (version, "lin", "1.0.0")
        preds = expected(client, ROWS)
        assert records[0] == {"line": 1, "prediction": preds[0]}
        assert records[1] == {"line": 2, "prediction": preds[1]}
        assert records[2]["line"] == 4 and records[2]["id"] == "r1" and records[2]["outputs"][0]["name"] == "logits"
        assert len(records[2]["outputs"][0]["data"]) == 3
        assert records[3] == {"line": 5, "prediction": preds[2]}


def test_duplicate_delivery_writes_once_and_new_version_runs_again(setup, recorder):
    backend, client, outputs = setup
    key = "inputs/dup.jsonl"
    version = upload(backend, key, jsonl(ROWS[0]))
    assert deliver(client, backend, key, version).get_json()["results"][0]["status"] == "processed"
    first = outputs.read_bytes("dup.jsonl")
    again = deliver(client, backend, key, version)
    assert again.status_code == 200 and again.get_json()["results"][0]["status"] == "duplicate"
    assert outputs.read_bytes("dup.jsonl") == first  # byte-identical: the header's timestamp did not change
    assert len(puts(recorder, "/outputs/dup.jsonl")) == 1

    newer = upload(backend, key, jsonl(ROWS[1], ROWS[2]))
    assert newer != version
    assert deliver(client, backend, key, newer).get_json()["results"][0]["status"] == "processed"
    header, *records = read_jsonl(outputs, "dup.jsonl")
    assert header["_modelfn"]["source_version"] == newer and len(records) == 2
    assert len(puts(recorder, "/outputs/dup.jsonl")) == 2


@pytest.mark.parametrize(
    "content, words",
    [
        (b'[1, 2, 3, 4]\n{"not json\n', "line 2 is not valid JSON"),
        (jsonl([1.0, 2.0, 3.0]), "lines 1-1"),  # wrong shape for a [N, 4] input
        (b"\x93NUMPY garbage", "not valid JSON"),
    ],
    ids=["bad-json", "wrong-shape", "binary"],
)
def test_bad_input_writes_error_report_and_is_acknowledged(setup, recorder, content, words):
    backend, client, outputs = setup
    key = "inputs/bad/input.jsonl"
    version = upload(backend, key, content)
    r = deliver(client, backend, key, version)
    assert r.status_code == 200
    [result] = r.get_json()["results"]
    assert result["status"] == "error-report" and words in result["error"]
    report = json.loads(outputs.read_bytes("bad/input.error.json"))
    assert words in report["error"] and report["_modelfn"]["source_version"] == version
    assert not outputs.exists("bad/input.jsonl")  # no partial output
    assert deliver(client, backend, key, version).get_json()["results"][0]["status"] == "duplicate"


def test_npy_input_streams_in_bounded_batches(cloud_backend, events_client, recorder):
    base = f"{cloud_backend.scheme}://{cloud_backend.bucket}"
    client = events_client(input_uri=f"{base}/inputs", output_uri=f"{base}/outputs", events_batch_size=8)
    runtime = client.application.extensions["modelfn"].holder.model.runtime
    seen: list[int] = []
    real_predict = runtime.predict
    runtime.predict = lambda arrays: seen.append(len(next(iter(arrays.values())))) or real_predict(arrays)
    rows = np.random.default_rng(0).normal(size=(800, 4)).astype(np.float32)  # 100 batches
    buffer = io.BytesIO()
    np.save(buffer, rows)
    version = upload(cloud_backend, "inputs/big.npy", buffer.getvalue())
    r = deliver(client, cloud_backend, "inputs/big.npy", version)
    assert r.status_code == 200 and r.get_json()["results"][0]["records"] == 800
    assert max(seen) == 8 and len(seen) == 100
    header, *records = read_jsonl(cloud_backend.open("outputs"), "big.jsonl")
    assert header["_modelfn"]["format"] == "npy"
    assert [r["row"] for r in records] == list(range(800))
    assert [r["prediction"] for r in records[:5]] == expected(client, rows[:5].tolist())


def test_transient_storage_error_is_503_then_the_retry_succeeds(setup, recorder):
    backend, client, outputs = setup
    version = upload(backend, "inputs/flaky.jsonl", jsonl(ROWS[0]))
    recorder.FAULTS["iter_version"] = [StoreUnavailable("storage down")]
    r = deliver(client, backend, "inputs/flaky.jsonl", version)
    assert r.status_code == 503 and r.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert "flaky" not in r.get_data(as_text=True)  # no request data in error bodies
    assert not outputs.exists("flaky.jsonl")
    r = deliver(client, backend, "inputs/flaky.jsonl", version)  # the platform's retry: the claim was released
    assert r.status_code == 200 and r.get_json()["results"][0]["status"] == "processed"


def test_a_live_claim_answers_503_and_a_dead_one_is_taken_over(setup):
    backend, client, outputs = setup
    version = upload(backend, "inputs/busy.jsonl", jsonl(ROWS[0]))
    marker = f"_modelfn/markers/busy.jsonl/{version_token(version)}.json"
    outputs.put_bytes(marker, json.dumps({"state": "processing", "since": time.time()}).encode())
    r = deliver(client, backend, "inputs/busy.jsonl", version)
    assert r.status_code == 503 and "Retry-After" in r.headers
    outputs.put_bytes(marker, json.dumps({"state": "processing", "since": time.time() - 3600}).encode())
    assert deliver(client, backend, "inputs/busy.jsonl", version).get_json()["results"][0]["status"] == "processed"
