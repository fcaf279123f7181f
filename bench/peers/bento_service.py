"""BentoML 1.4 peer: one ONNX session behind an adaptive-batching (``batchable=True``) API.

Served with ``bentoml serve bento_service:OnnxModel`` (production mode); BENCH_MODEL_PATH names the ONNX file.
"""

from __future__ import annotations

import os

import bentoml
import numpy as np


@bentoml.service(traffic={"timeout": 60})
class OnnxModel:
    """The model's first input and output, batched along dimension 0."""

    def __init__(self) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(os.environ["BENCH_MODEL_PATH"], providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    @bentoml.api(batchable=True, max_batch_size=128, max_latency_ms=1000)
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Rows in, rows out."""
        return self.session.run(None, {self.input: x.astype(np.float32, copy=False)})[0]
