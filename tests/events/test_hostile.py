"""Hostile /events callers: no credentials, malformed and oversized events. Always 4xx JSON, never a 500."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
from pydantic import ValidationError

from function.events.scope import SECRET_HEADER
from function.settings import Settings
from tests.events import payloads

SECRET = "s3cr3t-s3cr3t-s3cr3t"
AUTH = {SECRET_HEADER: SECRET}
CE = "application/cloudevents+json"


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def s3_doc(**obj: Any) -> dict[str, Any]:
    _, body = payloads.s3("in-bucket", "inputs/a.jsonl", "01")
    doc = json.loads(body)
    doc["detail"]["object"].update(obj)
    return doc


def gcs_structured(**data: Any) -> bytes:
    _, body = payloads.gcs("in-bucket", "inputs/a.jsonl", "1", mode="structured")
    doc = json.loads(body)
    doc["data"].update(data)
    return json.dumps(doc).encode()


def grid(**data: Any) -> list[dict[str, Any]]:
    _, body = payloads.eventgrid("in-bucket", "inputs/a.jsonl", '"0x8DE"')
    doc = json.loads(body)
    doc[0]["data"].update(data)
    return doc


def raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def swap(doc: Any, old: str, new: str) -> bytes:
    """Replace a JSON value textually, for numbers json.dumps cannot write (1e400) or should not (NaN)."""
    text = json.dumps(doc)
    assert old in text
    return text.replace(old, new, 1).encode()


# (id, body, content type): every one is a 400 with a JSON error, for an authenticated caller.
MALFORMED: list[tuple[str, bytes, str]] = [
    ("deep-array-1000", deep(1000), "application/json"),
    ("deep-array-100k", deep(100_000), "application/json"),
    ("deep-object", b'{"a":' * 5000 + b"1" + b"}" * 5000, "application/json"),
    ("deep-cloudevent", deep(3000), CE),
    ("deep-cloudevents-batch", deep(3000), "application/cloudevents-batch+json"),
    ("s3-size-1e400", swap(s3_doc(size=7), '"size": 7', '"size": 1e400'), "application/json"),
    ("s3-size-infinity", swap(s3_doc(size=7), '"size": 7', '"size": Infinity'), "application/json"),
    ("s3-size-nan", swap(s3_doc(size=7), '"size": 7', '"size": NaN'), "application/json"),
    ("s3-size-negative", raw(s3_doc(size=-1)), "application/json"),
    ("s3-size-huge-int", raw(s3_doc(size=10**30)), "application/json"),
    ("s3-size-5000-digits", swap(s3_doc(size=7), '"size": 7', '"size": ' + "9" * 5000), "application/json"),
    ("s3-size-bool", raw(s3_doc(size=True)), "application/json"),
    ("s3-size-object", raw(s3_doc(size={"a": 1})), "application/json"),
    ("s3-key-number", raw(s3_doc(key=12)), "application/json"),
    ("s3-key-list", raw(s3_doc(key=["a"])), "application/json"),
    ("s3-version-object", raw(s3_doc(sequencer={"x": 1})), "application/json"),
    ("s3-etag-too-long", raw(s3_doc(etag="e" * 5000)), "application/json"),
    ("s3-detail-list", raw({**s3_doc(), "detail": []}), "application/json"),
    ("grid-contentlength-1e400", swap(grid(contentLength=7), '"contentLength": 7', '"contentLength": 1e400'), ""),
    ("grid-contentlength-string", raw(grid(contentLength="lots")), "application/json"),
    ("grid-subject-number", raw([{**grid()[0], "subject": 5}]), "application/json"),
    ("grid-etag-object", raw(grid(eTag={"a": 1})), "application/json"),
    ("grid-data-string", raw([{**grid()[0], "data": "not an object"}]), "application/json"),
    ("grid-item-number", b"[1, 2, 3]", "application/json"),
    ("grid-empty-array", b"[]", "application/json"),
    ("grid-101-events", raw(grid() * 101), "application/json"),
    ("gcs-size-1e400", swap(json.loads(gcs_structured(size="7")), '"size": "7"', '"size": 1e400'), CE),
    ("gcs-generation-infinity", swap(json.loads(gcs_structured(generation="7")), '"7"', "-Infinity"), CE),
    ("gcs-generation-word", gcs_structured(generation="latest"), CE),
    ("gcs-bucket-number", gcs_structured(bucket=7), CE),
    ("gcs-data-array", swap(json.loads(gcs_structured()), '"data": {', '"data": [{').replace(b"}}", b"}]}"), CE),
    ("cloudevent-not-json", b"{not json", CE),
    ("cloudevent-specversion-9", raw({"specversion": "9.9", "id": "1", "source": "x", "type": "t"}), CE),
    ("cloudevent-null", b"null", CE),
    ("not-utf8", b"\xff\xfe\x00[", "application/json"),
    ("json-scalar", b"42", "application/json"),
    ("empty-body", b"", "application/json"),
]


@pytest.mark.parametrize(("body", "mimetype"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_events_are_400_json_never_500(events_client, recorder, body, mimetype):
    client = events_client(events_secret=SECRET)
    r = client.post("/events", data=body, headers={**AUTH, "Content-Type": mimetype or "application/json"})
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    error = r.get_json()["error"]
    assert isinstance(error, str) and "in-bucket" not in error and "inputs/a" not in error
    assert recorder.CALLS == []  # nothing was fetched or opened


def test_at_least_22_malformed_shapes():
    assert len(MALFORMED) >= 22 and len({m[0] for m in MALFORMED}) == len(MALFORMED)


@pytest.mark.parametrize(
    "body", [deep(1000), swap(s3_doc(size=7), '"size": 7', '"size": 1e400'), b"{garbage"], ids=["deep", "1e400", "junk"]
)
def test_missing_secret_is_401_before_the_body_is_parsed(events_client, recorder, body):
    client = events_client(events_secret=SECRET)
    r = client.post("/events", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 401
    assert r.get_json() == {"error": f"missing or wrong {SECRET_HEADER} header"}
    assert recorder.CALLS == []


def test_a_validation_header_does_not_let_other_events_in_without_the_secret(events_client, recorder):
    client = events_client(events_secret=SECRET)
    headers, body = payloads.s3("in-bucket", "inputs/a.jsonl", "01")
    r = client.post("/events", data=body, headers={**headers, "aeg-event-type": "SubscriptionValidation"})
    assert r.status_code == 401
    headers, body = payloads.validation()
    del headers["aeg-event-type"]  # a validation body without Event Grid's header needs the secret
    assert client.post("/events", data=body, headers=headers).status_code == 401
    assert recorder.CALLS == []


def test_no_secret_and_no_platform_auth_refuses_every_event(make_settings, published, recorder):
    from function.app import create_app
    from tests.conftest import wait_ready

    client = create_app(make_settings(model_uri=f"{published}/lin")).test_client()  # model-only hot swap
    wait_ready(client)
    headers, body = payloads.s3("in-bucket", "models/lin/aliases/latest.json", "01")
    r = client.post("/events", data=body, headers=headers)
    assert r.status_code == 401 and "EVENTS_AUTH" in r.get_json()["error"]
    headers, body = payloads.validation()
    assert client.post("/events", data=body, headers=headers).status_code == 401


def test_platform_auth_is_an_explicit_choice(make_settings, published):
    base = {"model_uri": f"{published}/lin", "events_input_uri": "s3://b/in", "events_output_uri": "s3://b/out"}
    with pytest.raises(ValidationError, match="EVENTS_AUTH=platform"):
        make_settings(**base)  # fail closed: no secret and no statement that the platform authenticates
    assert make_settings(**base, events_auth="platform").events_auth == "platform"
    assert make_settings(**base, events_secret=SECRET).events_auth == "secret"
    with pytest.raises(ValidationError, match=r"(?i)events_auth"):
        make_settings(**base, events_auth="none")


@pytest.mark.parametrize(
    ("inputs", "outputs"),
    [
        ("s3://b/data/in", "s3://b/data/in/out"),  # outputs inside inputs (checked before)
        ("s3://b/data/in/sub", "s3://b/data/in"),  # inputs inside outputs (was accepted)
        ("s3://b/data", "s3://b"),  # outputs at the bucket root hold every input
        ("s3://b/same", "s3://b/same/"),
    ],
)
def test_input_and_output_prefixes_must_not_overlap_either_way(inputs, outputs):
    with pytest.raises(ValidationError, match="must not overlap"):
        Settings(events_input_uri=inputs, events_output_uri=outputs, events_auth="platform")


def test_neighbouring_prefixes_are_not_overlapping():
    s = Settings(events_input_uri="s3://b/data/in", events_output_uri="s3://b/data/input", events_auth="platform")
    assert s.events_output_uri == "s3://b/data/input"


ODD_VALUES = [
    None,
    True,
    -1,
    0,
    2**70,
    1e308,
    -1e-308,
    float("inf"),
    float("nan"),
    "",
    "x" * 3000,
    "∞",
    "\u0000",
    [],
    [1, [2]],
    {},
    {"a": None},
]


def mutate(doc: Any, rng: random.Random) -> Any:
    """The document with one randomly chosen value (at any depth) replaced by an odd one."""
    paths: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for key, value in items:
            paths.append((node, key))
            walk(value)

    doc = copy.deepcopy(doc)
    walk(doc)
    if paths:
        node, key = rng.choice(paths)
        node[key] = copy.deepcopy(rng.choice(ODD_VALUES))
    return doc


@pytest.mark.parametrize("kind", ["s3", "gcs", "eventgrid", "azure-cloudevents"])
def test_randomly_mutated_events_never_get_a_5xx(events_client, recorder, kind):
    # Valid events name in-bucket, which is not configured here: they are refused (403) before any storage call.
    client = events_client("s3://elsewhere/inputs", "s3://elsewhere/outputs", events_secret=SECRET)
    headers, body = {
        "s3": lambda: payloads.s3("in-bucket", "inputs/a.jsonl", "01"),
        "gcs": lambda: payloads.gcs("in-bucket", "inputs/a.jsonl", "1", mode="structured"),
        "eventgrid": lambda: payloads.eventgrid("in-bucket", "inputs/a.jsonl", '"0x8DE"'),
        "azure-cloudevents": lambda: payloads.azure_cloudevent("in-bucket", "inputs/a.jsonl", '"0x8DE"'),
    }[kind]()
    rng = random.Random(kind)
    statuses = set()
    for _ in range(150):
        r = client.post("/events", data=json.dumps(mutate(json.loads(body), rng)), headers={**headers, **AUTH})
        assert r.status_code < 500, r.get_data(as_text=True)[:300]
        assert isinstance(r.get_json(), dict)
        statuses.add(r.status_code)
    assert 400 in statuses
    assert [c for c in recorder.CALLS if c[0] != "open"] == []
