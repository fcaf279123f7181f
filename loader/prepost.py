"""Declarative pre/post-processing from the manifest, applied by the simple /v1 API."""

from __future__ import annotations

from typing import Any

import numpy as np

from loader.errors import InferenceInputError, ManifestInvalid
from loader.manifest import PostProcessing, PreProcessing, TensorSpec


def preprocess(x: np.ndarray, spec: PreProcessing) -> np.ndarray:
    """``(x * scale - mean) / std``, mean/std broadcast along the last axis; computed in floating point, cast once."""
    if spec.scale is None and spec.mean is None and spec.std is None:
        return x
    # Integer inputs are computed in float64 (an int scale of 1/255 or an int mean would truncate every value).
    work = x.astype(np.float64) if x.dtype.kind in "biu" else x
    if spec.scale is not None:
        work = work * work.dtype.type(spec.scale)
    for values, op in ((spec.mean, np.subtract), (spec.std, np.divide)):
        if values is None:
            continue
        vector = np.asarray(values, dtype=work.dtype)
        if vector.size not in (1, work.shape[-1]):
            raise InferenceInputError(
                f"each instance needs {vector.size} features along its last axis, got {work.shape[-1]}"
            )
        work = op(work, vector)
    return work if work.dtype == x.dtype else _cast_back(work, x.dtype)


def check_preprocessing(spec: PreProcessing, first_input: TensorSpec) -> None:
    """Refuse (at publish) pre-processing whose float results an integer input could only truncate."""
    has_any = spec.scale is not None or spec.mean is not None or spec.std is not None
    if has_any and not first_input.datatype.startswith("FP"):
        raise ManifestInvalid(
            f"pre-processing (scale/mean/std) needs a floating-point first input; {first_input.name!r} is "
            f"{first_input.datatype}: cast inside the model, or publish without --scale/--mean/--std"
        )


def _cast_back(work: np.ndarray, dtype: np.dtype) -> np.ndarray:
    # Manifests published before check_preprocessing existed: round once, and refuse values the dtype cannot hold.
    if dtype.kind == "b":
        return work != 0
    info = np.iinfo(dtype)
    rounded = np.rint(work)
    if rounded.size and (not np.isfinite(rounded).all() or rounded.min() < info.min or rounded.max() > info.max):
        raise InferenceInputError(f"pre-processed values are out of range for the model's input dtype {dtype.name}")
    return rounded.astype(dtype)


def softmax(x: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def unranked(y: np.ndarray, spec: PostProcessing) -> np.ndarray | None:
    """The predictions as one array when the spec ranks nothing (a JSON encoder can write it without Python)."""
    if spec.labels is not None or spec.top_k is not None:
        return None
    return softmax(y.astype(np.float64)) if spec.softmax else y


def postprocess(y: np.ndarray, spec: PostProcessing) -> list[Any]:
    """One prediction per instance: raw values, or ranked ``{label|index, score}`` entries."""
    values = unranked(y, spec)
    if values is not None:
        return values.tolist()
    if spec.softmax:
        y = softmax(y.astype(np.float64))
    k = min(spec.top_k or 1, y.shape[-1])
    flat = y.reshape(-1, y.shape[-1])
    ranked = np.argsort(-flat, axis=-1, kind="stable")[:, :k]
    # Two tolist() calls instead of a numpy scalar per entry: the dicts are the only per-entry Python work.
    scores = np.take_along_axis(flat, ranked, axis=-1).astype(np.float64).tolist()
    pairs = zip(ranked.tolist(), scores, strict=True)
    if spec.labels is None:
        return [[{"index": i, "score": v} for i, v in zip(order, row, strict=True)] for order, row in pairs]
    labels = spec.labels
    return [
        [{"label": labels[i], "index": i, "score": v} for i, v in zip(order, row, strict=True)] for order, row in pairs
    ]
