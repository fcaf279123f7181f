"""The metric names the app really exports (from its registry) and the modelfn_* selectors in PromQL text."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from function.app import create_app
from function.settings import Settings

# A metric name in PromQL, not part of a recording rule name (modelfn:...) or a longer identifier.
METRIC = re.compile(r"(?<![\w:])(modelfn_\w+)(\{[^}]*\})?")
LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
SCRAPE_LABELS = {"job", "instance"}  # added by Prometheus, not by the app


def exported(settings: Settings) -> dict[str, set[str]]:
    """Every sample name the app's registry can export, with the label names it carries."""
    registry: CollectorRegistry = create_app(settings).extensions["modelfn"].metrics.registry
    names: dict[str, set[str]] = {}
    for name, collector in registry._names_to_collectors.items():  # the only index of every sample name
        labels = set(getattr(collector, "_labelnames", ()))
        names[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return names


def selectors(text: str) -> list[tuple[str, set[str]]]:
    """(metric, label names) of every modelfn_* selector in PromQL or a promtool series."""
    return [(m.group(1), set(LABEL.findall(m.group(2) or ""))) for m in METRIC.finditer(text)]


def problems(names: dict[str, set[str]], texts: list[str]) -> list[str]:
    """Metrics that are not exported, and labels a metric does not carry, across PromQL texts."""
    used = [sel for text in texts for sel in selectors(text)]
    found = [f"unknown metric {m}" for m in sorted({m for m, _ in used if m not in names})]
    bad = sorted({(m, lbl) for m, labels in used if m in names for lbl in labels - names[m] - SCRAPE_LABELS})
    return found + [f"{m} has no label {lbl}" for m, lbl in bad]
