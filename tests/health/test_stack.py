"""The local stack's files: compose config, Prometheus config, Grafana provisioning and dashboard."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.health.conftest import missing
from tests.health.promql import exported, problems, selectors

ROOT = Path(__file__).parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
SCHEMAS = Path(__file__).parent / "schemas"
DASHBOARD = GRAFANA / "dashboards" / "modelfn.json"


def compose_cli() -> list[str]:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    missing("neither `docker compose` nor `docker-compose` is installed (Debian: apt-get install -y docker-compose)")


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def test_compose_file_validates():
    result = subprocess.run(
        [*compose_cli(), "-f", str(ROOT / "compose.yaml"), "config"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {"s3", "seed", "function", "prometheus", "grafana"}
    assert services["function"]["environment"]["MODEL_URI"] == "s3://models/demo/iris@prod"  # what seed.py writes
    assert services["function"]["depends_on"]["seed"]["condition"] == "service_completed_successfully"


def test_prometheus_config_is_valid_and_scrapes_the_function(promtool, tmp_path):
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["function:8080"]
    # Point the rule file (an in-image path) at the repository's copy, then let promtool check both.
    shutil.copy(ROOT / "deploy/prometheus/modelfn.rules.yml", tmp_path / "modelfn.rules.yml")
    config["rule_files"] = [str(tmp_path / "modelfn.rules.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("path", "name"), [("datasources/prometheus.yaml", "grafana-datasources"),
                                            ("dashboards/modelfn.yaml", "grafana-dashboards")])  # fmt: skip
def test_grafana_provisioning_matches_its_schema(path, name):
    jsonschema.validate(yaml.safe_load((GRAFANA / "provisioning" / path).read_text()), schema(name))


def test_grafana_schemas_reject_what_grafana_would():
    bad = {"apiVersion": 1, "datasources": [{"name": "p", "type": "prometheus", "access": "proxy", "url": "prom:9090"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema("grafana-datasources"))


def test_dashboard_matches_its_schema_and_the_provisioned_datasource():
    dashboard = json.loads(DASHBOARD.read_text())
    jsonschema.validate(dashboard, schema("grafana-dashboard"))
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    uid = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yaml").read_text())["datasources"][0]["uid"]
    assert {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]} == {uid}


def test_every_panel_queries_metrics_the_app_exports(settings, promtool, tmp_path):
    names = exported(settings)
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    assert all(selectors(e) for e in exprs), "a panel queries no modelfn metric"
    assert not problems(names, exprs)
    # PromQL syntax: promtool parses each expression as a recording rule.
    rules = {
        "groups": [{"name": "panels", "rules": [{"record": f"panel:{i}", "expr": e} for i, e in enumerate(exprs)]}]
    }
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(tmp_path / "panels.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
