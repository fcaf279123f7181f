"""Runtimes keyed by the manifest's framework, imported only when a model of that kind loads."""

from __future__ import annotations

import importlib

from loader.manifest import Framework
from loader.runtimes.base import DeviceChoice, Runtime, RuntimeOptions

_REGISTRY: dict[Framework, str] = {
    Framework.ONNX: "loader.runtimes.onnx:OnnxRuntime",
    Framework.TORCHSCRIPT: "loader.runtimes.torch:TorchRuntime",
    Framework.TORCH_EXPORT: "loader.runtimes.torch:TorchRuntime",
}

__all__ = ["DeviceChoice", "Runtime", "RuntimeOptions", "create_runtime"]


def create_runtime(framework: Framework, device: DeviceChoice, options: RuntimeOptions | None = None) -> Runtime:
    """A not-yet-loaded runtime for a framework on the requested device, with its thread budget."""
    module_name, _, attr = _REGISTRY[framework].partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    runtime: Runtime = factory(framework, device, options or RuntimeOptions())
    return runtime
