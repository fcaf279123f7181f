"""PyTorch: TorchScript (``torch.jit.load``) and ``torch.export`` programs, on CUDA when available."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from loader.artifacts import LocalArtifact
from loader.errors import DeviceUnavailable, ModelExecutionError, RuntimeLoadError
from loader.manifest import Framework
from loader.runtimes.base import DeviceChoice, RuntimeOptions


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise RuntimeLoadError("this model needs PyTorch: pip install 'modelfn[torch]'") from None
    return torch


class TorchRuntime:
    """Positional inputs in signature order; a tuple/list output maps onto the output names."""

    def __init__(self, framework: Framework, device: DeviceChoice, options: RuntimeOptions | None = None) -> None:
        self.framework = framework
        self.options = options or RuntimeOptions()
        self.requested = device
        self.device = "cpu"
        self.provider = f"torch-{framework.value}"
        self._module: Any = None
        self._outputs: list[str] = []

    def load(self, artifact: LocalArtifact) -> None:
        """Load onto the chosen device and switch to inference mode."""
        torch = _torch()
        if self.options.intra_op_threads is not None:
            torch.set_num_threads(self.options.intra_op_threads)  # process-wide: one model per process
        self.device = self._choose_device(torch)
        path = str(artifact.model_path)
        try:
            if self.framework is Framework.TORCHSCRIPT:
                with warnings.catch_warnings():
                    # torch deprecates TorchScript in favour of torch.export; we support both on purpose.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    module = torch.jit.load(path, map_location=self.device)
                module.eval()
            else:
                module = torch.export.load(path).module().to(self.device)
        except Exception as exc:  # torch raises a variety of untyped errors for bad files
            raise RuntimeLoadError(f"torch cannot load {artifact.manifest.model_file}: {exc}") from None
        self._module = module
        self._outputs = [o.name for o in artifact.manifest.outputs]

    def _choose_device(self, torch: Any) -> str:
        if self.requested is DeviceChoice.CPU:
            return "cpu"
        if torch.cuda.is_available():
            return "cuda"
        if self.requested is DeviceChoice.CUDA:
            raise DeviceUnavailable("DEVICE=cuda but torch.cuda.is_available() is False")
        return "cpu"

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the module under ``inference_mode`` and bring outputs back to numpy."""
        torch = _torch()
        tensors = [torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in inputs.values()]
        try:
            with torch.inference_mode():
                result = self._module(*tensors)
        except Exception as exc:  # the model's own failure, after the signature check passed
            raise ModelExecutionError(f"model execution failed: {type(exc).__name__}") from exc
        outputs = list(result) if isinstance(result, (tuple, list)) else [result]
        if len(outputs) != len(self._outputs):
            raise ModelExecutionError(f"model returned {len(outputs)} outputs, manifest declares {len(self._outputs)}")
        return {name: t.detach().cpu().numpy() for name, t in zip(self._outputs, outputs, strict=True)}
