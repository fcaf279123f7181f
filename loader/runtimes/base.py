"""The runtime protocol: ``load()`` once per process, ``predict()`` per request."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

import numpy as np

from loader.artifacts import LocalArtifact


class DeviceChoice(StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class Runtime(Protocol):
    """A loaded model; ``device`` and ``provider`` say where it actually runs."""

    device: str
    provider: str

    def load(self, artifact: LocalArtifact) -> None:
        """Load the artifact's model file onto the chosen device."""
        ...

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; inputs are already validated against the signature and ordered."""
        ...
