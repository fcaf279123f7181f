"""Model and store URI parsing."""

from __future__ import annotations

import pytest

from loader.errors import InvalidURI
from loader.uri import parse_model_uri, parse_store_uri


@pytest.mark.parametrize(
    ("uri", "scheme", "bucket", "prefix", "name", "ref"),
    [
        ("s3://bucket/prefix/name@1.2.0", "s3", "bucket", "prefix", "name", "1.2.0"),
        ("gs://b/a/b/c/model@prod", "gs", "b", "a/b/c", "model", "prod"),
        ("az://container/models/iris", "az", "container", "models", "iris", "latest"),
        ("s3://bucket/iris@2.0.0-rc.1+build", "s3", "bucket", "", "iris", "2.0.0-rc.1+build"),
        ("file:///srv/store/iris@1.0.0", "file", "", "/srv/store", "iris", "1.0.0"),
        ("file:///iris", "file", "", "/", "iris", "latest"),
    ],
)
def test_model_uris(uri, scheme, bucket, prefix, name, ref):
    parsed = parse_model_uri(uri)
    assert (parsed.store.scheme, parsed.store.bucket, parsed.store.prefix) == (scheme, bucket, prefix)
    assert (parsed.name, parsed.ref) == (name, ref)


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("iris@1.0.0", "scheme"),
        ("s3:///iris@1", "bucket"),
        ("s3://bucket/Bad Name@1", "model name"),
        ("s3://bucket/iris@", "version or alias"),
        ("s3://bucket/iris@aliases", "version or alias"),
        ("s3://bucket/a/../iris@1", "'..'"),
        ("file://host/path/iris@1", "absolute"),
        ("s3://bucket/store?x=1/iris@1", "query"),
    ],
)
def test_bad_uris(uri, words):
    with pytest.raises(InvalidURI, match=words):
        parse_model_uri(uri)


def test_store_uri_round_trips():
    assert parse_store_uri("s3://b/p/q/").uri == "s3://b/p/q"
    assert parse_store_uri("file:///tmp/x/").uri == "file:///tmp/x"
