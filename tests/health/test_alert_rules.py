"""The shipped Prometheus rules: promtool checks and unit tests, and only metrics the app really exports."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.health.promql import exported, problems, selectors

RULES_DIR = Path(__file__).parents[2] / "deploy" / "prometheus"
RULES = RULES_DIR / "modelfn.rules.yml"
RULE_TESTS = RULES_DIR / "modelfn.rules.test.yml"


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
    assert not problems(names, [*rule_exprs(), *series])


def test_every_alert_has_a_promtool_test():
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    tested = {
        case["alertname"]
        for t in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in t.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert alerts == tested
