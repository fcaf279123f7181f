"""On a CUDA machine: both torch formats in every precision equal the CPU answer, served by the real server."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from function.app import create_app
from loader.artifacts import LocalArtifact, fetch
from loader.cache import ArtifactCache
from loader.runtimes import DeviceChoice, Runtime, create_runtime
from loader.stores import open_store
from loader.uri import parse_model_uri
from tests.gpu import server as gpu_server
from tests.gpu.conftest import GPU_ONLY
from tests.gpu.models import IN, MLP_IO, batch, mlp, reference, save
from tests.gpu.test_precision import _wait_failed
from tests.models import publish_model

pytestmark = GPU_ONLY
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 3e-2}  # absolute, on outputs of magnitude ~1
SUFFIX = {"torchscript": "m.pt", "torch_export": "m.pt2"}


def _artifact(store_dir: Path, tmp_path: Path, kind: str, precision: str) -> LocalArtifact:
    path = save(mlp(), kind, tmp_path / SUFFIX[kind])
    publish_model(store_dir.as_uri(), path, name="mlp", precision=precision, **MLP_IO)
    uri = parse_model_uri(f"{store_dir.as_uri()}/mlp@1.0.0")
    return fetch(open_store(uri.store), uri, ArtifactCache(tmp_path / "cache"))


def _runtime(artifact: LocalArtifact, device: DeviceChoice) -> Runtime:
    runtime = create_runtime(artifact.manifest.framework, device)
    runtime.load(artifact)
    return runtime


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("kind", ["torchscript", "torch_export"])
def test_cuda_predictions_equal_cpu(kind, precision, store_dir, tmp_path):
    artifact = _artifact(store_dir, tmp_path, kind, precision)
    cuda = _runtime(artifact, DeviceChoice.CUDA)
    assert cuda.device == "cuda"
    x = batch(64)
    got = cuda.predict({"x": x})["y"]
    assert got.dtype == np.float32  # cast back to the signature's datatype
    want = reference(mlp(), x)
    np.testing.assert_allclose(got, want, atol=TOLERANCE[precision], rtol=0)
    if precision != "fp32":
        assert not np.array_equal(got, want)  # it really ran in half precision
    if precision != "fp16":  # fp16 is refused on CPU; bf16 and fp32 run on both
        cpu = _runtime(artifact, DeviceChoice.CPU)
        np.testing.assert_allclose(got, cpu.predict({"x": x})["y"], atol=TOLERANCE[precision], rtol=0)


@pytest.fixture
def served(tmp_path: Path, store_dir: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "model").mkdir()
    publish_model(store_dir.as_uri(), save(mlp(), "torchscript", tmp_path / "model" / "m.pt"), name="mlp", **MLP_IO)
    server = gpu_server.start(tmp_path, f"{store_dir.as_uri()}/mlp", DEVICE="cuda", THREADS="16")
    yield server
    server.stop()


def test_server_on_cuda_answers_v1_and_v2_and_reports_the_gpu(served):
    import torch

    x = batch(4)
    want = reference(mlp(), x)
    status, body = served.post_json("/v1/models/mlp:predict", {"instances": x.tolist()})
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], want, atol=1e-4)
    v2 = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [4, IN], "data": x.ravel().tolist()}]}
    status, body = served.post_json("/v2/models/mlp/infer", v2)
    assert status == 200, body
    np.testing.assert_allclose(np.reshape(body["outputs"][0]["data"], (4, -1)), want, atol=1e-4)
    np.testing.assert_allclose(served.infer_binary("mlp", "x", x, "y"), want, atol=1e-4)
    ready = served.get("/readyz")
    assert ready[0] == 200 and b'"device":"cuda"' in ready[1].replace(b" ", b"")
    text = served.get("/metrics")[1].decode()
    name = re.escape(torch.cuda.get_device_name(0))
    assert re.search(rf'^modelfn_gpu_info\{{.*name="{name}".*\}} 1\.0$', text, re.M), text
    assert re.search(r'^modelfn_model_info\{.*device="cuda".*provider="torch-torchscript".*\} 1\.0$', text, re.M)
    allocated = re.search(r"^modelfn_gpu_memory_allocated_bytes\{.*\} ([0-9.e+]+)$", text, re.M)
    total = re.search(r"^modelfn_gpu_memory_total_bytes\{.*\} ([0-9.e+]+)$", text, re.M)
    assert allocated and total and 0 < float(allocated.group(1)) < float(total.group(1))
    assert "modelfn_model_warmup_seconds_count 1.0" in text


def test_concurrent_requests_on_the_gpu_each_get_their_own_answer(served):
    inputs = [batch(1 + i % 7, seed=i) for i in range(256)]
    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(lambda x: served.infer_binary("mlp", "x", x, "y"), inputs))
    for x, got in zip(inputs, results, strict=True):
        np.testing.assert_allclose(got, reference(mlp(), x), atol=1e-4)


def test_a_model_too_large_for_gpu_memory_fails_the_load_with_a_reason(store_dir, tmp_path, make_settings):
    import torch

    # Leave 256 MiB free, then load ~0.9 GiB of weights (64x3Mi + 3Mi x10 fp32); the process must survive it.
    torch.cuda.empty_cache()  # blocks cached by earlier tests would otherwise count as taken
    free, _ = torch.cuda.mem_get_info()
    filler = torch.empty(free - 256 * 2**20, dtype=torch.uint8, device="cuda")
    path = save(mlp(hidden=3 * 2**20), "torchscript", tmp_path / "big.pt")
    publish_model(store_dir.as_uri(), path, name="big", **MLP_IO)
    client = create_app(make_settings(model_uri=f"{store_dir.as_uri()}/big", device="cuda")).test_client()
    body = _wait_failed(client)
    assert "does not fit in GPU memory" in body["error"] and "GiB free" in body["error"]
    del filler
    torch.cuda.empty_cache()
    # The holder retries; with the memory back the same process loads it.
    from tests.conftest import wait_ready

    wait_ready(client, timeout=120)
