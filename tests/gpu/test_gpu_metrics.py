"""GPU metrics and device reporting without a GPU: nothing invented, nothing broken, the device named."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from function import gpu_metrics
from function.gpu_metrics import exposition
from tests.gpu.conftest import cuda_available

pytestmark = pytest.mark.skipif(cuda_available(), reason="checks the reporting of a process without CUDA")


def test_a_cpu_model_reports_no_gpu_series_and_names_its_device(client):
    text = client.get("/metrics").get_data(as_text=True)
    assert "modelfn_gpu_" not in text
    assert re.search(r'^modelfn_model_info\{.*device="cpu".*provider="CPUExecutionProvider".*\} 1\.0$', text, re.M)
    ready = client.get("/readyz").get_json()
    assert (ready["device"], ready["provider"]) == ("cpu", "CPUExecutionProvider")


def test_cuda_model_without_a_readable_device_reports_only_its_identity(client):
    # A runtime claiming CUDA in a process where torch.cuda never initialised (e.g. ONNX Runtime on CUDA)
    # and NVML cannot load: the collector must still answer, with what it knows and no made-up figures.
    pytest.importorskip("torch")
    model = client.application.extensions["modelfn"].holder.model
    runtime = type("CudaClaim", (), {"device": "cuda", "provider": "CUDAExecutionProvider"})()
    text = exposition(replace(model, runtime=runtime)).decode()
    assert (
        'modelfn_gpu_info{gpu="0",model="lin",name="unknown",provider="CUDAExecutionProvider",version="1.0.0"} 1.0'
        in text
    )
    assert "memory" not in text and "utilization" not in text
    # /metrics appends these to the registry's (or the multiprocess aggregate's) text: still one valid document.
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    registry = client.application.extensions["modelfn"].metrics.registry
    names = [f.name for f in text_string_to_metric_families((generate_latest(registry) + text.encode()).decode())]
    assert "modelfn_gpu_info" in names and "modelfn_model_info" in names and len(names) == len(set(names))


def test_nvml_is_optional_and_tried_once(monkeypatch):
    import importlib

    calls = []
    real = importlib.import_module

    def spy(name: str, *args: object) -> object:
        calls.append(name)
        return real(name, *args)

    monkeypatch.setattr(gpu_metrics, "_nvml", None)
    monkeypatch.setattr(gpu_metrics.importlib, "import_module", spy)
    assert gpu_metrics.nvml() is None and gpu_metrics.nvml() is None  # no driver library on this machine
    assert calls == ["pynvml"]
