"""Results -> a Markdown report (targets of issue 8 as ratios, full tables) and a PNG plot."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

from bench.targets import MODELFN, get, target_rows

SERVER_COLUMNS = (
    "server",
    "model",
    "request",
    "c=1 p50 ms",
    "c=1 p99 ms",
    "c=32 req/s",
    "c=32 p99 ms",
    "errors",
    "PSS MB",
    "cold start s",
)
PART_COLUMNS = (
    "model",
    "interpreter",
    "interpreter + imports",
    "download (boto3)",
    "session create",
    "first run",
    "sum (imports..first run)",
)


def _head(columns: tuple[str, ...], left: int) -> list[str]:
    """A Markdown table header; the first ``left`` columns are text, the rest numbers (right-aligned)."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * left + "---:|" * (len(columns) - left)]


def _ranged(results: dict[str, Any], spec: str, *path: str) -> str:
    """A figure, with its [min-max] over the rounds when there were several and they differ."""
    value, span = get(results, *path), get(results.get("ranges"), *path)
    if value is None:
        return "n/a"
    text = format(value, spec)
    if isinstance(span, list) and format(span[0], spec) != format(span[1], spec):
        text += f" ({span[0]:{spec}}-{span[1]:{spec}})"
    return text


def server_rows(results: dict[str, Any]) -> list[str]:
    """Every server, model and request kind, then raw onnxruntime."""
    rows = []
    for server, per_model in results.get("servers", {}).items():
        for model, r in per_model.items():
            base = ("servers", server, model)
            for kind in r["loads"]:
                load = (*base, "loads", kind)
                cells = [
                    _ranged(results, ".2f", *load, "c1", "p50_ms"),
                    _ranged(results, ".2f", *load, "c1", "p99_ms"),
                    _ranged(results, ".0f", *load, "c32", "req_per_s"),
                    _ranged(results, ".1f", *load, "c32", "p99_ms"),
                    _ranged(results, "d", *load, "c1", "errors")
                    + " / "
                    + _ranged(results, "d", *load, "c32", "errors"),
                    _ranged(results, ".0f", *base, "pss_mb"),
                    _ranged(results, ".2f", *base, "cold_start_s"),
                ]
                rows.append(f"| {server} | {model} | {kind} | " + " | ".join(cells) + " |")
    for model in results.get("raw", {}):
        cells = [_ranged(results, f, "raw", model, k) for f, k in RAW_BATCH1]
        rows.append(
            f"| raw session.run, batch 1 | {model} | in-process | {cells[0]} | {cells[1]} | {cells[2]} items/s "
            f"| | | {cells[3]} (model copy) | |"
        )
        best = _ranged(results, ".0f", "raw", model, "best_items_per_s")
        batch = get(results, "raw", model, "best_batch")
        rows.append(f"| raw session.run, best batch ({batch}) | {model} | in-process | | | {best} items/s | | | | |")
    return rows


RAW_BATCH1 = (
    (".3f", "batch1_p50_ms"),
    (".3f", "batch1_p99_ms"),
    (".0f", "batch1_items_per_s"),
    (".0f", "model_pss_mb"),
)


def baseline_rows(results: dict[str, Any]) -> list[str]:
    """modelfn against the --baseline-root checkout (modelfn-base), same run: ratios per model and request kind."""
    lines = []
    for model, new in (get(results, "servers", MODELFN) or {}).items():
        old = get(results, "servers", "modelfn-base", model)
        if old is None:
            continue
        for kind, load in new["loads"].items():
            base = old["loads"].get(kind)
            if base is None:
                continue
            rps = load["c32"].get("req_per_s", 0) / max(base["c32"].get("req_per_s", 0), 1e-9)
            p50 = (load["c1"].get("p50_ms") or 0) - (base["c1"].get("p50_ms") or 0)
            pss, cold = new["pss_mb"] / old["pss_mb"], new["cold_start_s"] / old["cold_start_s"]
            lines.append(f"| {model} | {kind} | {rps:.2f}x | {p50:+.2f} ms | {pss:.2f}x | {cold:.2f}x |")
    if not lines:
        return []
    commit = results["meta"].get("baseline_commit")
    head = ("model", "request", "c=32 req/s new/base", "c=1 p50 new-base", "PSS new/base", "cold start new/base")
    return ["", f"## modelfn vs modelfn-base (commit {commit}), same run", "", *_head(head, 2), *lines]


def _preamble(meta: dict[str, Any]) -> list[str]:
    cpu = f" ({meta['cpu_model']})" if meta.get("cpu_model") else ""  # absent from runs before it was recorded
    return [
        f"# Serving benchmark: commit {meta['commit']}, {meta['date_utc']}",
        "",
        f"{meta['label']}".strip(),
        "",
        f"{meta['cpus']} CPUs{cpu}, load average at start {', '.join(f'{x:.2f}' for x in meta['loadavg_at_start'])}, "
        f"Python {meta['python']}, {meta.get('rounds', 1)} round(s) (figures: median, range in brackets), "
        f"{meta['seconds_per_load']:g} s per load run, median of {meta['cold_repeats']} cold starts, "
        f"load generator: {meta['load_generator']}; run took {meta.get('wall_s', 0):.0f} s. "
        f"modelfn extra env: {meta['modelfn_env'] or 'none (defaults)'}"
        + (f"; servers pinned with taskset -c {meta['taskset']}." if meta.get("taskset") else "."),
        "",
    ]


def markdown(results: dict[str, Any], png: str | None) -> str:
    """The whole report (``png``: the plot beside it, None when none was drawn)."""
    lines = [
        *_preamble(results["meta"]),
        "## Targets (issue 8), modelfn with default settings",
        "",
        "| target | measured | goal | met |",
        "|---|---|---|---|",
        *target_rows(results),
        "| hot swap under c=32 load | not a bench figure (serving tests) | new version everywhere within 2 s | n/a |",
        *baseline_rows(results),
        "",
        "## Every server",
        "",
        "One-row requests. c=1: p50/p99 latency; c=32: req/s and p99. PSS: whole process tree after the load runs.",
        "Cold start: exec -> first 200 (modelfn: from the S3 emulator, empty cache; peers: model on local disk).",
        "",
        *_head(SERVER_COLUMNS, 3),
        *server_rows(results),
        "",
        "## modelfn cold start, its parts measured alone",
        "",
        *_head(PART_COLUMNS, 1),
    ]
    for model, p in results.get("parts", {}).items():
        lines.append(
            f"| {model} | {p['interpreter_s']:.3f} | {p['imports_s']:.3f} | {p['download_s']:.3f} "
            f"| {p['session_create_s']:.3f} | {p['first_run_s']:.4f} | {p['sum_s']:.3f} |"
        )
    lines += ["", f"![serving benchmark]({png})", ""] if png else [""]
    if results.get("errors"):
        lines += ["## Failures (the run went on)", ""]
        lines += [f"- {e['step']}: `{e['error'].splitlines()[-1][:300]}`" for e in results["errors"]]
        lines.append("")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path, model: str = "mlp") -> None:
    """Four panels for ``model``: c=32 req/s, c=1 p50, PSS, cold start; raw ORT / targets as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    servers = {s: r[model] for s, r in results.get("servers", {}).items() if model in r}
    labels = [f"{s}\n{k}" for s, r in servers.items() for k in r["loads"]]
    loads = [load for r in servers.values() for load in r["loads"].values()]
    raw = get(results, "raw", model) or {}
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    meta = results["meta"]
    title = f"{model}: commit {meta['commit']}, {meta['date_utc']}. {meta['label']}"
    fig.suptitle(textwrap.fill(title, 170), fontsize=9)
    _bars(axes[0][0], labels, [x["c32"]["req_per_s"] for x in loads], "c=32 req/s (one row each)")
    if raw:
        axes[0][0].axhline(
            raw["best_items_per_s"], color="red", ls="--", label=f"raw ORT best batch ({raw['best_batch']})"
        )
        axes[0][0].axhline(raw["batch1_items_per_s"], color="gray", ls=":", label="raw ORT batch 1")
        axes[0][0].legend(fontsize=8)
    _bars(axes[0][1], labels, [x["c1"]["p50_ms"] for x in loads], "c=1 p50 latency (ms)")
    if raw:
        axes[0][1].axhline(raw["batch1_p50_ms"], color="red", ls="--", label="raw session.run p50")
        axes[0][1].legend(fontsize=8)
    names = list(servers)
    _bars(axes[1][0], names, [r["pss_mb"] for r in servers.values()], "PSS of the process tree after load (MB)")
    if raw:
        axes[1][0].axhline(raw["model_pss_mb"] + 200, color="red", ls="--", label="target: one model copy + 200 MB")
        axes[1][0].legend(fontsize=8)
    _bars(axes[1][1], names, [r["cold_start_s"] for r in servers.values()], "cold start: exec -> first 200 (s)")
    parts = get(results, "parts", model, "sum_s")
    if parts:
        axes[1][1].axhline(parts, color="gray", ls=":", label="modelfn's parts measured alone")
        axes[1][1].axhline(parts * 1.3, color="red", ls="--", label="target: 1.3x parts")
        axes[1][1].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _bars(ax: Any, labels: list[str], values: list[float], title: str) -> None:
    bars = ax.bar(range(len(values)), values, color="#4878a8")
    ax.bar_label(bars, fmt="%.3g", fontsize=7)
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    ax.set_title(title, fontsize=10)


def main() -> None:
    """``python -m bench.report RESULTS.json``: rewrite its .md and .png from the JSON."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results", type=Path)
    path = parser.parse_args().results
    results = json.loads(path.read_text())
    path.with_suffix(".md").write_text(markdown(results, path.with_suffix(".png").name))
    plot(results, path.with_suffix(".png"))


if __name__ == "__main__":
    main()
