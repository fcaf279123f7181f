"""Hot-path cost of model-health monitoring and of a canary or shadow, at c=32 and c=1, as ratios.

    python -m bench.release_cost                      # demo + MLP, V2 binary and JSON, 3 interleaved rounds
    python -m bench.release_cost --models demo --rounds 1 --seconds 3

Every variant is modelfn from this checkout serving the same model from the S3 emulator; a variant
differs only in its environment or in what the alias names:

    monitor-off     MONITOR_SAMPLE_EVERY=0 (the baseline)
    default         MONITOR_SAMPLE_EVERY=10 (the shipped default)
    monitor-all     MONITOR_SAMPLE_EVERY=1 (every call observed)
    canary-10       the alias with a 10% canary of a second version (the same bytes, so the work is equal)
    shadow-100      the alias with a 100% shadow: every request also runs on the candidate, off the path

Rounds run the variants in a rotated order, so a drift of the machine's speed does not favour one.
Writes bench/results/<name>.json and <name>.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench import store, wrk
from bench.mlp import INPUT, WIDTH, make_mlp
from bench.procs import ROOT, tree_cpu_seconds
from bench.servers import Model, modelfn

VARIANTS: dict[str, tuple[dict[str, str], str | None]] = {
    "monitor-off": ({"MONITOR_SAMPLE_EVERY": "0"}, None),
    "default": ({}, None),
    "monitor-all": ({"MONITOR_SAMPLE_EVERY": "1"}, None),
    "canary-10": ({}, "--canary=10"),
    "shadow-100": ({}, "--shadow=100"),
}
KINDS = ("v2-binary", "v2-json")


def prepare(key: str, work: Path, env: dict[str, str]) -> tuple[Model, str]:
    """Publish version 1 (alias prod) and the same bytes as version 2; returns the model and its store URI."""
    labels = work / "labels.txt"
    labels.write_text("setosa\nversicolor\nvirginica\n")
    if key == "mlp":
        onnx, name, tensor, width, extra, label_file = make_mlp(work / "mlp.onnx"), "mlp", INPUT, WIDTH, [], None
    else:
        onnx, name, tensor, width, extra, label_file = store.DEMO_ONNX, "iris", "features", 4, store.DEMO_ARGS, labels
    uri = store.publish(env, onnx, name, extra, label_file)
    argv = [*store.modelfn_cli(), "publish", str(onnx), "--name", name, "--version", "2", "--to", store.STORE_URI]
    argv += ["--no-latest", *extra, *(["--labels", str(label_file)] if label_file else [])]
    _cli(argv, env)
    return Model(name, onnx, uri, tensor, width), name


def set_alias(name: str, flag: str | None, env: dict[str, str]) -> None:
    """Point prod at version 1 alone, then (for canary/shadow variants) add version 2 as the candidate."""
    base = ["--alias", "prod", "--store", store.STORE_URI]
    _cli([*store.modelfn_cli(), "promote", f"{name}@1", *base], env)
    if flag:
        _cli([*store.modelfn_cli(), "promote", f"{name}@2", *base, flag], env)


def _cli(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[1:3]} failed: {done.stderr.strip()[-1000:]}")


def measure(model: Model, variant: str, work: Path, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """One server start for ``variant``; c=32 then c=1 per request kind."""
    extra, flag = VARIANTS[variant]
    set_alias(model.name, flag, env)
    spec = modelfn("modelfn", model, work, env, {**dict(e.split("=", 1) for e in args.env), **extra})
    spec.server.start()
    try:
        spec.server.wait_first_200(spec.probe(), 120)
        out: dict[str, Any] = {}
        for kind in KINDS:
            request = spec.requests[kind]
            wrk.run(spec.url, request, work / kind, 32, args.warmup)
            assert spec.server.proc is not None
            cpu = tree_cpu_seconds(spec.server.proc.pid)
            c32 = wrk.run(spec.url, request, work / kind, 32, args.seconds)
            # Server CPU per answered request: steadier than req/s on a shared machine (what other
            # processes take from the cores changes req/s, not the work one request costs).
            c32["cpu_ms_per_request"] = (tree_cpu_seconds(spec.server.proc.pid) - cpu) * 1e3 / max(c32["requests"], 1)
            out[kind] = {"c32": c32, "c1": wrk.run(spec.url, request, work / kind, 1, args.seconds)}
        return out
    finally:
        spec.server.stop()


def summarise(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Median over rounds per model/variant/kind, and each variant's ratio to ``monitor-off``."""
    table: dict[str, Any] = {}
    for model, variants in runs.items():
        for variant, samples in variants.items():
            for kind in KINDS:
                rps = statistics.median(s[kind]["c32"]["req_per_s"] for s in samples)
                p50 = statistics.median(s[kind]["c1"]["p50_ms"] for s in samples)
                cpu = statistics.median(s[kind]["c32"]["cpu_ms_per_request"] for s in samples)
                cell = {"c32_req_per_s": rps, "c1_p50_ms": p50, "cpu_ms_per_request": cpu}
                cell["c32_range"] = [
                    min(s[kind]["c32"]["req_per_s"] for s in samples),
                    max(s[kind]["c32"]["req_per_s"] for s in samples),
                ]
                table.setdefault(model, {}).setdefault(variant, {})[kind] = cell
        base = table[model]["monitor-off"]
        for row in table[model].values():
            for kind, cell in row.items():
                cell["c32_vs_off"] = cell["c32_req_per_s"] / base[kind]["c32_req_per_s"]
                cell["cpu_vs_off"] = cell["cpu_ms_per_request"] / base[kind]["cpu_ms_per_request"]
                cell["c1_p50_minus_off_ms"] = cell["c1_p50_ms"] - base[kind]["c1_p50_ms"]
    return table


def markdown(table: dict[str, Any], label: str) -> str:
    """The results as a Markdown table."""
    lines = [f"# Hot-path cost of monitoring and releases ({label})", ""]
    lines += [
        "| model | variant | kind | c=32 req/s [range] | vs off | server CPU ms/req | vs off | c=1 p50 | minus off |",
        "|---" * 9 + "|",
    ]
    for model, variants in table.items():
        for variant, row in variants.items():
            for kind, c in row.items():
                low, high = c["c32_range"]
                lines.append(
                    f"| {model} | {variant} | {kind} | {c['c32_req_per_s']:.0f} [{low:.0f}-{high:.0f}] "
                    f"| {c['c32_vs_off']:.3f} | {c['cpu_ms_per_request']:.3f} | {c['cpu_vs_off']:.3f} "
                    f"| {c['c1_p50_ms']:.3f} | {c['c1_p50_minus_off_ms']:+.3f} |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the rounds and write the results."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="demo,mlp")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="for every variant's server")
    p.add_argument("--name", default="release-cost")
    p.add_argument("--label", default="")
    p.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args()
    variants = args.variants.split(",")
    emulator = store.start_moto()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        env = {**os.environ, **emulator.env}
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for key in args.models.split(","):
                model, _ = prepare(key, work, env)
                for r in range(args.rounds):
                    for variant in variants[r % len(variants) :] + variants[: r % len(variants)]:
                        sample = measure(model, variant, work / f"{key}-{variant}-{r}", env, args)
                        runs.setdefault(key, {}).setdefault(variant, []).append(sample)
                        print(key, variant, r, json.dumps({k: v["c32"]["req_per_s"] for k, v in sample.items()}))
    finally:
        emulator.close()
    table = summarise(runs)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.json").write_text(json.dumps({"label": args.label, "table": table, "runs": runs}))
    (args.out_dir / f"{args.name}.md").write_text(markdown(table, args.label))
    print(markdown(table, args.label))


if __name__ == "__main__":
    main()
