"""Upload objects to the emulators and deliver each cloud's event for them through POST /events."""

from __future__ import annotations

import os
import uuid
from typing import Any

from flask.testing import FlaskClient

from tests.conftest import CloudBackend
from tests.events import payloads

# The delivery formats each cloud's event system can use.
MODES = {"s3": ["eventbridge"], "gs": ["binary", "structured"], "az": ["eventgrid", "cloudevents"]}


class Version(str):
    """The version id an event carries for an upload, plus the ETag (S3 events carry both)."""

    etag: str | None = None


def upload(backend: CloudBackend, key: str, data: bytes) -> Version:
    """Write ``key`` in the backend's bucket and return the version id its events would carry."""
    backend.open("").put_bytes(key, data)
    if backend.scheme == "gs":
        from google.cloud import storage

        return Version(storage.Client().bucket(backend.bucket).get_blob(key).generation)
    if backend.scheme == "az":
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
        return Version(service.get_blob_client(backend.bucket, key).get_blob_properties().etag)
    import boto3

    version = Version(uuid.uuid4().hex[:16].upper())  # S3: the per-write sequencer of an unversioned bucket
    head = boto3.client("s3").head_object(Bucket=backend.bucket, Key=key)
    version.etag = str(head["ETag"]).strip('"')  # EventBridge sends the ETag unquoted
    return version


def event_for(backend: CloudBackend, key: str, version: str, mode: str | None = None) -> payloads.Request:
    """The request the cloud's event system would POST for this object version."""
    mode = mode or MODES[backend.scheme][0]
    if backend.scheme == "gs":
        return payloads.gcs(backend.bucket, key, version, mode=mode)
    if backend.scheme == "az":
        make = payloads.eventgrid if mode == "eventgrid" else payloads.azure_cloudevent
        return make(backend.bucket, key, version)
    return payloads.s3(backend.bucket, key, version, etag=getattr(version, "etag", None))


def deliver(client: FlaskClient, backend: CloudBackend, key: str, version: str, mode: str | None = None) -> Any:
    """POST the event and return the response."""
    headers, body = event_for(backend, key, version, mode)
    return client.post("/events", data=body, headers=headers)
