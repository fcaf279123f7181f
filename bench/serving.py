"""Serving benchmark: modelfn vs raw onnxruntime vs peers (BentoML, MLServer), same run, reported as ratios.

    python -m bench.serving            # full run (~6 min on 2 CPUs)
    python -m bench.serving --quick    # shorter loads, one cold start each (~2-3 min)
    python -m bench.serving --servers modelfn,bentoml --models mlp --kinds v2-binary

Writes bench/results/<name>.json, <name>.md and <name>.png (see bench/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench import check, paired, report, store, wrk
from bench.measure import cold_parts, measure_server, raw_ort
from bench.mlp import INPUT, WIDTH, make_mlp
from bench.procs import ROOT
from bench.rounds import rounds_median, rounds_range
from bench.servers import Model, Spec, bentoml, mlserver, modelfn

SERVERS = ("modelfn", "modelfn-base", "modelfn-1w", "bentoml", "mlserver")
DEFAULT_SERVERS = ("modelfn", "bentoml", "mlserver")
MODELS = ("mlp", "demo")


def _factory(
    server: str, store_env: dict[str, str], extra_env: dict[str, str], log: Path, base: Path | None
) -> Callable[..., Spec]:
    if server == "modelfn":
        return lambda m, w: modelfn(server, m, w, store_env, extra_env)
    if server == "modelfn-1w":
        return lambda m, w: modelfn(server, m, w, store_env, {"WORKERS": "1", **extra_env})
    if server == "modelfn-base":
        if base is None:
            raise ValueError("modelfn-base needs --baseline-root")
        return lambda m, w: modelfn(server, m, w, store_env, {}, root=base)
    if server == "bentoml":
        return lambda m, w: bentoml(server, m, w, log)
    if server == "mlserver":
        return lambda m, w: mlserver(server, m, w, log)
    raise ValueError(server)


def prepare_models(
    names: tuple[str, ...], work: Path, store_env: dict[str, str], base: Path | None
) -> dict[str, Model]:
    """Make the MLP, then publish it and the demo with ``modelfn publish`` (and the baseline's) to the emulator."""
    env = {**os.environ, **store_env}
    labels = work / "labels.txt"
    labels.write_text("setosa\nversicolor\nvirginica\n")
    sources = {"mlp": ("mlp", INPUT, WIDTH, [], None), "demo": ("iris", "features", 4, store.DEMO_ARGS, labels)}
    models = {}
    for key in names:
        name, tensor, width, extra, label_file = sources[key]
        onnx = make_mlp(work / "mlp.onnx") if key == "mlp" else store.DEMO_ONNX
        model = Model(name, onnx, store.publish(env, onnx, name, extra, label_file), tensor, width)
        if base is not None:
            model.base_uri = store.publish(env, onnx, name, extra, label_file, root=base)
        if key == "mlp":  # no pre/post-processing: every server must give onnxruntime's numbers
            model.expected = check.expected(str(onnx), model.row())
        models[key] = model
    return models


def _csv(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(value: str) -> tuple[str, ...]:
        items = tuple(v.strip() for v in value.split(",") if v.strip())
        bad = [v for v in items if v not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {','.join(allowed)}")
        return items

    return parse


def _parser() -> argparse.ArgumentParser:
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
    p.add_argument(
        "--baseline-root",
        type=Path,
        metavar="CHECKOUT",
        help="another checkout of modelfn (e.g. git worktree add /tmp/mf-before a6379f9) measured in the same run as "
        "server modelfn-base: its own CLI publishes, its own Dockerfile CMD serves, default settings",
    )
    p.add_argument("--pairs", type=int, default=paired.PAIRS, help="raw slices paired with wrk's (modelfn V2); 0: none")
    p.add_argument("--pair-seconds", type=float, default=paired.SLICE_SECONDS, help="per paired slice (whole s)")
    p.add_argument("--taskset", metavar="CPUS", help="run every server under taskset -c CPUS (e.g. 0)")
    p.add_argument("--rounds", type=int, default=1, help="repeat everything; report medians and ranges")
    p.add_argument("--start-timeout", type=float, default=120.0)
    p.add_argument(
        "--modelfn-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for modelfn (e.g. MAX_BATCH_SIZE=64); repeatable",
    )
    p.add_argument("--no-plot", action="store_true", help="write the JSON and Markdown only (no matplotlib needed)")
    p.add_argument("--name", default="latest", help="results file stem under bench/results/")
    p.add_argument("--label", default="", help="free text stored with the results (commit, machine state)")
    p.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` shortens every phase."""
    p = _parser()
    args = p.parse_args(argv)
    args.seconds = args.seconds or (2.0 if args.quick else 5.0)
    args.warmup = args.warmup or (1.0 if args.quick else 2.0)
    args.cold_repeats = args.cold_repeats or (1 if args.quick else 3)
    if args.baseline_root is not None:
        args.baseline_root = args.baseline_root.resolve()
        if not (args.baseline_root / "function" / "wsgi.py").exists():
            p.error(f"--baseline-root {args.baseline_root} is not a modelfn checkout")
        if "modelfn-base" not in args.servers:
            args.servers = ("modelfn", "modelfn-base", *(s for s in args.servers if s != "modelfn"))
    if not args.no_plot and importlib.util.find_spec("matplotlib") is None:  # refused now, not after the run
        p.error("the plot needs matplotlib: pip install -e '.[bench]' (make bench does), or pass --no-plot")
    return args


def _commit(root: Path) -> str:
    """Short commit of a checkout, "+dirty" when its function/ or loader/ has uncommitted changes."""
    git = ["git", "-C", str(root)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "function", "loader"], capture_output=True, text=True, check=False
    )
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _cpu_model() -> str:
    """The first ``model name`` of /proc/cpuinfo: runs on different machines of one kind are not comparable."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "commit": _commit(ROOT),
        "baseline_commit": (_commit(args.baseline_root) or str(args.baseline_root)) if args.baseline_root else None,
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "label": args.label,
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "seconds_per_load": args.seconds,
        "cold_repeats": args.cold_repeats,
        "rounds": args.rounds,
        "taskset": args.taskset,
        "modelfn_env": args.modelfn_env,
        "load_generator": "wrk -t1 (Lua POST script), separate process, keep-alive",
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every selected measurement, ``--rounds`` times; one server failing is recorded and the run goes on."""
    if "servers" in args.scenarios and not wrk.available():
        sys.exit("wrk not found: apt-get install -y wrk")
    results: dict[str, Any] = {"meta": _meta(args), "errors": []}
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modelfn-bench-")))
        emulator = store.start_moto()
        stack.callback(emulator.close)
        models = prepare_models(args.models, work, emulator.env, args.baseline_root)
        rounds = [_round(args, models, emulator.env, work / f"round{i}", results["errors"]) for i in range(args.rounds)]
    results |= rounds_median(rounds)
    if args.rounds > 1:
        results["ranges"], results["rounds"] = rounds_range(rounds), rounds
    results["meta"]["wall_s"] = time.perf_counter() - started
    return results


def _round(
    args: argparse.Namespace, models: dict[str, Model], store_env: dict[str, str], work: Path, errors: list[Any]
) -> dict[str, Any]:
    """One pass over models x (raw ORT, cold-start parts, servers), servers one after the other."""
    out: dict[str, Any] = {"raw": {}, "parts": {}, "servers": {}}
    extra_env = dict(kv.split("=", 1) for kv in args.modelfn_env)
    for key, model in models.items():
        if "raw" in args.scenarios:
            _step(out, errors, f"raw {key}", partial(raw_ort, model, 0.5 if args.quick else 1.0), ("raw", key))
        if "parts" in args.scenarios:
            _step(
                out,
                errors,
                f"parts {key}",
                partial(cold_parts, model, store_env, work / f"parts-{key}"),
                ("parts", key),
            )
        for server in args.servers if "servers" in args.scenarios else ():
            make = _factory(server, store_env, extra_env, work / "peer-install.log", args.baseline_root)
            measure = partial(measure_server, make, model, work / server / key, args, errors)
            _step(out, errors, f"{server} {key}", measure, ("servers", server, key))
    return out


def _step(out: dict[str, Any], errors: list[Any], what: str, fn: Callable[[], Any], where: tuple[str, ...]) -> None:
    print(f"[bench] {what} ...", file=sys.stderr, flush=True)
    t = time.perf_counter()
    try:
        value = fn()
    except Exception as exc:  # one server or peer failing must not abort the run
        errors.append({"step": what, "error": str(exc)[-1500:]})
        print(f"[bench] {what} FAILED: {exc}", file=sys.stderr, flush=True)
        return
    node = out
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
    md = report.markdown(results, None if args.no_plot else f"{args.name}.png")
    (args.out_dir / f"{args.name}.md").write_text(md)
    if not args.no_plot:
        report.plot(results, args.out_dir / f"{args.name}.png")
    print(md)


if __name__ == "__main__":
    main()
