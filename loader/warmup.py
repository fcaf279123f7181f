"""Warm-up: dummy batches shaped by the signature, run before a model is marked ready."""

from __future__ import annotations

import numpy as np

from loader.errors import ModelfnError, RuntimeLoadError
from loader.manifest import TensorSpec
from loader.runtimes import Runtime
from loader.signature import V2_TO_NUMPY

# The first CUDA batches pay context creation, kernel selection and allocator growth; one CPU batch
# pays lazy initialisation (thread pools, ORT's first run) only.
DEFAULT_BATCHES = {"cuda": 2, "cpu": 1}


def dummy_inputs(specs: list[TensorSpec], dynamic_size: int) -> dict[str, np.ndarray]:
    """Zeros of each input's datatype and shape, dynamic dimensions set to ``dynamic_size``."""
    return {
        s.name: np.zeros([dynamic_size if d == -1 else d for d in s.shape], dtype=V2_TO_NUMPY[s.datatype])
        for s in specs
    }


def batches_for(runtime: Runtime, configured: int | None) -> int:
    """The configured number of warm-up batches, or the device's default."""
    return DEFAULT_BATCHES.get(runtime.device, 1) if configured is None else configured


def warm_up(runtime: Runtime, specs: list[TensorSpec], batches: int, dynamic_size: int) -> None:
    """Run ``batches`` dummy batches; a failure fails the load with the reason and the knobs to turn."""
    inputs = dummy_inputs(specs, dynamic_size)
    for _ in range(batches):
        try:
            runtime.predict(inputs)
        except ModelfnError as exc:
            raise RuntimeLoadError(
                f"warm-up batch failed (zeros, dynamic dimensions = {dynamic_size}; "
                f"set WARMUP_DYNAMIC_SIZE, or WARMUP_BATCHES=0 to skip): {exc}"
            ) from None
