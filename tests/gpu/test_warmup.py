"""Warm-up at load: dummy batches shaped by the signature run before READY, timed as their own phase."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from function.app import create_app
from function.holder import Phase
from function.metrics import create_metrics
from function.serving import loader_for
from loader.manifest import TensorSpec
from loader.uri import parse_model_uri
from tests.conftest import wait_ready
from tests.gpu.test_precision import _wait_failed
from tests.logs import captured
from tests.models import publish_model

torch = pytest.importorskip("torch")
IO = {
    "inputs": [TensorSpec(name="x", datatype="FP32", shape=[-1, 2])],
    "outputs": [TensorSpec(name="calls", datatype="FP32", shape=[-1, 2])],
}


class CountsCalls(torch.nn.Module):
    """Returns how many batches it has run so far (its own counter), shaped like the input."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.add_(1)
        return x * 0 + self.calls


class WantsBatchOfThree(torch.nn.Module):
    """Fails on any batch size but 3, like a model whose dynamic dimension has a minimum."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != 3:
            raise RuntimeError("batch must be 3")
        return x


def _publish(store_dir: Path, tmp_path: Path, module: torch.nn.Module) -> str:
    path = tmp_path / "m.pt"
    torch.jit.script(module).save(str(path))
    publish_model(store_dir.as_uri(), path, name="w", **IO)
    return f"{store_dir.as_uri()}/w"


def _calls_seen_by_first_request(client, n: int = 1) -> float:  # type: ignore[no-untyped-def]
    r = client.post("/v1/models/w:predict", json={"instances": [[1.0, 2.0]] * n})
    assert r.status_code == 200, r.get_json()
    return float(r.get_json()["predictions"][0][0])


@pytest.mark.parametrize(("configured", "run"), [(None, 1), (0, 0), (3, 3)])
def test_warmup_runs_the_configured_batches_before_ready(configured, run, store_dir, tmp_path, make_settings):
    uri = _publish(store_dir, tmp_path, CountsCalls())
    client = create_app(make_settings(model_uri=uri, device="cpu", warmup_batches=configured)).test_client()
    wait_ready(client)
    assert _calls_seen_by_first_request(client) == run + 1  # default on CPU: one batch
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "modelfn_model_warmup_seconds_count 1.0" in metrics
    assert "modelfn_model_load_seconds_count 1.0" in metrics


def test_warmup_is_its_own_phase_and_log_field(store_dir, tmp_path, make_settings):
    uri = _publish(store_dir, tmp_path, CountsCalls())
    settings = make_settings(model_uri=uri, device="cpu", warmup_batches=2)
    phases: list[Phase] = []
    with captured("modelfn.model") as records:
        model = loader_for(parse_model_uri(uri), settings, create_metrics(CollectorRegistry()))(phases.append)
    assert phases == [Phase.FETCHING, Phase.LOADING, Phase.WARMING]
    [ready] = [r for r in records if r.getMessage() == "model ready"]
    fields = ready.fields  # type: ignore[attr-defined]
    assert fields["warmup_batches"] == 2 and fields["warmup_seconds"] >= 0 and "load_seconds" in fields
    assert model.runtime.predict({"x": np.ones((1, 2), np.float32)})["calls"][0, 0] == 3


def test_a_failing_warmup_fails_the_load_with_the_knobs_to_turn(store_dir, tmp_path, make_settings):
    uri = _publish(store_dir, tmp_path, WantsBatchOfThree())
    client = create_app(make_settings(model_uri=uri, device="cpu")).test_client()
    body = _wait_failed(client)
    assert "warm-up batch failed" in body["error"] and "WARMUP_DYNAMIC_SIZE" in body["error"]
    assert "modelfn_model_load_failures_total 1.0" in client.get("/metrics").get_data(as_text=True)


def test_dynamic_dimensions_take_the_configured_size(store_dir, tmp_path, make_settings):
    uri = _publish(store_dir, tmp_path, WantsBatchOfThree())
    client = create_app(make_settings(model_uri=uri, device="cpu", warmup_dynamic_size=3)).test_client()
    wait_ready(client)
    assert client.post("/v1/models/w:predict", json={"instances": [[1.0, 2.0]] * 3}).status_code == 200


def test_onnx_models_warm_up_too(published, make_settings):
    client = create_app(make_settings(model_uri=f"{published}/lin", warmup_batches=2)).test_client()
    wait_ready(client)
    assert "modelfn_model_warmup_seconds_count 1.0" in client.get("/metrics").get_data(as_text=True)
    assert client.get("/readyz").get_json()["provider"] == "CPUExecutionProvider"
