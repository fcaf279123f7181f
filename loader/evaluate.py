"""Run a model locally on an evaluation set (and a drift reference) in a fresh process, the way a worker would.

The child process makes ``peak_rss_mb`` the memory of one process that loaded the model and served the
set, not of whatever the caller (a CLI, a test runner) already holds.
"""

from __future__ import annotations

import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loader.artifacts import LocalArtifact
from loader.cache import FetchStats
from loader.errors import InvalidArgument, ModelfnError
from loader.manifest import Manifest, Reference
from loader.prepost import preprocess
from loader.reference import features, quantile_bins, read_sample, top_scores
from loader.runtimes import DeviceChoice, Runtime, create_runtime
from loader.signature import V2_TO_NUMPY, check_inputs

_CHILD_ERROR = 3


@dataclass(frozen=True)
class LocalRun:
    """What the child measured: metrics of the evaluation set and/or the drift reference."""

    metrics: dict[str, float]
    examples: int
    dataset_sha256: str | None
    reference: Reference | None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def run_locally(
    manifest: Manifest,
    sources: dict[str, Path],
    eval_path: Path | None,
    reference_path: Path | None,
    batch: int = 1,
    device: str = "auto",
) -> LocalRun:
    """Stage the files as an artifact directory and evaluate in a child Python process."""
    with tempfile.TemporaryDirectory(prefix="modelfn-eval-") as tmp:
        staged = Path(tmp) / "artifact"
        staged.mkdir()
        for rel, src in sources.items():
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            (staged / rel).symlink_to(src.resolve())
        spec = {
            "manifest": manifest.model_dump(mode="json"),
            "directory": str(staged),
            "eval": str(eval_path) if eval_path else None,
            "reference": str(reference_path) if reference_path else None,
            "batch": batch,
            "device": device,
        }
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(spec))
        proc = subprocess.run(
            [sys.executable, "-m", "loader.evaluate", str(spec_file)], capture_output=True, text=True, check=False
        )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == _CHILD_ERROR and lines:
        failure = json.loads(lines[-1])
        kind = InvalidArgument if failure.get("invalid_argument") else ModelfnError  # keeps the CLI's exit code
        raise kind(failure["error"])
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise ModelfnError(f"the evaluation process failed (exit {proc.returncode}): {tail}")
    out = json.loads(lines[-1])
    reference = Reference.model_validate(out["reference"]) if out["reference"] else None
    return LocalRun(out["metrics"], out["examples"], out["dataset_sha256"], reference)


def load_eval_set(path: Path, manifest: Manifest) -> tuple[dict[str, np.ndarray], np.ndarray | None, np.ndarray | None]:
    """npz -> (inputs by name, class labels as indices or None, regression targets or None)."""
    try:
        data = dict(np.load(path, allow_pickle=False))
    except (ValueError, OSError) as exc:
        raise InvalidArgument(f"evaluation set {path.name} is not a readable .npz: {type(exc).__name__}") from None
    names = [s.name for s in manifest.inputs]
    missing = [n for n in names if n not in data]
    if missing:
        raise InvalidArgument(f"evaluation set lacks input array(s) {missing}; it needs {names} plus labels or targets")
    labels, targets = data.get("labels"), data.get("targets")
    if labels is None and targets is None:
        raise InvalidArgument("evaluation set needs a 'labels' (classes) or 'targets' (values) array")
    count = len(data[names[0]])
    if (
        count == 0
        or any(len(data[n]) != count for n in names)
        or any(a is not None and len(a) != count for a in (labels, targets))
    ):
        raise InvalidArgument("evaluation arrays must be non-empty and have the same number of rows")
    if labels is not None and labels.dtype.kind in "US":
        known = manifest.postprocess.labels or []
        if not set(labels.tolist()) <= set(known):
            raise InvalidArgument("evaluation labels are strings not all among the model's --labels")
        labels = np.asarray([known.index(v) for v in labels.tolist()])
    return {n: data[n] for n in names}, labels, targets


def _prepare(manifest: Manifest, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Cast to the signature's dtypes and pre-process the first input, as /v1 does."""
    arrays = {s.name: np.asarray(rows[s.name]).astype(V2_TO_NUMPY[s.datatype]) for s in manifest.inputs}
    first = manifest.inputs[0].name
    arrays[first] = preprocess(arrays[first], manifest.preprocess)
    return check_inputs(manifest.inputs, arrays)


def _evaluate(runtime: Runtime, manifest: Manifest, path: Path, batch: int) -> tuple[dict[str, float], int]:
    inputs, labels, targets = load_eval_set(path, manifest)
    count = len(next(iter(inputs.values())))
    first_out = manifest.outputs[0].name
    runtime.predict(_prepare(manifest, {n: a[:batch] for n, a in inputs.items()}))  # warm-up, not timed
    latencies, outputs = [], []
    for start in range(0, count, batch):
        arrays = _prepare(manifest, {n: a[start : start + batch] for n, a in inputs.items()})
        began = time.perf_counter()
        result = runtime.predict(arrays)
        latencies.append((time.perf_counter() - began) * 1000)
        outputs.append(result[first_out])
    y = np.concatenate(outputs).astype(np.float64)
    metrics = {
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "mean_ms": float(np.mean(latencies)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux reports KiB
    }
    if labels is not None:
        predicted = y.reshape(count, -1).argmax(axis=1)
        metrics["accuracy"] = float(np.mean(predicted == labels.astype(np.int64)))
    if targets is not None:
        error = y.reshape(count, -1) - np.asarray(targets, dtype=np.float64).reshape(count, -1)
        metrics["mae"] = float(np.mean(np.abs(error)))
        metrics["rmse"] = float(np.sqrt(np.mean(error**2)))
    return metrics, count


def _reference(runtime: Runtime, manifest: Manifest, path: Path) -> Reference:
    rows = read_sample(path, manifest)
    first = manifest.inputs[0]
    if len(manifest.inputs) > 1:
        raise InvalidArgument("a drift reference is supported for single-input models only")
    arrays = _prepare(manifest, {first.name: rows})
    matrix = features(arrays[first.name])
    bins = [quantile_bins(f"{first.name}[{j}]", matrix[:, j]) for j in range(matrix.shape[1])]
    scores = top_scores(runtime.predict(arrays)[manifest.outputs[0].name], manifest.postprocess)
    return Reference(
        sample_sha256=sha256_file(path), rows=len(rows), features=bins, scores=quantile_bins("score", scores)
    )


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    manifest = Manifest.model_validate(spec["manifest"])
    runtime = create_runtime(manifest.framework, DeviceChoice(spec["device"]))
    runtime.load(LocalArtifact(manifest, Path(spec["directory"]), FetchStats()))
    out: dict[str, Any] = {"metrics": {}, "examples": 0, "dataset_sha256": None, "reference": None}
    if spec["eval"]:
        out["metrics"], out["examples"] = _evaluate(runtime, manifest, Path(spec["eval"]), spec["batch"])
        out["dataset_sha256"] = sha256_file(Path(spec["eval"]))
    if spec["reference"]:
        out["reference"] = _reference(runtime, manifest, Path(spec["reference"])).model_dump(mode="json")
    return out


if __name__ == "__main__":
    try:
        result = _child(json.loads(Path(sys.argv[1]).read_text()))
    except ModelfnError as exc:
        print(json.dumps({"error": str(exc), "invalid_argument": isinstance(exc, InvalidArgument)}))
        sys.exit(_CHILD_ERROR)
    print(json.dumps(result))
