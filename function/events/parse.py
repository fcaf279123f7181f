"""Normalise Eventarc (CloudEvents), EventBridge and Event Grid payloads into ``model.Event`` values."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, TypeGuard
from urllib.parse import unquote_plus

from cloudevents.core.bindings.http import HTTPMessage, from_http_event, from_structured_event
from cloudevents.core.exceptions import BaseCloudEventException

from function.errors import MalformedEvent
from function.events.model import Event, Ignored, ObjectCreated, Validation

GCS_FINALIZED = "google.cloud.storage.object.v1.finalized"
AZ_BLOB_CREATED = "Microsoft.Storage.BlobCreated"
AZ_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
S3_CREATED = "Object Created"
CE_STRUCTURED = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"
MAX_EVENTS = 100  # Event Grid batches hold at most 5000, but we configure small batches; bound the work
# Blob subjects look like /blobServices/default/containers/<container>/blobs/<name>.
_AZ_SUBJECT = re.compile(r"^/blobServices/default/containers/([^/]+)/blobs/(.+)$")
_VALIDATION_CODE = re.compile(r"^[A-Za-z0-9-]{1,128}$")
_CE_ERRORS = (BaseCloudEventException, ValueError, TypeError, AttributeError, KeyError, RecursionError)
MAX_TOKEN = 1024  # keys, versions and etags are far shorter; longer strings are not storage events


def parse_events(headers: Mapping[str, str], body: bytes, mimetype: str) -> list[Event]:
    """Detect the delivery format and normalise every event in the request."""
    if mimetype == CE_BATCH:
        return [_from_cloudevent(e) for e in _cloudevent_batch(body)]
    if mimetype == CE_STRUCTURED or any(k.lower().startswith("ce-") for k in headers):
        if mimetype == CE_STRUCTURED or _is_json(mimetype):
            _json(body)  # the strict parse first: the SDK's own json.loads accepts NaN, 1e400 and any depth
        return [_from_cloudevent(_cloudevent(headers, body))]
    doc = _json(body)
    if isinstance(doc, list):
        if not 0 < len(doc) <= MAX_EVENTS:
            raise MalformedEvent(f"an Event Grid array must hold 1 to {MAX_EVENTS} events")
        return [_from_event_grid(e) for e in doc]
    if isinstance(doc, dict) and "detail-type" in doc:
        return [_from_eventbridge(doc)]
    raise MalformedEvent("unrecognised event: expected a CloudEvent, an EventBridge event or an Event Grid array")


def _json(body: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, no numbers that overflow to infinity, bounded nesting."""
    try:
        return json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise MalformedEvent("event body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise MalformedEvent("event body is not valid JSON") from None


def _no_constant(_: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def _cloudevent(headers: Mapping[str, str], body: bytes) -> Any:
    # Binary mode when any ce-* header is present, else structured (the SDK's own detection).
    message = HTTPMessage({k.lower(): v for k, v in headers.items()}, body)
    try:
        return from_http_event(message)
    except _CE_ERRORS:
        raise MalformedEvent("not a valid CloudEvent (binary or structured mode)") from None


def _cloudevent_batch(body: bytes) -> list[Any]:
    doc = _json(body)
    if not isinstance(doc, list) or not 0 < len(doc) <= MAX_EVENTS:
        raise MalformedEvent(f"a CloudEvents batch must be a JSON array of 1 to {MAX_EVENTS} events")
    try:
        return [from_structured_event(HTTPMessage({}, json.dumps(item).encode())) for item in doc]
    except _CE_ERRORS:
        raise MalformedEvent("not a valid CloudEvents batch") from None


def _from_cloudevent(event: Any) -> Event:
    kind = str(event.get_type())
    data = _object(event.get_data())
    if kind == GCS_FINALIZED:
        return _gcs(data)
    if kind == AZ_BLOB_CREATED:
        return _azure(event.get_subject(), data, "azure-cloudevents")
    return Ignored("cloudevents", kind, "unsupported event type")


def _object(data: Any) -> dict[str, Any]:
    if isinstance(data, bytes | str):
        data = _json(data.encode() if isinstance(data, str) else data)
    if not isinstance(data, dict):
        raise MalformedEvent("event data must be a JSON object")
    return data


def _gcs(data: dict[str, Any]) -> ObjectCreated:
    """StorageObjectData: bucket, name, generation (a new one on every overwrite), size, etag."""
    bucket, name, generation = data.get("bucket"), data.get("name"), _int(data.get("generation"), "generation")
    if not _token(bucket) or not _token(name) or generation is None:
        raise MalformedEvent("Cloud Storage event data needs bucket, name and generation")
    return ObjectCreated(
        "gs", bucket, name, str(generation), _int(data.get("size"), "size"), _str(data.get("etag")), "gcs-eventarc"
    )


def _from_eventbridge(doc: dict[str, Any]) -> Event:
    kind = str(doc.get("detail-type"))
    if doc.get("source") != "aws.s3" or kind != S3_CREATED:
        return Ignored("eventbridge", kind, "unsupported event type")
    detail = doc.get("detail")
    bucket = detail.get("bucket") if isinstance(detail, dict) else None
    obj = detail.get("object") if isinstance(detail, dict) else None
    if not isinstance(bucket, dict) or not isinstance(obj, dict):
        raise MalformedEvent("S3 event needs detail.bucket and detail.object")
    name, key = bucket.get("name"), obj.get("key")
    if not _token(name) or not _token(key):
        raise MalformedEvent("S3 event needs detail.bucket.name and detail.object.key")
    # version-id exists only on versioned buckets; the sequencer orders writes to one key otherwise.
    version = _str(obj.get("version-id")) or _str(obj.get("sequencer")) or _str(obj.get("etag"))
    if not version:
        raise MalformedEvent("S3 event needs detail.object.version-id, sequencer or etag")
    # S3 URL-encodes keys in notifications (form encoding: '+' is a space).
    size, etag = _int(obj.get("size"), "size"), _str(obj.get("etag"))
    return ObjectCreated("s3", name, unquote_plus(key), version, size, etag, "s3-eventbridge")


def _from_event_grid(item: Any) -> Event:
    if not isinstance(item, dict):
        raise MalformedEvent("each Event Grid event must be a JSON object")
    kind = str(item.get("eventType"))[:MAX_TOKEN]
    data = item.get("data")
    if kind == AZ_VALIDATION:
        code = data.get("validationCode") if isinstance(data, dict) else None
        if not isinstance(code, str) or not _VALIDATION_CODE.match(code):
            raise MalformedEvent("subscription validation event needs a validationCode")
        return Validation(code)
    if kind != AZ_BLOB_CREATED:
        return Ignored("eventgrid", kind, "unsupported event type")
    return _azure(item.get("subject"), _object(data), "azure-eventgrid")


def _azure(subject: Any, data: dict[str, Any], origin: str) -> ObjectCreated:
    """Container and blob name come from the subject; ``data.url`` is never fetched."""
    match = _AZ_SUBJECT.match(subject) if _token(subject, 2 * MAX_TOKEN) else None
    etag = _str(data.get("eTag"))
    if not match or not etag:
        raise MalformedEvent(
            "Blob Storage event needs a /blobServices/default/containers/.../blobs/... subject and data.eTag"
        )
    size = _int(data.get("contentLength"), "contentLength")
    return ObjectCreated("az", match.group(1), match.group(2), etag, size, etag, origin)


def _int(value: Any, field: str) -> int | None:
    """A non-negative integer (JSON number or decimal string, as GCS sends sizes), or None when absent."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise MalformedEvent(f"event field {field} must be a non-negative integer")
    return value


def _str(value: Any) -> str | None:
    """A version or etag: a non-empty string (numbers are accepted as their decimal text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value in (None, ""):
        return None
    if not _token(value):
        raise MalformedEvent("event versions and etags must be short strings")
    return str(value)


def _token(value: Any, limit: int = MAX_TOKEN) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= limit
