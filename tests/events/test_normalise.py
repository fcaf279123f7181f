"""Every documented payload normalises into the same ObjectCreated (no HTTP, no storage)."""

from __future__ import annotations

import json

import pytest

from function.errors import MalformedEvent
from function.events.model import Ignored, ObjectCreated, Validation
from function.events.parse import parse_events
from tests.events import payloads


def parse(request: tuple[dict[str, str], bytes]) -> list:
    headers, body = request
    mimetype = headers.get("content-type", headers.get("Content-Type", "")).split(";")[0].strip()
    return parse_events(headers, body, mimetype)


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_gcs_cloudevent(mode):
    [event] = parse(payloads.gcs("b", "inputs/x y.jsonl", "1588778055917163", mode=mode))
    assert event == ObjectCreated(
        "gs", "b", "inputs/x y.jsonl", "1588778055917163", 0, "COu8mb3Dn+kCEAE=", "gcs-eventarc"
    )
    assert event.uri == "gs://b/inputs/x y.jsonl"


def test_the_documented_samples_as_published():
    assert payloads.fixture("gcs_object_finalized.json")["data"]["generation"] == 96883251
    s3 = payloads.fixture("s3_object_created.json")
    [event] = parse_events({}, json.dumps(s3).encode(), "application/json")
    assert event == ObjectCreated(
        "s3",
        "amzn-s3-demo-bucket1",
        "example-key",
        "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        5,
        "b1946ac92492d2347c6235b4d2611184",
        "s3-eventbridge",
    )
    grid = payloads.fixture("eventgrid_blob_created.json")["events"]
    [event] = parse_events({}, json.dumps(grid).encode(), "application/json")
    assert event == ObjectCreated(
        "az", "test-container", "new-file.txt", '"0x8D4BCC2E4835CD0"', 524288, '"0x8D4BCC2E4835CD0"', "azure-eventgrid"
    )


def test_s3_key_is_url_decoded_and_sequencer_versions_unversioned_buckets():
    [event] = parse(payloads.s3("b", "inputs/a b+c%.jsonl", "00AB12"))
    assert (event.key, event.version) == ("inputs/a b+c%.jsonl", "00AB12")
    [event] = parse(payloads.s3("b", "inputs/k.jsonl", "00AB12", version_id="v-1"))
    assert event.version == "v-1"


def test_azure_both_schemas_agree():
    [grid] = parse(payloads.eventgrid("c", "inputs/d/e.npy", '"0x1"'))
    [ce] = parse(payloads.azure_cloudevent("c", "inputs/d/e.npy", '"0x1"'))
    assert (grid.bucket, grid.key, grid.version) == (ce.bucket, ce.key, ce.version) == ("c", "inputs/d/e.npy", '"0x1"')
    assert grid.origin == "azure-eventgrid" and ce.origin == "azure-cloudevents"


def test_cloudevents_batch_mode():
    _, one = payloads.azure_cloudevent("c", "inputs/a.jsonl", '"0x1"')
    _, two = payloads.azure_cloudevent("c", "inputs/b.jsonl", '"0x2"')
    body = b"[" + one + b"," + two + b"]"
    events = parse_events({}, body, "application/cloudevents-batch+json")
    assert [e.key for e in events] == ["inputs/a.jsonl", "inputs/b.jsonl"]


def test_validation_and_unsupported_types():
    [event] = parse(payloads.validation())
    assert event == Validation("512d38b6-c7b8-40c8-89fe-f46f9e9622b6")
    for request in (
        payloads.gcs("b", "k", "1", kind="google.cloud.storage.object.v1.deleted"),
        payloads.s3("b", "k", "1", detail_type="Object Deleted"),
        payloads.eventgrid("c", "k", '"0x1"', event_type="Microsoft.Storage.BlobDeleted"),
    ):
        [event] = parse(request)
        assert isinstance(event, Ignored)


@pytest.mark.parametrize(
    "body, mimetype",
    [
        (b"not json", "application/json"),
        (b'{"hello": 1}', "application/json"),
        (b"[]", "application/json"),
        (
            b'[{"eventType": "Microsoft.Storage.BlobCreated", "subject": "/x", "data": {"eTag": "1"}}]',
            "application/json",
        ),
        (b'{"specversion": "1.0", "type": "t"}', "application/cloudevents+json"),
        (
            b'{"detail-type": "Object Created", "source": "aws.s3", "detail": {"bucket": {"name": "b"}}}',
            "application/json",
        ),
    ],
)
def test_malformed(body, mimetype):
    with pytest.raises(MalformedEvent):
        parse_events({}, body, mimetype)


def test_gcs_data_without_generation_is_malformed():
    headers, body = payloads.gcs("b", "k", "1")
    data = json.loads(body)
    del data["generation"]
    with pytest.raises(MalformedEvent):
        parse_events(headers, json.dumps(data).encode(), "application/json")
