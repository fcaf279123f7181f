"""Publishing, aliases and listing on a file:// store."""

from __future__ import annotations

from pathlib import Path

import pytest

from loader.artifacts import fetch, resolve
from loader.cache import ArtifactCache
from loader.errors import AlreadyExists, ArtifactNotFound, ManifestInvalid
from loader.publish import list_models, set_alias
from loader.stores import open_store
from loader.uri import parse_model_uri
from tests.models import publish_model, stored_file


def test_versions_are_immutable(store_dir: Path, onnx_file: Path):
    uri = store_dir.as_uri()
    publish_model(uri, onnx_file)
    before = (store_dir / "lin" / "1.0.0" / "manifest.json").read_bytes()
    with pytest.raises(AlreadyExists, match="immutable"):
        publish_model(uri, onnx_file, metadata={"git": "other"})
    assert (store_dir / "lin" / "1.0.0" / "manifest.json").read_bytes() == before


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


def test_a_version_named_like_an_alias_is_refused(store_dir: Path, onnx_file: Path):
    uri = store_dir.as_uri()
    publish_model(uri, onnx_file, aliases=("latest", "prod"))
    with pytest.raises(AlreadyExists, match="alias"):
        publish_model(uri, onnx_file, version="prod")
    assert not (store_dir / "lin" / "prod").exists()
    manifest, _ = resolve(open_store(uri), parse_model_uri(f"{uri}/lin@prod"))
    assert manifest.version == "1.0.0"  # @prod still means the alias


def test_a_ref_that_is_both_version_and_alias_is_refused(store_dir: Path, onnx_file: Path):
    """A store written by another tool can hold both; resolution refuses to guess instead of picking one."""
    uri = store_dir.as_uri()
    publish_model(uri, onnx_file, aliases=("prod",))
    publish_model(uri, onnx_file, version="2.0.0", aliases=())
    other = (store_dir / "lin" / "2.0.0" / "manifest.json").read_bytes().replace(b'"2.0.0"', b'"prod"')
    (store_dir / "lin" / "prod").mkdir()
    (store_dir / "lin" / "prod" / "manifest.json").write_bytes(other)
    with pytest.raises(ManifestInvalid, match="both a version and an alias"):
        resolve(open_store(uri), parse_model_uri(f"{uri}/lin@prod"))


def test_files_are_content_addressed_and_shared_between_versions(store_dir: Path, onnx_file: Path):
    uri = store_dir.as_uri()
    first = publish_model(uri, onnx_file)
    publish_model(uri, onnx_file, version="2.0.0")
    path = stored_file(store_dir)
    assert path == stored_file(store_dir, version="2.0.0")
    assert path.name == first.files[0].sha256 and path.read_bytes() == onnx_file.read_bytes()
    [listing] = list_models(open_store(uri))
    assert listing.versions == ["1.0.0", "2.0.0"]


def test_versions_published_before_content_addressing_still_load(store_dir: Path, onnx_file: Path, tmp_path: Path):
    """Manifests without a ``layout`` field keep files at ``<name>/<version>/<file>`` (the original layout)."""
    import json

    from function.publishing import build_manifest

    manifest, _ = build_manifest(onnx_file, "lin", "0.9.0", None, [], [], [], {}, {}, {})
    legacy = json.loads(manifest.to_json())
    del legacy["layout"]
    version_dir = store_dir / "lin" / "0.9.0"
    version_dir.mkdir(parents=True)
    (version_dir / "model.onnx").write_bytes(onnx_file.read_bytes())
    (version_dir / "manifest.json").write_text(json.dumps(legacy))
    model = parse_model_uri(f"{store_dir.as_uri()}/lin@0.9.0")
    artifact = fetch(open_store(model.store), model, ArtifactCache(tmp_path / "cache"))
    assert artifact.manifest.layout == "by-path" and artifact.stats.files_downloaded == 1
    assert artifact.model_path.read_bytes() == onnx_file.read_bytes()
