"""MLServer 1.7 peer: a small custom runtime that runs the model's first input through onnxruntime."""

from __future__ import annotations

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OrtRuntime(MLModel):
    """``parameters.uri`` is the ONNX file."""

    async def load(self) -> bool:
        """Create the session once."""
        self._session = ort.InferenceSession(self.settings.parameters.uri, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """V2 request in, V2 response out (NumpyCodec both ways)."""
        x = NumpyCodec.decode_input(payload.inputs[0])
        results = self._session.run(None, {self._input: x})
        outputs = [NumpyCodec.encode_output(name, y) for name, y in zip(self._outputs, results, strict=True)]
        return InferenceResponse(model_name=self.name, outputs=outputs)
