"""Serving benchmark: modelfn vs raw onnxruntime vs peers (BentoML, MLServer), same run, reported as ratios.

    python -m bench.serving            # full run (~6 min on 2 CPUs)
    python -m bench.serving --quick    # shorter loads, one cold start each (~2-3 min)
    python -m bench.serving --servers modelfn,bentoml --models mlp --kinds v2-binary

Writes bench/results/<name>.json, <name>.md and <name>.png (see bench/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench import report, store, wrk
from bench.mlp import INPUT, WIDTH, make_mlp
from bench.procs import ROOT
from bench.servers import Model, Spec, bentoml, mlserver, modelfn

SERVERS = ("modelfn", "modelfn-1w", "bentoml", "mlserver")
DEFAULT_SERVERS = ("modelfn", "bentoml", "mlserver")
MODELS = ("mlp", "demo")
# Imports a modelfn worker needs before it can serve (interpreter + imports, measured alone).
MODELFN_IMPORTS = "import gunicorn.app.wsgiapp, flask, numpy, onnxruntime, boto3, function.app"


def _factory(server: str, store_env: dict[str, str], extra_env: dict[str, str], log: Path) -> Callable[..., Spec]:
    if server == "modelfn":
        return lambda m, w: modelfn(server, m, w, store_env, extra_env)
    if server == "modelfn-1w":
        return lambda m, w: modelfn(server, m, w, store_env, {"WORKERS": "1", **extra_env})
    if server == "bentoml":
        return lambda m, w: bentoml(server, m, w, log)
    if server == "mlserver":
        return lambda m, w: mlserver(server, m, w, log)
    raise ValueError(server)


def measure_server(make: Callable[..., Spec], model: Model, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Cold starts (each a fresh process, empty cache), then load per request kind on the last one, then PSS."""
    cold: list[float] = []
    spec: Spec | None = None
    try:
        for i in range(args.cold_repeats):
            spec = make(model, work / f"start{i}")
            spec.server.start()
            cold.append(spec.server.wait_first_200(spec.probe(), args.start_timeout))
            if i < args.cold_repeats - 1:
                spec.server.stop()
        assert spec is not None
        loads = {}
        for kind, request in spec.requests.items():
            if args.kinds and kind not in args.kinds:
                continue
            loads[kind] = _load(spec, kind, request, work / kind, args)
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


def _load(spec: Spec, kind: str, request: wrk.Request, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    status, body = wrk_probe(spec, request)
    if status != 200:
        raise RuntimeError(f"{spec.name} {kind}: smoke request got {status}: {body[:200]!r}")
    wrk.run(spec.url, request, work, 32, args.warmup)  # every worker loaded and warm before measuring
    return {
        "c1": wrk.run(spec.url, request, work, 1, args.seconds),
        "c32": wrk.run(spec.url, request, work, 32, args.seconds),
    }


def wrk_probe(spec: Spec, request: wrk.Request) -> tuple[int, bytes]:
    """One request of this kind, checked before load so a 4xx is not mistaken for throughput."""
    from bench.procs import Probe

    return Probe(spec.url + request.path, request.body, request.headers).send(timeout=30)


def raw_ort(model: Model, seconds: float) -> dict[str, Any]:
    """bench.raw in a process of its own (nothing else running)."""
    argv = [sys.executable, "-m", "bench.raw", str(model.onnx), "--seconds", str(seconds)]
    return json.loads(_run(argv).stdout)


def cold_parts(model: Model, store_env: dict[str, str], work: Path) -> dict[str, float]:
    """The parts of a modelfn cold start, each measured alone: imports, download, session create, first run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def exec_to_exit(code: str) -> float:
        samples = []
        for _ in range(3):
            t = time.perf_counter()
            _run([sys.executable, "-c", code], env)
            samples.append(time.perf_counter() - t)
        return statistics.median(samples)

    client = store.s3_client(store_env)
    key = store.object_key(store_env, model.name, model.onnx.name)
    work.mkdir(parents=True, exist_ok=True)
    target = work / "download.onnx"
    t = time.perf_counter()
    client.download_file(store.BUCKET, key, str(target))
    download = time.perf_counter() - t
    session = json.loads(_run([sys.executable, "-m", "bench.raw", str(target), "--parts"], env).stdout)
    parts = {"interpreter_s": exec_to_exit("pass"), "imports_s": exec_to_exit(MODELFN_IMPORTS), "download_s": download}
    parts |= session
    parts["sum_s"] = parts["imports_s"] + download + session["session_create_s"] + session["first_run_s"]
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


def prepare_models(names: tuple[str, ...], work: Path, store_env: dict[str, str]) -> dict[str, Model]:
    """Make the MLP, then publish it and the demo with ``modelfn publish`` to the emulator."""
    env = {**os.environ, **store_env, "PYTHONPATH": str(ROOT)}
    models = {}
    if "mlp" in names:
        onnx = make_mlp(work / "mlp.onnx")
        models["mlp"] = Model("mlp", onnx, store.publish(env, onnx, "mlp", []), INPUT, WIDTH)
    if "demo" in names:
        labels = work / "labels.txt"
        labels.write_text("setosa\nversicolor\nvirginica\n")
        uri = store.publish(env, store.DEMO_ONNX, "iris", store.DEMO_ARGS, labels)
        models["demo"] = Model("iris", store.DEMO_ONNX, uri, "features", 4)
    return models


def _csv(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(value: str) -> tuple[str, ...]:
        items = tuple(v.strip() for v in value.split(",") if v.strip())
        bad = [v for v in items if v not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {','.join(allowed)}")
        return items

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` shortens every phase."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 s loads, 1 cold start per server (validation runs)")
    p.add_argument("--servers", type=_csv(SERVERS), default=DEFAULT_SERVERS, help=f"from {','.join(SERVERS)}")
    p.add_argument("--models", type=_csv(MODELS), default=MODELS, help="mlp (100 MB MLP), demo (iris)")
    p.add_argument(
        "--kinds",
        type=_csv(("v2-json", "v2-binary", "v1-json", "native-json")),
        default=(),
        help="request kinds to load (default: all a server speaks)",
    )
    p.add_argument("--scenarios", type=_csv(("raw", "parts", "servers")), default=("raw", "parts", "servers"))
    p.add_argument("--seconds", type=float, help="per load run (default 5, quick 2)")
    p.add_argument("--warmup", type=float, help="c=32 warm-up before measuring (default 2, quick 1)")
    p.add_argument("--cold-repeats", type=int, help="cold starts per server and model (default 3, quick 1)")
    p.add_argument("--start-timeout", type=float, default=120.0)
    p.add_argument(
        "--modelfn-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for modelfn (e.g. MAX_BATCH_SIZE=64); repeatable",
    )
    p.add_argument("--name", default="latest", help="results file stem under bench/results/")
    p.add_argument("--label", default="", help="free text stored with the results (commit, machine state)")
    p.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    args.seconds = args.seconds or (2.0 if args.quick else 5.0)
    args.warmup = args.warmup or (1.0 if args.quick else 2.0)
    args.cold_repeats = args.cold_repeats or (1 if args.quick else 3)
    return args


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "function", "loader"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "commit": commit + ("+dirty" if dirty else ""),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "label": args.label,
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "seconds_per_load": args.seconds,
        "cold_repeats": args.cold_repeats,
        "modelfn_env": args.modelfn_env,
        "load_generator": "wrk -t1 (Lua POST script), separate process, keep-alive",
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every selected measurement; one server failing is recorded and the run goes on."""
    if "servers" in args.scenarios and not wrk.available():
        sys.exit("wrk not found: apt-get install -y wrk")
    extra_env = dict(kv.split("=", 1) for kv in args.modelfn_env)
    results: dict[str, Any] = {"meta": _meta(args), "raw": {}, "parts": {}, "servers": {}, "errors": []}
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modelfn-bench-")))
        emulator = store.start_moto()
        stack.callback(emulator.close)
        models = prepare_models(args.models, work, emulator.env)
        for key, model in models.items():
            raw_seconds = 0.5 if args.quick else 1.0
            _step(results, f"raw {key}", "raw" in args.scenarios, partial(raw_ort, model, raw_seconds), ("raw", key))
            parts = partial(cold_parts, model, emulator.env, work / f"parts-{key}")
            _step(results, f"parts {key}", "parts" in args.scenarios, parts, ("parts", key))
            for server in args.servers if "servers" in args.scenarios else ():
                make = _factory(server, emulator.env, extra_env, work / "peer-install.log")
                measure = partial(measure_server, make, model, work / server / key, args)
                _step(results, f"{server} {key}", True, measure, ("servers", server, key))
    results["meta"]["wall_s"] = time.perf_counter() - started
    return results


def _step(results: dict[str, Any], what: str, enabled: bool, fn: Callable[[], Any], where: tuple[str, ...]) -> None:
    if not enabled:
        return
    print(f"[bench] {what} ...", file=sys.stderr, flush=True)
    t = time.perf_counter()
    try:
        value = fn()
    except Exception as exc:  # one server or peer failing must not abort the run
        results["errors"].append({"step": what, "error": str(exc)[-1500:]})
        print(f"[bench] {what} FAILED: {exc}", file=sys.stderr, flush=True)
        return
    node = results
    for part in where[:-1]:
        node = node.setdefault(part, {})
    node[where[-1]] = value
    print(f"[bench] {what} done in {time.perf_counter() - t:.0f}s", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    """Run, then write <name>.json, <name>.md and <name>.png under --out-dir."""
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every ``finally`` stops its server (they run in sessions of their own).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = run(args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    md = report.markdown(results, f"{args.name}.png")
    (args.out_dir / f"{args.name}.md").write_text(md)
    report.plot(results, args.out_dir / f"{args.name}.png")
    print(md)


if __name__ == "__main__":
    main()
