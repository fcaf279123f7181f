"""Fixture models for the GPU suite: an MLP with random weights in both torch formats, made by the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from loader.manifest import TensorSpec

IN, HIDDEN, OUT = 64, 256, 10
MLP_IO = {
    "inputs": [TensorSpec(name="x", datatype="FP32", shape=[-1, IN])],
    "outputs": [TensorSpec(name="y", datatype="FP32", shape=[-1, OUT])],
}


def mlp(hidden: int = HIDDEN, seed: int = 0) -> Any:
    """A two-layer MLP with seeded random weights, in eval mode."""
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(IN, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, OUT)).eval()


def save(module: Any, kind: str, path: Path) -> Path:
    """The module as TorchScript (``torchscript``) or a torch.export program (``torch_export``)."""
    import torch

    if kind == "torchscript":
        torch.jit.script(module).save(str(path))
    else:
        batch = torch.export.Dim("batch", min=1, max=4096)
        program = torch.export.export(module, (torch.zeros(2, IN),), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(path))
    return path


def reference(module: Any, x: np.ndarray) -> np.ndarray:
    """The fp32 CPU answer."""
    import torch

    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()


def batch(n: int = 8, seed: int = 1) -> np.ndarray:
    """Inputs of the MLP's signature."""
    return np.random.default_rng(seed).standard_normal((n, IN)).astype(np.float32)
