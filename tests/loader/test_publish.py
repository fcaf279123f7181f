"""Publishing, aliases and listing on a file:// store."""

from __future__ import annotations

from pathlib import Path

import pytest

from loader.errors import AlreadyExists, ArtifactNotFound
from loader.publish import list_models, set_alias
from loader.stores import open_store
from tests.models import publish_model


def test_versions_are_immutable(store_dir: Path, onnx_file: Path):
    uri = store_dir.as_uri()
    publish_model(uri, onnx_file)
    before = (store_dir / "lin" / "1.0.0" / "manifest.json").read_bytes()
    with pytest.raises(AlreadyExists, match="immutable"):
        publish_model(uri, onnx_file, metadata={"git": "other"})
    assert (store_dir / "lin" / "1.0.0" / "manifest.json").read_bytes() == before


def test_manifest_is_the_commit_point(store_dir: Path, onnx_file: Path):
    """A publisher that lost the race (manifest already there) fails even if it uploaded files."""
    uri = store_dir.as_uri()
    manifest = publish_model(uri, onnx_file)
    store = open_store(uri)
    with pytest.raises(AlreadyExists):
        store.put_bytes("lin/1.0.0/manifest.json", manifest.to_json(), if_absent=True)


def test_aliases_and_listing(store_dir: Path, onnx_file: Path):
    uri = store_dir.as_uri()
    publish_model(uri, onnx_file, version="1.0.0")
    publish_model(uri, onnx_file, version="1.10.0", aliases=())
    publish_model(uri, onnx_file, version="1.9.0")
    store = open_store(uri)
    set_alias(store, "lin", "prod", "1.10.0")
    [listing] = list_models(store)
    assert listing.versions == ["1.0.0", "1.9.0", "1.10.0"]
    assert listing.aliases == {"latest": "1.9.0", "prod": "1.10.0"}


def test_alias_to_missing_version_is_refused(store_dir: Path, onnx_file: Path):
    uri = store_dir.as_uri()
    publish_model(uri, onnx_file)
    with pytest.raises(ArtifactNotFound):
        set_alias(open_store(uri), "lin", "prod", "2.0.0")
    with pytest.raises(AlreadyExists, match="shadow"):
        set_alias(open_store(uri), "lin", "1.0.0", "1.0.0")
