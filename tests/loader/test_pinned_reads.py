"""``iter_version``: a read pinned to one object version, against the three emulators."""

from __future__ import annotations

import pytest

from loader.errors import ArtifactNotFound, ObjectChanged
from tests.events.cloud import upload


def pin(backend, version) -> str:
    """What a batch job pins: S3 the ETag, GCS the generation, Azure the eTag."""
    return version.etag if backend.scheme == "s3" else str(version)


def test_the_pinned_version_is_read_and_a_newer_one_is_refused(cloud_backend):
    store = cloud_backend.open("")
    first = upload(cloud_backend, "in/a.bin", b"first" * 1000)
    assert b"".join(store.iter_version("in/a.bin", pin(cloud_backend, first), chunk_size=1024)) == b"first" * 1000
    second = upload(cloud_backend, "in/a.bin", b"second")
    with pytest.raises(ObjectChanged):
        b"".join(store.iter_version("in/a.bin", pin(cloud_backend, first)))
    assert b"".join(store.iter_version("in/a.bin", pin(cloud_backend, second))) == b"second"


def test_a_missing_object_is_refused(cloud_backend):
    store = cloud_backend.open("")
    version = upload(cloud_backend, "in/b.bin", b"x")
    # S3 and GCS answer 404; Azure's If-Match on a missing blob is a 412 (RFC 9110): either way nothing is read.
    with pytest.raises((ArtifactNotFound, ObjectChanged)):
        b"".join(store.iter_version("in/missing.bin", pin(cloud_backend, version)))
