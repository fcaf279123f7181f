"""The c=1 gap's floor: modelfn against the least a Python server does (``bench.floor_server``), each slice paired
with raw onnxruntime, so what any Python server pays on the machine is told apart from what modelfn adds.

    python -m bench.floor                    # the 100 MB MLP, 20 rounds of 2 s slices (~4 min on 2 CPUs)
    python -m bench.floor --rounds 4 --seconds 1 --width 256 --name floor-smoke

Every server is up at once (modelfn as its image runs it, the model published to ``file://``; the floor server
without and with huge pages). Each round times raw batch 1 (``bench.raw --serve``) for half a second before
and after every server's ``wrk -c1`` slice, in an order that alternates between rounds; a slice's gap is its
p50 minus the mean of the raw p50s around it. Writes ``bench/results/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import store, wrk
from bench.mlp import INPUT, WIDTH, make_mlp
from bench.paired import RawProcess, figure
from bench.procs import ROOT, Probe, Server, free_port
from bench.servers import Model, Spec, modelfn, v2_requests

RESULTS = ROOT / "bench" / "results"
RAW_SLICE_S = 0.5


def floor_spec(name: str, model: Model, work: Path, huge: bool) -> Spec:
    """``bench.floor_server`` for the model, with the same binary V2 request as modelfn gets."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.floor_server", str(model.onnx), str(port), *(["--huge-pages"] * huge)]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    requests = {"v2-binary": v2_requests(model, binary=True)["v2-binary"]}
    return Spec(name, Server(name, argv, env, ROOT, work / name / "server.log"), requests, port)


def gaps(slices: list[dict[str, Any]]) -> dict[str, Any]:
    """Per server: the slices' gaps, their median, and the median of its paired differences to the first server."""
    names = list(dict.fromkeys(s["server"] for s in slices))
    per = {
        n: [s["p50_ms"] - (s["raw_before_ms"] + s["raw_after_ms"]) / 2 for s in slices if s["server"] == n]
        for n in names
    }
    out: dict[str, Any] = {}
    for n in names:
        diffs = [a - b for a, b in zip(per[n], per[names[0]], strict=True)]
        out[n] = {"gaps_ms": per[n], "median_gap_ms": statistics.median(per[n])}
        out[n]["minus_first_ms"] = statistics.median(diffs) if n != names[0] else 0.0
    return out


def measure(specs: list[Spec], onnx: Path, work: Path, rounds: int, seconds: float) -> list[dict[str, Any]]:
    """The interleaved slices (see the module's docstring)."""
    slices = []
    with RawProcess(onnx) as raw:
        for k in range(rounds):
            order = specs if k % 2 == 0 else specs[::-1]
            before = raw.batch1(RAW_SLICE_S)["p50_ms"]
            for spec in order:
                load = wrk.run(spec.url, spec.requests["v2-binary"], work, 1, seconds)
                after = raw.batch1(RAW_SLICE_S)["p50_ms"]
                p50, p99 = figure(load, "p50_ms"), figure(load, "p99_ms")
                slices.append({"round": k, "server": spec.name, "p50_ms": p50, "p99_ms": p99})
                slices[-1] |= {"raw_before_ms": before, "raw_after_ms": after, "errors": load["errors"]}
                before = after
            print(k, " ".join(f"{s['server']} {s['p50_ms']:.3f}" for s in slices[-len(specs) :]), flush=True)
    return slices


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Make and publish the model, start every server, measure, stop them."""
    onnx = make_mlp(work / "mlp.onnx", width=args.width)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work)}
    model = Model(
        "mlp", onnx, store.publish(env, onnx, "mlp", [], store_uri=f"file://{work / 'store'}"), INPUT, args.width
    )
    specs = [
        modelfn("modelfn", model, work / "modelfn", {}, {}),
        floor_spec("floor", model, work, huge=False),
        floor_spec("floor-huge-pages", model, work, huge=True),
    ]
    try:
        for spec in specs:
            spec.server.start()
            request = spec.requests["v2-binary"]
            spec.server.wait_first_200(Probe(spec.url + request.path, request.body, request.headers), 180)
            wrk.run(spec.url, request, work, 1, 1)  # warm: the first slice must not pay for the first calls
        slices = measure(specs, onnx, work, args.rounds, args.seconds)
    finally:
        for spec in specs:
            spec.server.stop()
    meta = {"rounds": args.rounds, "seconds": args.seconds, "width": args.width, "raw_slice_s": RAW_SLICE_S}
    return {"meta": meta, "slices": slices, "servers": gaps(slices)}


def markdown(results: dict[str, Any]) -> str:
    """The medians and each server's paired difference to modelfn."""
    meta = results["meta"]
    lines = [
        f"# c=1 gap floor ({meta['rounds']} rounds of {meta['seconds']} s slices, MLP width {meta['width']})",
        "",
        "| server | median gap, ms (c=1 p50 - raw p50) | rounds' range | paired difference to modelfn, ms |",
        "|---|---:|---|---:|",
    ]
    for name, row in results["servers"].items():
        low, high = min(row["gaps_ms"]), max(row["gaps_ms"])
        lines.append(
            f"| {name} | {row['median_gap_ms']:.3f} | {low:.3f} to {high:.3f} | {row['minus_first_ms']:+.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=2.0, help="each wrk slice")
    parser.add_argument("--width", type=int, default=WIDTH, help="the MLP's width (2048: the 100 MB model)")
    parser.add_argument("--name", default="floor")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not wrk.available():
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    with tempfile.TemporaryDirectory(prefix="modelfn-floor-") as tmp:
        results = run(args, Path(tmp))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out_dir / f"{args.name}.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
