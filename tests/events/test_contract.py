"""The HTTP contract of /events: handshakes, auth, refusals and ignores, without touching storage."""

from __future__ import annotations

import json

import pytest

from function.events.scope import SECRET_HEADER
from tests.events import payloads

SECRET = "s3cr3t-s3cr3t-s3cr3t"


def post(client, request, **headers):
    base, body = request
    return client.post("/events", data=body, headers={**base, **headers})


def log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_event_grid_subscription_validation(events_client, recorder):
    client = events_client(events_secret=SECRET)  # the handshake is answered even without the secret
    r = post(client, payloads.validation())
    assert r.status_code == 200
    assert r.get_json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    assert recorder.CALLS == []


def test_cloudevents_abuse_protection_handshake(events_client):
    client = events_client()
    r = client.options("/events", headers={"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert r.status_code == 200
    assert r.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert "POST" in r.headers["Allow"]
    r = client.options("/events", headers={"WebHook-Request-Origin": "evil.example.com"})
    assert r.status_code == 403 and "evil" not in r.get_data(as_text=True)
    assert "WebHook-Allowed-Origin" not in r.headers


@pytest.mark.parametrize("presented", [None, "wrong", SECRET[:-1]])
def test_secret_required(events_client, recorder, presented):
    client = events_client(events_secret=SECRET)
    headers = {SECRET_HEADER: presented} if presented is not None else {}
    r = post(client, payloads.s3("in-bucket", "inputs/a.jsonl", "1"), **headers)
    assert r.status_code == 401
    assert r.get_json() == {"error": f"missing or wrong {SECRET_HEADER} header"}
    assert recorder.CALLS == []


def test_wrong_secret_is_refused_before_parsing(events_client):
    client = events_client(events_secret=SECRET)
    r = client.post("/events", data=b"garbage", headers={SECRET_HEADER: "nope"})
    assert r.status_code == 401
    assert client.post("/events", data=b"garbage").status_code == 401  # no secret: no format hints either


def test_right_secret_passes(events_client, recorder):
    client = events_client(events_secret=SECRET)
    r = post(
        client, payloads.s3("in-bucket", "inputs/a.jsonl", "1", detail_type="Object Deleted"), **{SECRET_HEADER: SECRET}
    )
    assert r.status_code == 200 and r.get_json()["results"][0]["status"] == "ignored"


def test_malformed_event_is_400_without_echo(events_client):
    client = events_client()
    r = client.post("/events", data=b'{"leak-me-please": 1}', content_type="application/json")
    assert r.status_code == 400
    assert "leak-me-please" not in r.get_data(as_text=True)


@pytest.mark.parametrize(
    "request_",
    [
        payloads.gcs("in-bucket", "inputs/a.jsonl", "1", kind="google.cloud.storage.object.v1.deleted"),
        payloads.s3("in-bucket", "inputs/a.jsonl", "1", detail_type="Object Deleted"),
        payloads.eventgrid("in-bucket", "inputs/a.jsonl", '"0x1"', event_type="Microsoft.Storage.BlobDeleted"),
    ],
    ids=["gcs-deleted", "s3-deleted", "blob-deleted"],
)
def test_unsupported_types_are_acknowledged_and_logged(events_client, recorder, capsys, request_):
    client = events_client()
    capsys.readouterr()
    r = post(client, request_)
    assert r.status_code == 200
    assert r.get_json()["results"] == [{"status": "ignored", "reason": "unsupported event type"}]
    assert any(line["message"] == "event ignored" for line in log_lines(capsys))
    assert recorder.CALLS == []


@pytest.mark.parametrize(
    "request_",
    [
        payloads.s3("someone-elses-bucket", "inputs/a.jsonl", "1"),
        payloads.gcs("someone-elses-bucket", "inputs/a.jsonl", "1"),
        payloads.eventgrid("in-bucket", "inputs/a.jsonl", '"0x1"'),  # right name, wrong cloud (az:// vs s3://)
    ],
    ids=["s3", "gs", "az"],
)
def test_foreign_bucket_refused_without_any_storage_call(events_client, recorder, capsys, request_):
    client = events_client()
    capsys.readouterr()
    r = post(client, request_)
    assert r.status_code == 403
    assert r.get_json() == {"error": "event names a bucket or container this function is not configured for"}
    assert recorder.CALLS == []  # not even a store was opened
    refused = [line for line in log_lines(capsys) if line["message"].startswith("event refused")]
    assert refused and refused[0]["object"].endswith("/inputs/a.jsonl")


@pytest.mark.parametrize(
    "key",
    [
        "inputs/../secrets/a.jsonl",
        "/etc/passwd",
        "inputs/a\x07b.jsonl",
        "inputs//a.jsonl",
        "inputs/./a.jsonl",
        "inputs\\..\\a.jsonl",
    ],
)
def test_unsafe_keys_refused(events_client, recorder, key):
    client = events_client()
    r = post(client, payloads.s3("in-bucket", key, "1"))
    assert r.status_code == 403
    assert "secrets" not in r.get_data(as_text=True) and "passwd" not in r.get_data(as_text=True)
    assert recorder.CALLS == []


def test_batch_with_one_bad_event_is_refused_whole(events_client, recorder):
    _, good = payloads.eventgrid("in-bucket", "inputs/a.jsonl", '"0x1"')
    _, bad = payloads.eventgrid("other", "inputs/a.jsonl", '"0x1"')
    body = json.dumps(json.loads(good) + json.loads(bad)).encode()
    client = events_client(input_uri="az://in-bucket/inputs", output_uri="az://in-bucket/outputs")
    assert client.post("/events", data=body, content_type="application/json").status_code == 403
    assert recorder.CALLS == []


@pytest.mark.parametrize(
    "key, reason",
    [
        ("outputs/a.jsonl", "an output of this function"),
        ("elsewhere/a.jsonl", "outside the configured prefixes"),
    ],
)
def test_configured_bucket_outside_prefixes_is_ignored_not_fetched(events_client, recorder, key, reason):
    # Eventarc cannot filter by prefix, so our own outputs come back as events: acknowledge, never fetch.
    client = events_client(input_uri="gs://in-bucket/inputs", output_uri="gs://in-bucket/outputs")
    r = post(client, payloads.gcs("in-bucket", key, "1"))
    assert r.status_code == 200 and r.get_json()["results"][0]["reason"] == reason
    assert recorder.CALLS == []


def test_events_without_configuration_are_refused(events_client, recorder):
    client = events_client(input_uri=None, output_uri=None)
    assert post(client, payloads.s3("in-bucket", "inputs/a.jsonl", "1")).status_code == 403
    assert recorder.CALLS == []


def test_folder_placeholders_are_ignored(events_client, recorder):
    client = events_client(input_uri="gs://in-bucket/inputs", output_uri="gs://in-bucket/outputs")
    r = post(client, payloads.gcs("in-bucket", "inputs/folder/", "1"))
    assert r.status_code == 200 and r.get_json()["results"][0]["status"] == "ignored"
    assert recorder.CALLS == []


@pytest.mark.parametrize(
    "inputs, outputs",
    [
        ("s3://b/inputs", "s3://b/inputs/outputs"),  # outputs would trigger jobs
        ("s3://b", "s3://b/outputs"),
        ("s3://b/inputs", None),
        ("s3://b/../x", "s3://b/out"),
    ],
)
def test_event_settings_are_validated_at_startup(make_settings, inputs, outputs):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        make_settings(events_input_uri=inputs, events_output_uri=outputs)
    with pytest.raises(ValidationError):
        make_settings(events_secret="short")
