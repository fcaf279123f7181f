"""Runtimes keyed by the manifest's framework, imported only when a model of that kind loads."""

from __future__ import annotations

import importlib

from loader.manifest import Framework
from loader.runtimes.base import DeviceChoice, Runtime

_REGISTRY: dict[Framework, str] = {
    Framework.ONNX: "loader.runtimes.onnx:OnnxRuntime",
    Framework.TORCHSCRIPT: "loader.runtimes.torch:TorchRuntime",
    Framework.TORCH_EXPORT: "loader.runtimes.torch:TorchRuntime",
}

__all__ = ["DeviceChoice", "Runtime", "create_runtime"]


def create_runtime(framework: Framework, device: DeviceChoice) -> Runtime:
    """A not-yet-loaded runtime for a framework on the requested device."""
    module_name, _, attr = _REGISTRY[framework].partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    runtime: Runtime = factory(framework, device)
    return runtime
