"""Requests built from the documented sample payloads in ``fixtures/``, retargeted at test objects."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent
from dateutil.parser import isoparse

FIXTURES = Path(__file__).parent / "fixtures"
Request = tuple[dict[str, str], bytes]
JSON = {"Content-Type": "application/json"}


def fixture(name: str) -> Any:
    """A fixture file without its ``_source`` note."""
    doc = json.loads((FIXTURES / name).read_text())
    doc.pop("_source", None)
    return doc


def gcs(
    bucket: str,
    key: str,
    generation: str,
    *,
    mode: str = "binary",
    kind: str = "google.cloud.storage.object.v1.finalized",
) -> Request:
    """Eventarc's Cloud Storage CloudEvent, binary or structured, made with the cloudevents SDK."""
    doc = fixture("gcs_object_finalized.json")
    attributes = dict(
        doc["attributes"],
        type=kind,
        subject=f"objects/{key}",
        source=f"//storage.googleapis.com/projects/_/buckets/{bucket}",
    )
    attributes["time"] = isoparse(attributes["time"])
    data = dict(doc["data"], bucket=bucket, name=key, generation=str(generation), id=f"{bucket}/{key}/{generation}")
    event = CloudEvent(attributes, data)
    message = to_binary_event(event) if mode == "binary" else to_structured_event(event)
    return dict(message.headers), message.body


def s3(
    bucket: str,
    key: str,
    sequencer: str,
    *,
    version_id: str | None = None,
    detail_type: str = "Object Created",
    etag: str | None = None,
) -> Request:
    """EventBridge's S3 event (URL-encoded key; version-id only on versioned buckets)."""
    doc = fixture("s3_object_created.json")
    doc["detail-type"] = detail_type
    doc["resources"] = [f"arn:aws:s3:::{bucket}"]
    doc["detail"]["bucket"]["name"] = bucket
    obj = doc["detail"]["object"]
    obj.update(key=quote_plus(key, safe="/"), sequencer=sequencer)
    if etag is not None:
        obj["etag"] = etag
    if version_id is None:
        obj.pop("version-id")
    else:
        obj["version-id"] = version_id
    return dict(JSON), json.dumps(doc).encode()


def _blob_event(event: dict[str, Any], container: str, key: str, etag: str) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["subject"] = f"/blobServices/default/containers/{container}/blobs/{key}"
    event["data"].update(eTag=etag, url=f"https://my-storage-account.blob.core.windows.net/{container}/{quote(key)}")
    return event


def eventgrid(container: str, key: str, etag: str, *, event_type: str = "Microsoft.Storage.BlobCreated") -> Request:
    """Event Grid schema: a JSON array with one BlobCreated event."""
    event = _blob_event(fixture("eventgrid_blob_created.json")["events"][0], container, key, etag)
    event["eventType"] = event_type
    return {**JSON, "aeg-event-type": "Notification"}, json.dumps([event]).encode()


def azure_cloudevent(container: str, key: str, etag: str) -> Request:
    """Event Grid's CloudEvents 1.0 schema, structured mode, made with the cloudevents SDK."""
    doc = _blob_event(fixture("cloudevents_blob_created.json"), container, key, etag)
    data = doc.pop("data")
    doc["time"] = isoparse(doc["time"])
    message = to_structured_event(CloudEvent(doc, data))
    return dict(message.headers), message.body


def validation() -> Request:
    """Event Grid's SubscriptionValidationEvent."""
    return {**JSON, "aeg-event-type": "SubscriptionValidation"}, json.dumps(
        fixture("eventgrid_subscription_validation.json")["events"]
    ).encode()
