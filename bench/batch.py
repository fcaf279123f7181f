"""Batch jobs: records/s of one shard vs inline processing, 1 -> 4 local shards, and raw runtime throughput.

    python -m bench.batch [--records 200000] [--repeat 3]

Everything runs on the bundled demo model (Iris ONNX) in the same run, so the numbers are ratios:
1. raw: ``runtime.predict`` on the same rows, already as arrays, at EVENTS_BATCH_SIZE (the ceiling);
2. inline: the /events path's streaming reader + Predictor + JSON Lines writer, in-process;
3. one shard: ``run_shard`` (ranged reads, record alignment, part file, status, _SUCCESS), in-process;
4. ``modelfn batch run --local K`` for K = 1, 2, 4 (processes: start, model load, shard, upload).
From the one-shard rate the script prints the expected wall time of a 10 GB JSONL on N Cloud Run tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TEN_GB = 10 * 1024**3


def _median(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    return statistics.median(fn() for _ in range(repeat))


def _write_input(path: Path, records: int) -> np.ndarray:
    rows = np.round(np.random.default_rng(7).uniform(0, 8, size=(records, 4)), 1).astype(np.float32)
    with path.open("w") as handle:
        handle.writelines(json.dumps([float(v) for v in row]) + "\n" for row in rows)
    return rows


def _model(settings):  # type: ignore[no-untyped-def]
    from prometheus_client import CollectorRegistry

    from function.metrics import create_metrics
    from function.serving import loader_for
    from loader.uri import parse_model_uri

    metrics = create_metrics(CollectorRegistry())
    return loader_for(parse_model_uri(settings.model_uri), settings, metrics)(lambda _: None), metrics


def raw_seconds(model, rows: np.ndarray, batch: int) -> float:  # type: ignore[no-untyped-def]
    """runtime.predict over the rows, batch by batch, inputs already arrays."""
    name = model.artifact.manifest.inputs[0].name
    start = time.perf_counter()
    for lo in range(0, len(rows), batch):
        model.runtime.predict({name: rows[lo : lo + batch]})
    return time.perf_counter() - start


def inline_seconds(model, metrics, path: Path, batch: int, max_line: int) -> float:  # type: ignore[no-untyped-def]
    """What /events does today: stream the file, predict in batches, write JSON Lines."""
    from function.events.formats import iter_lines
    from function.events.predict import Predictor
    from function.jobs.writer import dumps

    predictor = Predictor(model, metrics, batch)
    start = time.perf_counter()
    with tempfile.TemporaryFile("w") as out, path.open("rb") as src:
        chunks = iter(lambda: src.read(1024 * 1024), b"")
        for records in predictor.jsonl(iter_lines(chunks, max_line)):
            out.writelines(dumps(r) for r in records)
    return time.perf_counter() - start


def shard_seconds(settings, path: Path, work: Path) -> float:  # type: ignore[no-untyped-def]
    """One shard of one, through run_shard (model load included: a task loads once)."""
    from function.jobs.runner import run_shard
    from function.jobs.shards import Shard

    out = Path(tempfile.mkdtemp(dir=work))
    start = time.perf_counter()
    run_shard(settings, path.as_uri(), out.as_uri(), Shard(0, 1))
    return time.perf_counter() - start


def local_seconds(path: Path, work: Path, count: int) -> float:
    """``modelfn batch run --local count`` as a user runs it."""
    out = Path(tempfile.mkdtemp(dir=work))
    argv = [sys.executable, "-m", "function.cli", "batch", "run", "--input", path.as_uri(), "--output", out.as_uri()]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CACHE_DIR": str(work / "cache")}
    start = time.perf_counter()
    subprocess.run([*argv, "--local", str(count)], env=env, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from function.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        path = work / "input.jsonl"
        rows = _write_input(path, args.records)
        settings = Settings(cache_dir=work / "cache")
        model, metrics = _model(settings)
        batch, n = settings.events_batch_size, args.records
        raw = _median(lambda: raw_seconds(model, rows, batch), args.repeat)
        inline = _median(lambda: inline_seconds(model, metrics, path, batch, settings.max_body_bytes), args.repeat)
        shard = _median(lambda: shard_seconds(settings, path, work), args.repeat)
        local = {k: _median(lambda k=k: local_seconds(path, work, k), args.repeat) for k in (1, 2, 4)}
        report(n, path.stat().st_size, raw, inline, shard, local)


def report(n: int, size: int, raw_s: float, inline_s: float, shard: float, local: dict[int, float]) -> None:
    """A table of records/s and ratios, then the 10 GB plan."""
    rate = {"raw runtime.predict": n / raw_s, "inline (/events path)": n / inline_s, "one shard (run_shard)": n / shard}
    rate.update({f"--local {k} (processes)": n / s for k, s in local.items()})
    print(f"{n} records, {size / 1e6:.1f} MB JSONL, batch size 256\n")
    print("| path | records/s | vs inline | vs raw runtime |\n|---|---:|---:|---:|")
    inline, raw = rate["inline (/events path)"], rate["raw runtime.predict"]
    for name, value in rate.items():
        print(f"| {name} | {value:,.0f} | {value / inline:.2f}x | {value / raw:.3f}x |")
    print(f"\nscaling --local 1 -> 2 -> 4: {local[1] / local[2]:.2f}x, {local[1] / local[4]:.2f}x")
    per_task = size / shard  # bytes/s of one task on one of these cores
    print(f"\none shard: {per_task / 1e6:.2f} MB/s per task; a 10 GB JSONL ({TEN_GB / size * n / 1e6:.0f}M records):")
    for tasks in (1, 10, 100, 1000):
        print(f"  {tasks:>5} Cloud Run tasks: {TEN_GB / tasks / per_task / 60:8.1f} min of processing per task")


if __name__ == "__main__":
    main()
