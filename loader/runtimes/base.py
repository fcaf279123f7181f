"""The runtime protocol: ``load()`` once per process, ``predict()`` per request."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np

from loader.artifacts import LocalArtifact


class DeviceChoice(StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


@dataclass(frozen=True)
class RuntimeOptions:
    """How the runtime may use the CPUs; the function derives them from the container's quota."""

    intra_op_threads: int | None = None  # None: the runtime's own default (all host cores)
    inter_op_threads: int = 1
    # ORT: intra-op threads busy-wait after a run (lower latency). A second session beside the serving one
    # (a canary, a shadow) turns it off: its idle spinning threads would take the CPUs from the other's runs.
    spin_wait: bool = True


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
