"""The GPU suite: CPU checks run everywhere; ``requires_cuda`` tests run on a machine with a CUDA device."""

from __future__ import annotations

import pytest


def cuda_available() -> bool:
    """True when torch is installed and sees a CUDA device."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


GPU_ONLY = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_available(), reason="no CUDA device visible to torch (runs on a GPU machine)"),
]
