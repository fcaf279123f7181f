"""ONNX Runtime: CUDA execution provider when present (or required), else CPU."""

from __future__ import annotations

import numpy as np

from loader.artifacts import LocalArtifact
from loader.errors import DeviceUnavailable, InferenceInputError, ModelExecutionError, RuntimeLoadError
from loader.manifest import Framework
from loader.runtimes.base import DeviceChoice, RuntimeOptions

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def choose_providers(available: list[str], device: DeviceChoice) -> list[str]:
    """Providers to ask for, in priority order; ``cuda`` without CUDA is an error, not a fallback."""
    if device is DeviceChoice.CPU:
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if device is DeviceChoice.CUDA:
        raise DeviceUnavailable(f"DEVICE=cuda but onnxruntime offers only {available}")
    return [CPU]


class OnnxRuntime:
    """An ``onnxruntime.InferenceSession`` over the artifact's model file."""

    def __init__(self, framework: Framework, device: DeviceChoice, options: RuntimeOptions | None = None) -> None:
        self.requested = device
        self.options = options or RuntimeOptions()
        self.device = "cpu"
        self.provider = CPU
        self._session = None
        self._outputs: list[str] = []

    def load(self, artifact: LocalArtifact) -> None:
        """Create the session and record the provider it really got."""
        import onnxruntime as ort

        providers = choose_providers(ort.get_available_providers(), self.requested)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.options.intra_op_threads is not None:
            options.intra_op_num_threads = self.options.intra_op_threads
        options.inter_op_num_threads = self.options.inter_op_threads
        if not self.options.spin_wait:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(str(artifact.model_path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad models
            raise RuntimeLoadError(f"onnxruntime cannot load {artifact.manifest.model_file}: {exc}") from None
        active = session.get_providers()
        # ORT silently drops a provider whose libraries fail to load; an explicit cuda request must not.
        if self.requested is DeviceChoice.CUDA and CUDA not in active:
            raise DeviceUnavailable(f"DEVICE=cuda but the session fell back to {active}")
        self.provider = active[0]
        self.device = "cuda" if self.provider == CUDA else "cpu"
        self._outputs = [o.name for o in session.get_outputs()]
        self._session = session

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the session; outputs keyed by name."""
        assert self._session is not None, "load() first"
        from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

        try:
            results = self._session.run(self._outputs, inputs)
        except InvalidArgument as exc:  # e.g. dynamic dims that disagree between inputs
            raise InferenceInputError(f"the model rejected the inputs: {_first_line(exc)}") from None
        except Exception as exc:
            raise ModelExecutionError(f"model execution failed: {_first_line(exc)}") from exc
        return dict(zip(self._outputs, (np.asarray(r) for r in results), strict=True))


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
