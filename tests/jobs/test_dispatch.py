"""Oversize inputs start one batch job through POST /events, even when delivered 3 times at once."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

import loader.stores
from function.app import create_app
from function.events.dispatch import task_count
from loader.errors import ObjectChanged
from loader.stores.file import FileStore
from loader.uri import StoreLocation
from tests.conftest import wait_ready
from tests.events import payloads
from tests.jobs.standin import StandIn

JOB = "projects/p1/locations/europe-west1/jobs/modelfn-batch"
ROOT: list[Path] = []


class PinnedFileStore(FileStore):
    """S3's pinned read, on disk: the ETag of a single-part upload is the MD5 of its bytes."""

    def iter_version(self, key: str, version: str, chunk_size: int = 1 << 20):
        data = self.read_bytes(key)
        if hashlib.md5(data).hexdigest() != version.strip('"'):
            raise ObjectChanged(f"{key} no longer has ETag {version}")
        yield data


def s3_on_disk(location: StoreLocation, options):
    """``s3://bucket/prefix`` kept in a local directory (FileStore's link(2) makes conditional creates atomic)."""
    store = PinnedFileStore(StoreLocation("file", "", str(ROOT[0] / location.bucket / location.prefix)), options)
    store.location = location
    return store


@pytest.fixture
def standin():
    server = StandIn()
    yield server
    server.close()


@pytest.fixture
def dispatching(tmp_path, monkeypatch, make_settings, published, standin):
    ROOT[:] = [tmp_path / "buckets"]
    monkeypatch.setitem(loader.stores._REGISTRY, "s3", "tests.jobs.test_dispatch:s3_on_disk")
    settings = make_settings(
        model_uri=f"{published}/lin",
        events_input_uri="s3://in-bucket/inputs",
        events_output_uri="s3://in-bucket/outputs",
        events_auth="platform",  # Cloud Run: IAM authenticates Eventarc, no shared secret
        batch_launcher="cloud-run",
        batch_job_name=JOB,
        batch_api_endpoint=standin.url,
        batch_inline_max_bytes=1000,
        batch_task_target_bytes=400,
        batch_max_tasks=5,
    )
    app = create_app(settings)
    wait_ready(app.test_client())
    return app


def event(key: str, version: str, size: int, etag: str | None = None):
    headers, body = payloads.s3("in-bucket", key, version, etag=etag)
    doc = json.loads(body)
    doc["detail"]["object"]["size"] = size
    return headers, json.dumps(doc).encode()


def post(app, request):
    headers, body = request
    response = app.test_client().post("/events", headers=headers, data=body)
    return response.status_code, response.get_json()


def test_three_concurrent_deliveries_start_exactly_one_job(dispatching, standin):
    for round_ in range(12):
        request = event(f"inputs/big-{round_}.jsonl", f"seq{round_:04d}", 2000)
        barrier = threading.Barrier(3)
        answers: list[tuple[int, dict]] = []

        def deliver(request=request, barrier=barrier, answers=answers):
            barrier.wait()
            answers.append(post(dispatching, request))

        threads = [threading.Thread(target=deliver) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(code for code, _ in answers)
        assert all(code in (200, 503) for code in statuses), answers
        for code, _ in answers:  # the platform redelivers the 503s (in progress): now duplicates
            if code == 503:
                assert post(dispatching, request)[1]["results"][0]["status"] == "duplicate"
        started = [b["results"][0] for c, b in answers if c == 200 and b["results"][0]["status"] == "dispatched"]
        assert len(started) == 1, answers
        assert started[0]["tasks"] == 5  # 2000 bytes / 400 per task, bounded by BATCH_MAX_TASKS=5
        assert started[0]["output"] == f"s3://in-bucket/outputs/big-{round_}"
    assert len(standin.requests) == 12  # one jobs:run per object version, never more
    marker = ROOT[0] / "in-bucket/outputs/_modelfn/markers/big-0.jsonl/seq0000.json"
    record = json.loads(marker.read_text())
    assert record["state"] == "done" and record["mode"] == "dispatched" and record["execution"].startswith(JOB)
    bodies = [r.body["overrides"] for r in standin.requests]
    assert {b["taskCount"] for b in bodies} == {5}
    assert bodies[3]["containerOverrides"][0]["args"] == [
        "--input",
        "s3://in-bucket/inputs/big-3.jsonl",
        "--output",
        "s3://in-bucket/outputs/big-3",
    ]


def test_a_small_input_still_runs_inline(dispatching, standin):
    data = b"[1, 2, 3, 4]\n" * 10
    target = ROOT[0] / "in-bucket/inputs/small.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    code, body = post(dispatching, event("inputs/small.jsonl", "seq1", len(data), hashlib.md5(data).hexdigest()))
    assert code == 200 and body["results"][0]["status"] == "processed" and body["results"][0]["records"] == 10
    assert standin.requests == []


def test_a_failed_launch_is_retried_by_redelivery_and_then_starts_once(dispatching, standin):
    standin.fail_next.append(503)
    request = event("inputs/big.jsonl", "seq9", 5000)
    code, body = post(dispatching, request)
    assert code == 503 and "Traceback" not in json.dumps(body)
    code, body = post(dispatching, request)  # the claim was released: the redelivery launches
    assert code == 200 and body["results"][0]["status"] == "dispatched"
    assert post(dispatching, request)[1]["results"][0]["status"] == "duplicate"
    assert len(standin.requests) == 2


@pytest.mark.parametrize(("size", "tasks"), [(1, 1), (400, 1), (401, 2), (4000, 10), (10**12, 10)])
def test_task_count(size, tasks):
    assert task_count(size, 400, 10) == tasks
