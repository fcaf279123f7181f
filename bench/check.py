"""Answers are checked before a server is loaded: wrong numbers must not count as throughput."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

HEADER = "Inference-Header-Content-Length"


def first_output(kind: str, body: bytes, headers: Mapping[str, str]) -> np.ndarray:
    """The first output tensor of a response of this request kind."""
    if kind == "v2-binary" and HEADER in headers:
        length = int(headers[HEADER])
        out = json.loads(body[:length])["outputs"][0]
        size = out["parameters"]["binary_data_size"]
        return np.frombuffer(body[length : length + size], "<f4").reshape(out["shape"])
    doc = json.loads(body)
    if kind.startswith("v2"):
        out = doc["outputs"][0]
        return np.asarray(out["data"], np.float32).reshape(out["shape"])
    if kind == "v1-json":
        return np.asarray(doc["predictions"], np.float32)
    return np.asarray(doc, np.float32)  # BentoML returns the array itself


def verify(server: str, kind: str, body: bytes, headers: Mapping[str, str], want: np.ndarray) -> None:
    """Raise when the answer differs from onnxruntime's own output for the same row."""
    try:
        got = first_output(kind, body, headers).reshape(want.shape)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise RuntimeError(f"{server} {kind}: unreadable answer ({exc}): {body[:200]!r}") from None
    if not np.allclose(got, want, rtol=1e-3, atol=1e-4):
        raise RuntimeError(
            f"{server} {kind}: answer differs from onnxruntime (max abs diff {abs(got - want).max():.3g})"
        )


def expected(onnx: str, row: np.ndarray) -> np.ndarray:
    """onnxruntime's output for ``row`` (first output)."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: row})[0])
