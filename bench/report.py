"""Results -> a Markdown report (targets of issue 8 as ratios, full tables) and a PNG plot."""

from __future__ import annotations

import argparse
import json
import statistics
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

MODELFN = "modelfn"
PEERS = ("bentoml", "mlserver")
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


def _get(d: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def _load(results: dict[str, Any], server: str, model: str, kind: str, conc: str, field: str) -> float | None:
    return _get(results, "servers", server, model, "loads", kind, conc, field)


def best_peer(results: dict[str, Any], model: str) -> tuple[str, float] | None:
    """The peer (and its request kind) with the most c=32 req/s on ``model``."""
    best: tuple[str, float] | None = None
    for peer in PEERS:
        for kind, load in (_get(results, "servers", peer, model, "loads") or {}).items():
            rps = load["c32"]["req_per_s"]
            if best is None or rps > best[1]:
                best = (f"{peer} {kind}", rps)
    return best


class Target(NamedTuple):
    """One target of issue 8 measured on one set of results: ``ok(value)`` says whether it holds.

    ``method`` is "paired" where ``value`` comes from raw slices interleaved with the load (bench/paired.py);
    ``unpaired`` is then the figure from the separate raw run, shown beside it.
    """

    name: str
    value: float | None
    shown: str
    goal: str
    ok: Callable[[float], bool]
    higher_is_better: bool
    method: str = ""
    unpaired: float | None = None


def target_rows(results: dict[str, Any]) -> list[str]:
    """One row per target of issue 8, modelfn with default settings, on the MLP unless noted.

    A ratio or a gap is computed within each round (its two sides measured minutes apart, not an hour; paired
    slice by slice where the round has paired figures) and the figure is the median of the rounds, the less
    favourable one of the middle two when they are even.
    """
    rounds = results.get("rounds") or [results]
    per_round = [{t.name: t for t in _targets(r)} for r in rounds]
    rows = []
    for target in _targets(results):
        measured = [t for r in per_round if (t := r.get(target.name)) is not None and t.value is not None]
        if not measured:
            rows.append(f"| {target.name} | n/a | {target.goal} | n/a |")
            continue
        figure, shown = _over_rounds(target, measured)
        met = "yes" if target.ok(figure) else "**no**"
        rows.append(f"| {target.name} | {shown} | {target.goal} | {met} |")
    return rows


def _pick(target: Target, values: list[float]) -> float:
    pick = statistics.median_low if target.higher_is_better else statistics.median_high
    return pick(values)


def _over_rounds(target: Target, measured: list[Target]) -> tuple[float, str]:
    """The figure over the rounds and its text; paired rounds name their method and keep the unpaired figure."""
    values = [t.value for t in measured if t.value is not None]
    figure = _pick(target, values)
    if len(values) == 1:
        return figure, target.shown
    unit = next((u for u in (" ms", " MB", "x") if target.goal.endswith(u)), "")
    each = ", ".join(_fmt(v) + unit for v in values)
    paired = sum(t.method == "paired" for t in measured)
    if not paired:
        return figure, f"{_fmt(figure)}{unit} (rounds: {each})"
    label = "paired" if paired == len(measured) else f"paired in {paired} of {len(measured)} rounds"
    alone = [v for t in measured if (v := t.unpaired if t.method == "paired" else t.value) is not None]
    unpaired = f"{_fmt(_pick(target, alone))}{unit} (rounds: {', '.join(_fmt(v) + unit for v in alone)})"
    return figure, f"{_fmt(figure)}{unit} {label} (rounds: {each}); unpaired: {unpaired if alone else 'n/a'}"


# Per concurrency: the paired median, each pair's figure, the raw side of each pair and how it is shown.
PAIRED = {
    "c1": ("c1_gap_ms", "gap_ms", "raw_p50_ms", "raw p50 {} ms"),
    "c32": ("c32_ratio", "ratio", "raw_best_items_per_s", "raw best {} items/s"),
}


def _paired(target: Target, paired: dict[str, Any] | None, conc: str) -> Target:
    """``target`` judged from this round's paired median when it has one, the unpaired figure kept beside it."""
    median, each, raw, raw_text = PAIRED[conc]
    if paired is None or paired.get(median) is None:
        return target
    unit = " ms" if conc == "c1" else ""
    pairs = paired[conc]
    figures = ", ".join(_fmt(p[each]) for p in pairs)
    span = raw_text.format("-".join(dict.fromkeys(_fmt(f(p[raw] for p in pairs)) for f in (min, max))))
    shown = f"{_fmt(paired[median])}{unit} paired (median of {len(pairs)} pairs: {figures}{unit}; {span})"
    return target._replace(
        value=paired[median], shown=f"{shown}; unpaired: {target.shown}", method="paired", unpaired=target.value
    )


def _targets(results: dict[str, Any]) -> list[Target]:
    return [*_throughput_rows(results), *_latency_rows(results), _memory_row(results), *_cold_rows(results)]


def _throughput_rows(results: dict[str, Any]) -> list[Target]:
    rows, peer = [], best_peer(results, "mlp")
    best, batch = _get(results, "raw", "mlp", "best_items_per_s"), _get(results, "raw", "mlp", "best_batch")
    for kind, label, goal in (("v2-binary", "V2 binary", 0.6), ("v2-json", "V2 JSON", 0.4)):
        rps = _load(results, MODELFN, "mlp", kind, "c32", "req_per_s")
        ratio = rps / peer[1] if rps and peer else None
        shown = f"{_fmt(ratio)}x ({_fmt(rps)} vs {peer[0]} {_fmt(peer[1])})" if ratio and peer else "n/a"
        rows.append(Target(f"c=32 req/s vs best peer, {label} (mlp)", ratio, shown, ">= 2x", _at_least(2), True))
        ratio = rps / best if rps and best else None
        shown = f"{_fmt(ratio)} ({_fmt(rps)} vs {_fmt(best)} items/s at batch {batch})" if ratio else "n/a"
        name = f"c=32 req/s / raw ORT best batch, {label} (mlp)"
        paired = _get(results, "servers", MODELFN, "mlp", "loads", kind, "paired")
        rows.append(_paired(Target(name, ratio, shown, f">= {goal}", _at_least(goal), True), paired, "c32"))
    return rows


def _latency_rows(results: dict[str, Any]) -> list[Target]:
    rows = []
    for model, kind, label, goal in (
        ("mlp", "v2-binary", "V2 binary", 0.5),
        ("mlp", "v2-json", "V2 JSON", 1.5),
        ("demo", "v2-binary", "V2 binary", 0.5),
        ("demo", "v2-json", "V2 JSON", 0.5),
    ):
        p50 = _load(results, MODELFN, model, kind, "c1", "p50_ms")
        for field, name in (
            ("batch1_p50_ms", f"c=1 p50 minus raw session.run p50, {label} ({model})"),
            # modelfn's weights sit on huge pages: the same for raw, so the gap is the serving path alone
            ("batch1_huge_p50_ms", f"c=1 p50 minus raw p50 with the weights on huge pages too, {label} ({model})"),
        ):
            raw = _get(results, "raw", model, field)
            gap = p50 - raw if p50 is not None and raw is not None else None
            shown = f"{_fmt(gap)} ms ({_fmt(p50)} - {_fmt(raw)})" if gap is not None else "n/a"
            target = Target(name, gap, shown, f"<= {goal} ms", _at_most(goal), False)
            if field == "batch1_p50_ms":  # the paired raw session runs with default options: no huge pages
                target = _paired(target, _get(results, "servers", MODELFN, model, "loads", kind, "paired"), "c1")
            rows.append(target)
    return rows


def _memory_row(results: dict[str, Any]) -> Target:
    pss = _get(results, "servers", MODELFN, "mlp", "pss_mb")
    copy = _get(results, "raw", "mlp", "model_pss_mb")
    over = pss - (copy + 200) if pss is not None and copy is not None else None  # MB above the limit
    shown = (
        f"{_fmt(pss, 4)} MB (limit {_fmt(copy + 200, 4)} = copy {_fmt(copy, 4)} + 200)" if over is not None else "n/a"
    )
    return Target(
        "PSS after load above one copy + 200 MB, whole tree (mlp)", over, shown, "<= 0 MB", _at_most(0), False
    )


def _cold_rows(results: dict[str, Any]) -> list[Target]:
    cold = _get(results, "servers", MODELFN, "mlp", "cold_start_s")
    peers = {p: _get(results, "servers", p, "mlp", "cold_start_s") for p in PEERS}
    fastest = min(((p, v) for p, v in peers.items() if v is not None), key=lambda kv: kv[1], default=None)
    ratio = cold / fastest[1] if cold and fastest else None
    shown = f"{_fmt(ratio)}x ({_fmt(cold)} s vs {fastest[0]} {_fmt(fastest[1])} s)" if ratio and fastest else "n/a"
    rows = [Target("cold start vs fastest peer (mlp)", ratio, shown, "< 1x (keep the lead)", _below(1), False)]
    parts = _get(results, "parts", "mlp", "sum_s")
    ratio = cold / parts if cold and parts else None
    shown = f"{_fmt(ratio)}x ({_fmt(cold)} s vs parts {_fmt(parts)} s)" if ratio else "n/a"
    rows.append(
        Target("cold start / sum of its parts measured alone (mlp)", ratio, shown, "<= 1.3x", _at_most(1.3), False)
    )
    return rows


def _at_least(goal: float) -> Callable[[float], bool]:
    return lambda value: value >= goal


def _at_most(goal: float) -> Callable[[float], bool]:
    return lambda value: value <= goal


def _below(goal: float) -> Callable[[float], bool]:
    return lambda value: value < goal


def _ranged(results: dict[str, Any], spec: str, *path: str) -> str:
    """A figure, with its [min-max] over the rounds when there were several and they differ."""
    value, span = _get(results, *path), _get(results.get("ranges"), *path)
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
        batch = _get(results, "raw", model, "best_batch")
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
    for model, new in (_get(results, "servers", MODELFN) or {}).items():
        old = _get(results, "servers", "modelfn-base", model)
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
    return [
        f"# Serving benchmark: commit {meta['commit']}, {meta['date_utc']}",
        "",
        f"{meta['label']}".strip(),
        "",
        f"{meta['cpus']} CPUs, load average at start {', '.join(f'{x:.2f}' for x in meta['loadavg_at_start'])}, "
        f"Python {meta['python']}, {meta.get('rounds', 1)} round(s) (figures: median, range in brackets), "
        f"{meta['seconds_per_load']:g} s per load run, median of {meta['cold_repeats']} cold starts, "
        f"load generator: {meta['load_generator']}; run took {meta.get('wall_s', 0):.0f} s. "
        f"modelfn extra env: {meta['modelfn_env'] or 'none (defaults)'}"
        + (f"; servers pinned with taskset -c {meta['taskset']}." if meta.get("taskset") else "."),
        "",
    ]


def markdown(results: dict[str, Any], png: str) -> str:
    """The whole report."""
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
    lines += ["", f"![serving benchmark]({png})", ""]
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
    raw = _get(results, "raw", model) or {}
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
    parts = _get(results, "parts", model, "sum_s")
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
