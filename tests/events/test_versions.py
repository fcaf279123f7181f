"""Batch jobs read exactly the object version their event names, retry server faults, and leave no temp files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from function.app import create_app
from function.events.marker import version_token
from function.events.spool import SPOOL_DIR
from loader.errors import ModelExecutionError
from tests.events.cloud import deliver, event_for, upload
from tests.events.test_end_to_end import ROWS, jsonl, read_jsonl


@pytest.fixture
def setup(cloud_backend, events_client, recorder):
    """``(backend, client, output store)`` with inputs/ and outputs/ in the backend's bucket."""
    base = f"{cloud_backend.scheme}://{cloud_backend.bucket}"
    client = events_client(input_uri=f"{base}/inputs", output_uri=f"{base}/outputs")
    return cloud_backend, client, cloud_backend.open("outputs")


def test_the_first_uploads_event_after_an_overwrite_reads_nothing_newer(setup):
    backend, client, outputs = setup
    key = "inputs/over.jsonl"
    first = upload(backend, key, jsonl(ROWS[0]))
    second = upload(backend, key, jsonl(ROWS[1], ROWS[2]))  # overwritten before the first event arrives
    r = deliver(client, backend, key, first)
    assert r.status_code == 200, r.get_json()
    [result] = r.get_json()["results"]
    assert result["status"] == "superseded" and "overwritten or deleted" in result["reason"]
    assert not outputs.exists("over.jsonl")  # the old version's label is never put on the new records
    marker = json.loads(outputs.read_bytes(f"_modelfn/markers/over.jsonl/{version_token(first)}.json"))
    assert marker["state"] == "superseded" and marker["source_version"] == first
    assert deliver(client, backend, key, first).get_json()["results"][0]["status"] == "duplicate"

    r = deliver(client, backend, key, second)  # the newer version's own event
    assert r.get_json()["results"][0]["status"] == "processed"
    header, *records = read_jsonl(outputs, "over.jsonl")
    assert header["_modelfn"]["source_version"] == second and len(records) == 2


def test_a_model_fault_is_retried_not_reported_as_bad_input(setup):
    backend, client, outputs = setup
    runtime = client.application.extensions["modelfn"].holder.model.runtime
    real_predict, calls = runtime.predict, []

    def failing_once(arrays):
        calls.append(1)
        if len(calls) == 1:
            raise ModelExecutionError("model execution failed: out of memory")
        return real_predict(arrays)

    runtime.predict = failing_once
    version = upload(backend, "inputs/oom.jsonl", jsonl(ROWS[0]))
    r = deliver(client, backend, "inputs/oom.jsonl", version)
    assert r.status_code >= 500  # every platform retries a 5xx
    assert "oom" not in r.get_data(as_text=True)
    assert not outputs.exists("oom.error.json")  # not blamed on the input
    r = deliver(client, backend, "inputs/oom.jsonl", version)  # the platform's retry: the claim was released
    assert r.status_code == 200 and r.get_json()["results"][0]["status"] == "processed"


CHILD = """
import json, sys, time
from function.app import create_app
app = create_app()
client = app.test_client()
while client.get("/readyz").status_code != 200:
    time.sleep(0.05)
runtime = app.extensions["modelfn"].holder.model.runtime
real, seen = runtime.predict, []
def stall(arrays):
    seen.append(1)
    if len(seen) == 3:  # two batches are already in the temp file
        open(sys.argv[1], "w").write("mid-job")
        time.sleep(600)
    return real(arrays)
runtime.predict = stall
request = json.loads(open(sys.argv[2]).read())
client.post("/events", data=request["body"].encode(), headers=request["headers"])
"""


@pytest.mark.parametrize("cloud_backend", ["s3"], indirect=True)
def test_a_worker_killed_mid_job_leaves_no_temp_file(cloud_backend, published, tmp_path, monkeypatch):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    base = f"s3://{cloud_backend.bucket}"
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "TMPDIR": str(tmpdir),
        "MODEL_URI": f"{published}/lin",
        "CACHE_DIR": str(tmp_path / "cache"),
        "EVENTS_INPUT_URI": f"{base}/inputs",
        "EVENTS_OUTPUT_URI": f"{base}/outputs",
        "EVENTS_AUTH": "platform",
        "EVENTS_BATCH_SIZE": "1",
    }
    version = upload(cloud_backend, "inputs/kill.jsonl", jsonl(*ROWS, *ROWS))
    headers, body = event_for(cloud_backend, "inputs/kill.jsonl", version)
    request = tmp_path / "event.json"
    request.write_text(json.dumps({"headers": headers, "body": body.decode()}))
    flag = tmp_path / "mid-job"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(flag), str(request)], env=env)
    try:
        for _ in range(3000):  # bounds a hang only; no timing is asserted
            if flag.exists() or child.poll() is not None:
                break
            time.sleep(0.02)
        assert flag.exists(), "the job never reached its third batch"
        left = list(tmpdir.rglob("*.jsonl"))
        assert len(left) == 1  # the half-written output
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert left[0].exists()  # SIGKILL runs no cleanup: an orphan, in memory on Cloud Run

    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))  # the next worker on the same /tmp
    for name in ("EVENTS_INPUT_URI", "EVENTS_OUTPUT_URI", "EVENTS_AUTH", "MODEL_URI", "CACHE_DIR"):
        value = env[name]
        monkeypatch.setenv(name, value)
    create_app()
    assert list(tmpdir.rglob("*.jsonl")) == []
    assert [p.name for p in (tmpdir / SPOOL_DIR).iterdir()] == []
