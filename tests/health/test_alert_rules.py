"""The shipped Prometheus rules: promtool checks and unit tests, and only metrics the app really exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from function.app import create_app

RULES_DIR = Path(__file__).parents[2] / "deploy" / "prometheus"
RULES = RULES_DIR / "modelfn.rules.yml"
RULE_TESTS = RULES_DIR / "modelfn.rules.test.yml"
# A metric name in PromQL, not part of a recording rule name (modelfn:...) or a longer identifier.
METRIC = re.compile(r"(?<![\w:])(modelfn_\w+)(\{[^}]*\})?")
LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
SCRAPE_LABELS = {"job", "instance"}  # added by Prometheus, not by the app


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian: apt-get install -y prometheus)")
    return path


def exported(settings) -> dict[str, set[str]]:
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


def rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_promtool_check_rules(promtool):
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests(promtool):
    result = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name], cwd=RULES_DIR, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_and_their_tests_use_only_exported_metrics_and_labels(settings):
    names = exported(settings)
    assert "modelfn_http_requests_total" in names and "modelfn_input_psi_max" in names  # the index is complete
    series = [s["series"] for t in yaml.safe_load(RULE_TESTS.read_text())["tests"] for s in t["input_series"]]
    used = [sel for text in [*rule_exprs(), *series] for sel in selectors(text)]
    assert {m for m, _ in used} >= {"modelfn_http_requests_total", "modelfn_output_psi"}  # the parser finds them
    unknown = sorted({m for m, _ in used if m not in names})
    assert not unknown, f"rules reference metrics the app does not export: {unknown}"
    bad_labels = sorted({(m, lbl) for m, labels in used for lbl in labels - names[m] - SCRAPE_LABELS})
    assert not bad_labels, f"labels the metric does not carry: {bad_labels}"


def test_every_alert_has_a_promtool_test():
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    tested = {
        case["alertname"]
        for t in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in t.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert alerts == tested
