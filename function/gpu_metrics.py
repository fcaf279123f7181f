"""GPU figures on /metrics, read at scrape time: torch.cuda for the process, NVML (optional) for the device.

Gunicorn workers each hold their own CUDA context, and a scrape is answered by one worker, so the
device-wide series (total, used, utilisation) cover the whole container while the allocator series
(allocated, reserved) are the answering worker's and carry its ``pid``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from function.holder import LoadedModel

log = logging.getLogger("modelfn.metrics")
_nvml_lock = threading.Lock()
_nvml: Any = None  # the pynvml module once initialised; False when unavailable


@dataclass
class DeviceReading:
    """What could be read about the serving GPU; None where no source had it."""

    index: str
    name: str = "unknown"
    total: int | None = None
    used: int | None = None
    allocated: int | None = None
    reserved: int | None = None
    utilization: float | None = None


def nvml() -> Any:
    """pynvml (the nvidia-ml-py extra), initialised once; None without the package or the driver library."""
    global _nvml
    with _nvml_lock:
        if _nvml is None:
            try:
                module = importlib.import_module("pynvml")
                module.nvmlInit()
                _nvml = module
            except Exception as exc:  # ImportError, or NVMLError without a driver: utilisation is optional
                log.info("NVML unavailable, no GPU utilisation metric", extra={"fields": {"reason": str(exc)}})
                _nvml = False
        return _nvml or None


def _from_torch(reading: DeviceReading) -> str | None:
    """Fill in what torch.cuda knows (only when the model put torch on CUDA); the device's UUID for NVML."""
    torch = sys.modules.get("torch")  # never import torch just to report on it
    if torch is None or not torch.cuda.is_initialized():
        return None
    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    free, total = torch.cuda.mem_get_info(index)
    reading.index, reading.name, reading.total, reading.used = str(index), props.name, total, total - free
    reading.allocated = torch.cuda.memory_allocated(index)
    reading.reserved = torch.cuda.memory_reserved(index)
    return f"GPU-{props.uuid}"


def _from_nvml(reading: DeviceReading, uuid: str | None) -> None:
    """Utilisation (and name/memory when torch had none) from NVML, for torch and ONNX Runtime alike."""
    pynvml = nvml()
    if pynvml is None:
        return
    try:
        # CUDA_VISIBLE_DEVICES renumbers devices for CUDA but not for NVML; the UUID names the same one.
        handle = pynvml.nvmlDeviceGetHandleByUUID(uuid) if uuid else pynvml.nvmlDeviceGetHandleByIndex(0)
        reading.utilization = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100
        if reading.total is None:
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            reading.name, reading.total, reading.used = pynvml.nvmlDeviceGetName(handle), memory.total, memory.used
    except pynvml.NVMLError as exc:
        log.warning("NVML read failed", extra={"fields": {"error": str(exc)}})


def read_device() -> DeviceReading:
    """The serving GPU as torch and NVML see it from this process."""
    reading = DeviceReading(index="0")
    _from_nvml(reading, _from_torch(reading))
    return reading


class GpuCollector(Collector):
    """``modelfn_gpu_*`` series for the model serving on CUDA; nothing when it serves on CPU."""

    def __init__(self, model: LoadedModel | None) -> None:
        self._model = model

    def describe(self) -> list[Any]:
        return []  # read lazily at scrape time; describing would read the device at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        model = self._model
        if model is None or model.runtime.device != "cuda":
            return
        r = read_device()
        keys, values = ["gpu", "model", "version"], [r.index, model.name, model.version]
        info = GaugeMetricFamily("modelfn_gpu_info", "The GPU serving the model", labels=[*keys, "name", "provider"])
        info.add_metric([*values, r.name, model.runtime.provider], 1)
        yield info
        device = (("total", r.total, "Device memory"), ("used", r.used, "Device memory in use by all processes"))
        for name, value, doc in device:
            if value is not None:
                yield _gauge(f"modelfn_gpu_memory_{name}_bytes", doc, keys, values, value)
        process = (("allocated", r.allocated, "held by tensors"), ("reserved", r.reserved, "reserved by the allocator"))
        pid = [*values, str(os.getpid())]
        for name, value, doc in process:
            if value is not None:
                doc = f"GPU memory {doc} in the answering worker (torch)"
                yield _gauge(f"modelfn_gpu_memory_{name}_bytes", doc, [*keys, "pid"], pid, value)
        if r.utilization is not None:
            yield _gauge("modelfn_gpu_utilization_ratio", "GPU busy fraction (NVML)", keys, values, r.utilization)


def _gauge(name: str, doc: str, keys: list[str], values: list[str], value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=keys)
    family.add_metric(values, value)
    return family


def exposition(model: LoadedModel | None) -> bytes:
    """The GPU series in the text format, to append to the rest of /metrics (any registry mode)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GpuCollector(model))
    return generate_latest(registry)


def app_exposition() -> bytes:
    """``exposition`` for the current app's serving model (called inside the /metrics request)."""
    from function.context import context  # context imports metrics, which imports this module

    return exposition(context().holder.model)
