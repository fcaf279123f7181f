"""The targets of issue 8, judged on one results file: each ratio or gap within a round, then over the rounds."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any, NamedTuple

MODELFN = "modelfn"
PEERS = ("bentoml", "mlserver")


def get(d: Any, *keys: str) -> Any:
    """``d[k1][k2]...``, or None where a step is missing (a failed step leaves holes in the results)."""
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def fmt(value: float | None, digits: int = 3) -> str:
    """A figure to ``digits`` significant digits; n/a when absent."""
    return "n/a" if value is None else f"{value:.{digits}g}"


def load_figure(results: dict[str, Any], server: str, model: str, kind: str, conc: str, field: str) -> float | None:
    """One field of a server's load run (``conc`` is c1 or c32)."""
    return get(results, "servers", server, model, "loads", kind, conc, field)


def best_peer(results: dict[str, Any], model: str) -> tuple[str, float] | None:
    """The peer (and its request kind) with the most c=32 req/s on ``model``."""
    best: tuple[str, float] | None = None
    for peer in PEERS:
        for kind, load in (get(results, "servers", peer, model, "loads") or {}).items():
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
    each = ", ".join(fmt(v) + unit for v in values)
    paired = sum(t.method == "paired" for t in measured)
    if not paired:
        return figure, f"{fmt(figure)}{unit} (rounds: {each})"
    label = "paired" if paired == len(measured) else f"paired in {paired} of {len(measured)} rounds"
    alone = [v for t in measured if (v := t.unpaired if t.method == "paired" else t.value) is not None]
    unpaired = f"{fmt(_pick(target, alone))}{unit} (rounds: {', '.join(fmt(v) + unit for v in alone)})"
    return figure, f"{fmt(figure)}{unit} {label} (rounds: {each}); unpaired: {unpaired if alone else 'n/a'}"


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
    figures = ", ".join(fmt(p[each]) for p in pairs)
    span = raw_text.format("-".join(dict.fromkeys(fmt(f(p[raw] for p in pairs)) for f in (min, max))))
    shown = f"{fmt(paired[median])}{unit} paired (median of {len(pairs)} pairs: {figures}{unit}; {span})"
    return target._replace(
        value=paired[median], shown=f"{shown}; unpaired: {target.shown}", method="paired", unpaired=target.value
    )


def _targets(results: dict[str, Any]) -> list[Target]:
    return [*_throughput_rows(results), *_latency_rows(results), _memory_row(results), *_cold_rows(results)]


def _throughput_rows(results: dict[str, Any]) -> list[Target]:
    rows, peer = [], best_peer(results, "mlp")
    best, batch = get(results, "raw", "mlp", "best_items_per_s"), get(results, "raw", "mlp", "best_batch")
    for kind, label, goal in (("v2-binary", "V2 binary", 0.6), ("v2-json", "V2 JSON", 0.4)):
        rps = load_figure(results, MODELFN, "mlp", kind, "c32", "req_per_s")
        ratio = rps / peer[1] if rps and peer else None
        shown = f"{fmt(ratio)}x ({fmt(rps)} vs {peer[0]} {fmt(peer[1])})" if ratio and peer else "n/a"
        rows.append(Target(f"c=32 req/s vs best peer, {label} (mlp)", ratio, shown, ">= 2x", _at_least(2), True))
        ratio = rps / best if rps and best else None
        shown = f"{fmt(ratio)} ({fmt(rps)} vs {fmt(best)} items/s at batch {batch})" if ratio else "n/a"
        name = f"c=32 req/s / raw ORT best batch, {label} (mlp)"
        paired = get(results, "servers", MODELFN, "mlp", "loads", kind, "paired")
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
        p50 = load_figure(results, MODELFN, model, kind, "c1", "p50_ms")
        for field, name in (
            ("batch1_p50_ms", f"c=1 p50 minus raw session.run p50, {label} ({model})"),
            # modelfn's weights sit on huge pages: the same for raw, so the gap is the serving path alone
            ("batch1_huge_p50_ms", f"c=1 p50 minus raw p50 with the weights on huge pages too, {label} ({model})"),
        ):
            raw = get(results, "raw", model, field)
            gap = p50 - raw if p50 is not None and raw is not None else None
            shown = f"{fmt(gap)} ms ({fmt(p50)} - {fmt(raw)})" if gap is not None else "n/a"
            target = Target(name, gap, shown, f"<= {goal} ms", _at_most(goal), False)
            if field == "batch1_p50_ms":  # the paired raw session runs with default options: no huge pages
                target = _paired(target, get(results, "servers", MODELFN, model, "loads", kind, "paired"), "c1")
            rows.append(target)
    return rows


def _memory_row(results: dict[str, Any]) -> Target:
    pss = get(results, "servers", MODELFN, "mlp", "pss_mb")
    copy = get(results, "raw", "mlp", "model_pss_mb")
    over = pss - (copy + 200) if pss is not None and copy is not None else None  # MB above the limit
    shown = f"{fmt(pss, 4)} MB (limit {fmt(copy + 200, 4)} = copy {fmt(copy, 4)} + 200)" if over is not None else "n/a"
    return Target(
        "PSS after load above one copy + 200 MB, whole tree (mlp)", over, shown, "<= 0 MB", _at_most(0), False
    )


def _cold_rows(results: dict[str, Any]) -> list[Target]:
    cold = get(results, "servers", MODELFN, "mlp", "cold_start_s")
    peers = {p: get(results, "servers", p, "mlp", "cold_start_s") for p in PEERS}
    fastest = min(((p, v) for p, v in peers.items() if v is not None), key=lambda kv: kv[1], default=None)
    ratio = cold / fastest[1] if cold and fastest else None
    shown = f"{fmt(ratio)}x ({fmt(cold)} s vs {fastest[0]} {fmt(fastest[1])} s)" if ratio and fastest else "n/a"
    rows = [Target("cold start vs fastest peer (mlp)", ratio, shown, "< 1x (keep the lead)", _below(1), False)]
    parts = get(results, "parts", "mlp", "sum_s")
    ratio = cold / parts if cold and parts else None
    shown = f"{fmt(ratio)}x ({fmt(cold)} s vs parts {fmt(parts)} s)" if ratio else "n/a"
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
