"""Reference distributions for drift: quantile bins per feature, and the population stability index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from loader.errors import InvalidArgument
from loader.manifest import FeatureBins, Manifest, PostProcessing
from loader.prepost import softmax

BINS = 10
MAX_FEATURES = 64  # per-feature windows and gauges are for tabular inputs; images would need embeddings
EPSILON = 1e-4  # share given to empty bins so PSI stays finite


def read_sample(path: Path, manifest: Manifest) -> np.ndarray:
    """Rows of the model's first input as /v1 instances would carry them (.npy, .jsonl or .parquet)."""
    first = manifest.inputs[0].name
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            rows = np.load(path, allow_pickle=False)
        elif suffix == ".jsonl":
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            rows = np.asarray([row[first] if isinstance(row, dict) else row for row in lines], dtype=np.float64)
        elif suffix == ".parquet":
            rows = _parquet(path)
        else:
            raise InvalidArgument(f"reference sample must be .npy, .jsonl or .parquet, not {suffix or 'no suffix'!r}")
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise InvalidArgument(f"cannot read reference sample {path.name}: {type(exc).__name__}") from None
    if rows.ndim < 1 or len(rows) < BINS or rows.dtype.kind not in "biuf":
        raise InvalidArgument(f"reference sample needs at least {BINS} numeric rows of input {first!r}")
    return rows


def _parquet(path: Path) -> np.ndarray:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidArgument("a .parquet reference needs pyarrow (pip install pyarrow)") from None
    table = pq.read_table(path)
    return np.column_stack([table.column(i).to_numpy(zero_copy_only=False) for i in range(table.num_columns)])


def features(rows: np.ndarray) -> np.ndarray:
    """``(N, ...)`` -> ``(N, F)`` float64, one column per feature."""
    matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    if matrix.shape[1] > MAX_FEATURES:
        raise InvalidArgument(f"drift reference supports up to {MAX_FEATURES} features per row, got {matrix.shape[1]}")
    return matrix


def quantile_bins(name: str, values: np.ndarray, bins: int = BINS) -> FeatureBins:
    """Bins at the reference's quantiles (ties merged) and the reference share of each."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise InvalidArgument(f"reference feature {name!r} has no finite values")
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=len(edges) + 1)
    return FeatureBins(name=name, edges=edges.tolist(), expected=(counts / counts.sum()).tolist())


def top_scores(first_output: np.ndarray, post: PostProcessing) -> np.ndarray:
    """The top score per row (after the manifest's softmax), the quantity confidence and output drift use."""
    y = np.asarray(first_output, dtype=np.float64).reshape(len(first_output), -1)
    if post.softmax:
        y = softmax(y)
    return np.asarray(y.max(axis=1))


def psi(expected: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Population stability index per row of observed bin counts ``(F, B)`` against expected shares ``(F, B)``."""
    totals = counts.sum(axis=-1, keepdims=True)
    actual = np.maximum(counts / np.maximum(totals, 1), EPSILON)
    wanted = np.maximum(expected, EPSILON)
    return np.asarray(np.sum((actual - wanted) * np.log(actual / wanted), axis=-1))
