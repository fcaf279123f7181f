"""The measurements of one round: a server (cold starts, load, PSS), raw onnxruntime, a cold start's parts."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench import check, paired, store, wrk
from bench.procs import ROOT, Probe
from bench.servers import Model, Spec

# Imports a modelfn worker needs before it can serve (interpreter + imports, measured alone).
MODELFN_IMPORTS = "import gunicorn.app.wsgiapp, flask, numpy, onnxruntime, boto3, function.app"


def measure_server(
    make: Callable[..., Spec], model: Model, work: Path, args: argparse.Namespace, errors: list[dict[str, str]]
) -> dict[str, Any]:
    """Cold starts (each a fresh process, empty cache), then load per request kind on the last one, then PSS.

    The candidate's V2 kinds also get raw slices paired with load slices (``_paired``); a failure there goes
    to ``errors`` and the rest is kept.
    """
    cold: list[float] = []
    spec: Spec | None = None
    try:
        for i in range(args.cold_repeats):
            spec = make(model, work / f"start{i}")
            if args.taskset:  # a smaller "container": every server sees (and may use) only these CPUs
                spec.server.argv = ["taskset", "-c", args.taskset, *spec.server.argv]
            spec.server.start()
            cold.append(spec.server.wait_first_200(spec.probe(), args.start_timeout))
            if i < args.cold_repeats - 1:
                spec.server.stop()
        assert spec is not None
        loads = {}
        for kind, request in spec.requests.items():
            if args.kinds and kind not in args.kinds:
                continue
            loads[kind] = _load(spec, kind, request, work / kind, args, model.expected)
            if paired.wanted(spec.name, kind, args.pairs):  # wrk slices on the same body, the server idle between
                slices = partial(wrk.run, spec.url, request, work / kind)
                _paired(f"{spec.name} {model.name} {kind}", model, slices, args, loads[kind], errors)
        return {
            "cold_start_s": statistics.median(cold),
            "cold_starts_s": cold,
            "pss_mb": spec.server.pss_mb(),
            "loads": loads,
            "notes": spec.notes,
        }
    finally:
        if spec is not None:
            spec.server.stop()


def _load(
    spec: Spec, kind: str, request: wrk.Request, work: Path, args: argparse.Namespace, want: np.ndarray | None
) -> dict[str, Any]:
    """Check one answer, warm up at c=32, then measure c=1 and c=32."""
    status, body, headers = Probe(spec.url + request.path, request.body, request.headers).send(timeout=30)
    if status != 200:
        raise RuntimeError(f"{spec.name} {kind}: smoke request got {status}: {body[:200]!r}")
    if want is not None:
        check.verify(spec.name, kind, body, headers, want)
    wrk.run(spec.url, request, work, 32, args.warmup)  # every worker loaded and warm before measuring
    return {
        "c1": wrk.run(spec.url, request, work, 1, args.seconds),
        "c32": wrk.run(spec.url, request, work, 32, args.seconds),
    }


def _paired(
    what: str,
    model: Model,
    slices: paired.Load,
    args: argparse.Namespace,
    load: dict[str, Any],
    errors: list[dict[str, str]],
) -> None:
    """Raw slices taking turns with load ``slices`` (bench/paired.py) into ``load["paired"]``.

    The raw process lives only for this: it is not there during the c=1/c=32 runs, nor when PSS is read
    (it maps the same onnxruntime library, which would lower the server's share of those pages).
    """
    started = time.perf_counter()
    try:
        with paired.RawProcess(model.onnx) as raw:
            c32 = model.name in paired.RATIO_MODELS
            load["paired"] = paired.pair(raw, slices, args.pairs, args.pair_seconds, c32)
        print(f"[bench] {what} paired in {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    except Exception as exc:  # the loads measured before stay; the failure is listed like a failed step
        errors.append({"step": f"{what} paired", "error": str(exc)[-1500:]})
        print(f"[bench] {what} paired FAILED: {exc}", file=sys.stderr, flush=True)


def raw_ort(model: Model, seconds: float) -> dict[str, Any]:
    """bench.raw in a process of its own (nothing else running)."""
    argv = [sys.executable, "-m", "bench.raw", str(model.onnx), "--seconds", str(seconds)]
    return json.loads(_run(argv).stdout)


def cold_parts(model: Model, store_env: dict[str, str], work: Path, repeats: int = 3) -> dict[str, float]:
    """The parts of a modelfn cold start, each measured alone (median of ``repeats``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def exec_to_exit(code: str) -> float:
        t = time.perf_counter()
        _run([sys.executable, "-c", code], env)
        return time.perf_counter() - t

    client = store.s3_client(store_env)
    key = store.object_key(store_env, model.name, model.onnx.name)
    work.mkdir(parents=True, exist_ok=True)
    target = work / "download.onnx"

    def download() -> float:
        t = time.perf_counter()
        client.download_file(store.BUCKET, key, str(target))
        return time.perf_counter() - t

    def session() -> dict[str, float]:
        return dict(json.loads(_run([sys.executable, "-m", "bench.raw", str(target), "--parts"], env).stdout))

    samples = [
        {"interpreter_s": exec_to_exit("pass"), "imports_s": exec_to_exit(MODELFN_IMPORTS), "download_s": download()}
        | session()
        for _ in range(repeats)
    ]
    parts = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    parts["sum_s"] = parts["imports_s"] + parts["download_s"] + parts["session_create_s"] + parts["first_run_s"]
    return parts


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv,
        env=env or {**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed: {done.stderr.strip()[-1000:]}")
    return done
