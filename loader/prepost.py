"""Declarative pre/post-processing from the manifest, applied by the simple /v1 API."""

from __future__ import annotations

from typing import Any

import numpy as np

from loader.errors import InferenceInputError
from loader.manifest import PostProcessing, PreProcessing


def preprocess(x: np.ndarray, spec: PreProcessing) -> np.ndarray:
    """``(x * scale - mean) / std``, with mean/std broadcast along the last axis."""
    if spec.scale is not None:
        x = x * x.dtype.type(spec.scale)
    for values, op in ((spec.mean, np.subtract), (spec.std, np.divide)):
        if values is None:
            continue
        vector = np.asarray(values, dtype=x.dtype)
        if vector.size not in (1, x.shape[-1]):
            raise InferenceInputError(
                f"each instance needs {vector.size} features along its last axis, got {x.shape[-1]}"
            )
        x = op(x, vector)
    return x


def softmax(x: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def postprocess(y: np.ndarray, spec: PostProcessing) -> list[Any]:
    """One prediction per instance: raw values, or ranked ``{label|index, score}`` entries."""
    if spec.softmax:
        y = softmax(y.astype(np.float64))
    if spec.labels is None and spec.top_k is None:
        return y.tolist()
    k = min(spec.top_k or 1, y.shape[-1])
    flat = y.reshape(-1, y.shape[-1])
    ranked = np.argsort(-flat, axis=-1, kind="stable")[:, :k]
    predictions = []
    for row, order in zip(flat, ranked, strict=True):
        entries = [_entry(int(i), float(row[i]), spec.labels) for i in order]
        predictions.append(entries)
    return predictions


def _entry(index: int, score: float, labels: list[str] | None) -> dict[str, Any]:
    if labels is None:
        return {"index": index, "score": score}
    return {"label": labels[index], "index": index, "score": score}
