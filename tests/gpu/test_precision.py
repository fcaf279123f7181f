"""Half precision per manifest: published with the CLI, applied at load, fp16 refused on CPU, bf16 served on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from function.app import create_app
from function.cli import main
from loader.errors import ManifestInvalid
from loader.manifest import Manifest, Precision
from tests.conftest import wait_ready
from tests.gpu.conftest import cuda_available
from tests.gpu.models import batch, mlp, reference, save

torch = pytest.importorskip("torch")
SHA = "0" * 64


def _manifest(**overrides: object) -> dict:
    data = {
        "name": "m",
        "version": "1.0.0",
        "framework": "torchscript",
        "model_file": "m.pt",
        "files": [{"path": "m.pt", "sha256": SHA, "size": 3}],
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}],
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_precision_round_trips(precision):
    m = Manifest.from_json(json.dumps(_manifest(precision=precision)).encode())
    assert m.precision is Precision(precision)
    assert json.loads(m.to_json())["precision"] == precision
    assert Manifest.from_json(m.to_json()) == m


def test_fp32_is_the_default_and_stays_out_of_the_json():
    old = Manifest.from_json(json.dumps(_manifest()).encode())  # a manifest published before the field
    assert old.precision is Precision.FP32
    # Servers older than the field forbid unknown keys: fp32 manifests must stay readable by them.
    assert "precision" not in json.loads(old.to_json())


def test_precision_is_refused_for_onnx_and_unknown_values():
    with pytest.raises(ManifestInvalid, match="precision applies to torch models"):
        Manifest.from_json(json.dumps(_manifest(framework="onnx", model_file="m.pt", precision="fp16")).encode())
    with pytest.raises(ManifestInvalid, match="precision"):
        Manifest.from_json(json.dumps(_manifest(precision="int8")).encode())


def _publish(store_dir: Path, tmp_path: Path, kind: str, precision: str, name: str = "mlp") -> None:
    model = save(mlp(), kind, tmp_path / ("m.pt" if kind == "torchscript" else "m.pt2"))
    args = ["publish", str(model), "--name", name, "--version", "1.0.0", "--to", store_dir.as_uri()]
    args += ["--precision", precision, "--input", "x:FP32:-1,64", "--output", "y:FP32:-1,10"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("kind", ["torchscript", "torch_export"])
def test_bf16_is_served_on_cpu_within_tolerance(kind, store_dir, tmp_path, make_settings):
    _publish(store_dir, tmp_path, kind, "bf16")
    manifest = json.loads((store_dir / "mlp" / "1.0.0" / "manifest.json").read_text())
    assert manifest["precision"] == "bf16"
    client = create_app(make_settings(model_uri=f"{store_dir.as_uri()}/mlp", device="cpu")).test_client()
    wait_ready(client)
    x = batch()
    r = client.post("/v2/models/mlp/infer", json={"inputs": [_v2(x)]})
    assert r.status_code == 200, r.get_json()
    out = r.get_json()["outputs"][0]
    assert out["datatype"] == "FP32"  # cast back to the signature's dtype
    got = np.array(out["data"], dtype=np.float32).reshape(out["shape"])
    want = reference(mlp(), x)
    np.testing.assert_allclose(got, want, rtol=0.05, atol=0.05)  # bf16 keeps 8 bits of mantissa
    assert not np.array_equal(got, want)  # it really ran in bf16, not fp32


@pytest.mark.skipif(cuda_available(), reason="checks the CPU refusal; with a GPU, auto serves fp16 on it")
@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_fp16_is_refused_on_cpu_with_a_clear_reason(device, store_dir, tmp_path, make_settings):
    _publish(store_dir, tmp_path, "torchscript", "fp16")
    client = create_app(make_settings(model_uri=f"{store_dir.as_uri()}/mlp", device=device)).test_client()
    body = _wait_failed(client)
    assert "fp16 is served on CUDA only" in body["error"] and "bf16" in body["error"]
    assert client.post("/v2/models/mlp/infer", json={"inputs": [_v2(batch())]}).status_code == 503


def test_publish_refuses_precision_for_onnx(store_dir, onnx_file):
    args = ["publish", str(onnx_file), "--name", "lin", "--version", "1", "--to", store_dir.as_uri()]
    result = CliRunner().invoke(main, [*args, "--precision", "fp16"])
    assert result.exit_code != 0 and "precision applies to torch models" in result.output
    assert not (store_dir / "lin").exists()


def _v2(x: np.ndarray) -> dict:
    return {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}


def _wait_failed(client) -> dict:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + 20  # bounds a hang only
    while time.monotonic() < deadline:
        r = client.get("/readyz")
        if r.status_code == 503 and r.get_json()["phase"] == "failed":
            return r.get_json()
        time.sleep(0.02)
    raise AssertionError(f"load did not fail: {client.get('/readyz').get_json()}")
