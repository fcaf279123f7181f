"""Manifest schema rules."""

from __future__ import annotations

import pytest

from loader.errors import ManifestInvalid
from loader.manifest import Manifest

SHA = "0" * 64


def manifest(**overrides):
    data = {
        "name": "m",
        "version": "1.0.0",
        "framework": "onnx",
        "model_file": "model.onnx",
        "files": [{"path": "model.onnx", "sha256": SHA, "size": 3}],
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}],
        "postprocess": {"labels": ["a", "b", "c"]},
    }
    data.update(overrides)
    return data


def test_round_trip_is_canonical():
    m = Manifest.model_validate(manifest())
    again = Manifest.from_json(m.to_json())
    assert again == m and again.to_json() == m.to_json() and again.schema_version == 1


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"schema_version": 2}, "schema_version"),
        ({"framework": "tensorflow"}, "framework"),
        ({"model_file": "other.onnx"}, "model_file"),
        ({"files": [{"path": "../x", "sha256": SHA, "size": 1}]}, "files"),
        ({"files": [{"path": "model.onnx", "sha256": "abc", "size": 1}]}, "sha256"),
        ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [0]}]}, "inputs"),
        ({"inputs": [{"name": "x", "datatype": "STRING", "shape": [1]}]}, "datatype"),
        ({"postprocess": {"labels": ["a", "b"]}}, "labels"),
        ({"preprocess": {"std": [1.0, 0.0]}}, "std"),
        ({"version": "a/b"}, "version"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_manifests(overrides, words):
    import json

    with pytest.raises(ManifestInvalid, match=words):
        Manifest.from_json(json.dumps(manifest(**overrides)).encode())


def test_not_json_is_invalid():
    with pytest.raises(ManifestInvalid):
        Manifest.from_json(b"not json")
