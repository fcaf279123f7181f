"""Runtimes serve correct predictions: ONNX and torch (TorchScript, torch.export); CUDA when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from function.app import create_app
from loader.artifacts import fetch
from loader.cache import ArtifactCache
from loader.errors import DeviceUnavailable
from loader.runtimes import DeviceChoice, create_runtime
from loader.runtimes.onnx import CPU, CUDA, choose_providers
from loader.stores import open_store
from loader.uri import parse_model_uri
from tests.conftest import wait_ready
from tests.models import (
    TORCH_IO,
    expected_logits,
    linear_export,
    linear_onnx,
    linear_torchscript,
    publish_model,
)

X = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.0], [0, 0, 0, 0]], dtype=np.float32)


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def _build(kind: str, tmp_path: Path) -> tuple[Path, dict]:
    if kind == "onnx":
        return linear_onnx(tmp_path / "m.onnx"), {}
    pytest.importorskip("torch")
    if kind == "torchscript":
        return linear_torchscript(tmp_path / "m.pt"), dict(TORCH_IO)
    return linear_export(tmp_path / "m.pt2"), {}


def _load(kind: str, device: DeviceChoice, tmp_path: Path, store_dir: Path):
    model_file, io = _build(kind, tmp_path)
    publish_model(store_dir.as_uri(), model_file, **io)
    uri = parse_model_uri(f"{store_dir.as_uri()}/lin@1.0.0")
    artifact = fetch(open_store(uri.store), uri, ArtifactCache(tmp_path / "cache"))
    runtime = create_runtime(artifact.manifest.framework, device)
    runtime.load(artifact)
    return artifact, runtime


@pytest.mark.parametrize("kind", ["onnx", "torchscript", "torch_export"])
def test_cpu_predictions_match(kind, tmp_path, store_dir):
    artifact, runtime = _load(kind, DeviceChoice.CPU, tmp_path, store_dir)
    assert runtime.device == "cpu"
    out = runtime.predict({"features": X})
    [name] = out
    np.testing.assert_allclose(out[name], expected_logits(X), rtol=1e-5, atol=1e-6)
    assert artifact.manifest.outputs[0].shape == [-1, 3]


@pytest.mark.parametrize("kind", ["torchscript", "torch_export"])
def test_torch_models_serve_over_http(kind, tmp_path, store_dir, make_settings):
    model_file, io = _build(kind, tmp_path)
    publish_model(store_dir.as_uri(), model_file, **io)
    client = create_app(make_settings(model_uri=f"{store_dir.as_uri()}/lin", device="cpu")).test_client()
    wait_ready(client)
    r = client.post("/v1/models/lin:predict", json={"instances": X.tolist()})
    assert r.status_code == 200, r.get_json()
    np.testing.assert_allclose(r.get_json()["predictions"], expected_logits(X), rtol=1e-5)
    assert client.get("/v2/models/lin").get_json()["platform"].startswith("pytorch")


def test_export_signature_is_read_from_the_program(tmp_path):
    pytest.importorskip("torch")
    from loader.introspect import signature
    from loader.manifest import Framework

    inputs, outputs = signature(linear_export(tmp_path / "m.pt2"), Framework.TORCH_EXPORT)
    assert [(t.name, t.datatype, t.shape) for t in inputs] == [("features", "FP32", [-1, 4])]
    assert [(t.datatype, t.shape) for t in outputs] == [("FP32", [-1, 3])]


def test_provider_choice():
    assert choose_providers([CUDA, CPU], DeviceChoice.AUTO) == [CUDA, CPU]
    assert choose_providers([CPU], DeviceChoice.AUTO) == [CPU]
    assert choose_providers([CUDA, CPU], DeviceChoice.CPU) == [CPU]
    with pytest.raises(DeviceUnavailable, match="DEVICE=cuda"):
        choose_providers([CPU], DeviceChoice.CUDA)


@pytest.mark.skipif(_has_cuda(), reason="checks the no-GPU failure path")
@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_cuda_requested_without_gpu_fails_loudly(kind, tmp_path, store_dir, make_settings):
    model_file, io = _build(kind, tmp_path)
    publish_model(store_dir.as_uri(), model_file, **io)
    client = create_app(make_settings(model_uri=f"{store_dir.as_uri()}/lin", device="cuda")).test_client()
    for _ in range(500):
        r = client.get("/readyz")
        if r.get_json().get("phase") == "failed":
            break
        import time

        time.sleep(0.01)
    assert r.status_code == 503 and "DEVICE=cuda" in r.get_json()["error"]


@pytest.mark.gpu
@pytest.mark.skipif(not _has_cuda(), reason="no CUDA device on this machine (runs on the GPU machine)")
@pytest.mark.parametrize("kind", ["torchscript", "torch_export"])
def test_cuda_predictions_match(kind, tmp_path, store_dir):
    _, runtime = _load(kind, DeviceChoice.CUDA, tmp_path, store_dir)
    assert runtime.device == "cuda"
    out = runtime.predict({"features": X})
    np.testing.assert_allclose(next(iter(out.values())), expected_logits(X), rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not _has_cuda(), reason="no CUDA device on this machine (runs on the GPU machine)")
def test_onnx_cuda_provider(tmp_path, store_dir):
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed")
    _, runtime = _load("onnx", DeviceChoice.CUDA, tmp_path, store_dir)
    assert runtime.provider == CUDA and runtime.device == "cuda"
    np.testing.assert_allclose(runtime.predict({"features": X})["logits"], expected_logits(X), rtol=1e-4)
