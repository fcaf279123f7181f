"""Public failure reasons: the typed message, minus store URIs, local paths, digests and bucket names."""

from __future__ import annotations

import pytest

from loader import errors as le
from loader.public import public_message

SHA = "20f12f813823f609ac969d1ba14c223b2e10a9ad63dfa96165f86115efedb792"


@pytest.mark.parametrize(
    ("exc", "kept", "hidden"),
    [
        (
            le.ArtifactNotFound("lin@9: no such version or alias in s3://secret-bucket/models"),
            "no such version",
            "secret",
        ),
        (le.DigestMismatch(f"model.onnx: expected sha256 {SHA} (208 bytes)"), "expected sha256", SHA),
        (le.StoreUnavailable("S3 unreachable for gs://b/x/lin/1/manifest.json: ConnectTimeout"), "unreachable", "b/x"),
        (
            le.StoreUnavailable("cannot write cache file for m: No space left (/var/cache/m)"),
            "cannot write",
            "/var/cache",
        ),
        (
            le.ArtifactNotFound("container 'private-models' does not exist (az://private-models/p/k)"),
            "container",
            "private",
        ),
        (le.RuntimeLoadError("cannot load /tmp/modelfn-cache/artifacts/x/model.onnx"), "cannot load", "/tmp"),
        (le.DeviceUnavailable("DEVICE=cuda but no GPU"), "DEVICE=cuda", "\0"),
    ],
)
def test_public_message_keeps_the_kind_and_drops_locations(exc, kept, hidden):
    text = public_message(exc)
    assert kept in text and hidden not in text


def test_unexpected_errors_say_nothing_about_themselves():
    text = public_message(RuntimeError("password=hunter2 at /etc/secret"))
    assert "hunter2" not in text and "/etc" not in text and "internal error" in text
