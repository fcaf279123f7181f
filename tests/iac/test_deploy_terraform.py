"""For each cloud, the example spec's tfvars pass `terraform validate` and `terraform plan` against the
offline provider stand-ins, through the real `modelfn deploy` command line."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from iac.spec import load_spec
from tests.terraform.tools import (
    REPO,
    STACKS,
    Result,
    copy_terraform,
    require_terraform,
    run_parallel,
    terraform,
    tf_env,
)

EXAMPLES = REPO / "iac" / "examples"
SECRET = "0123456789abcdef0123456789abcdef"


def _deploy_then_validate(stack: Path, cloud: str) -> Result:
    cli = [
        sys.executable,
        "-c",
        "from iac.cli import deploy; deploy()",
        cloud,
        "--config",
        str(EXAMPLES / f"{cloud}.toml"),
        "--plan",
        "--no-init",
        "--stack-dir",
        str(stack),
    ]
    env = tf_env({"MODELFN_EVENTS_SECRET": SECRET, "PYTHONPATH": str(REPO)})
    proc = subprocess.run(cli, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    deployed = f"$ modelfn deploy {cloud} --plan\n{proc.stdout}{proc.stderr}"
    if proc.returncode != 0:
        return Result(proc.returncode, deployed)
    validated = terraform(stack, ["validate", "-no-color"])
    return Result(validated.returncode, f"{deployed}\n{validated.output}")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Result]]:
    require_terraform()
    root = copy_terraform(tmp_path_factory.mktemp("deploy"))
    return root, run_parallel({cloud: partial(_deploy_then_validate, root / cloud, cloud) for cloud in STACKS})


@pytest.mark.parametrize("cloud", STACKS)
def test_example_spec_plans_and_validates(deployed, cloud: str) -> None:
    root, results = deployed
    result = results[cloud]
    assert result.returncode == 0, result.output
    assert "Plan: " in result.output and " to add, 0 to change, 0 to destroy." in result.output, result.output
    assert "Success! The configuration is valid" in result.output
    written = json.loads((root / cloud / "terraform.tfvars.json").read_text())
    assert written == json.loads(json.dumps(load_spec(cloud, EXAMPLES / f"{cloud}.toml").to_tfvars()))


@pytest.mark.parametrize(
    ("cloud", "resource"),
    [
        ("gcp", "module.service[0].google_eventarc_trigger.uploads[0]"),
        ("aws", "module.service[0].aws_cloudwatch_event_api_destination.events[0]"),
        ("azure", "module.service[0].azurerm_eventgrid_system_topic_event_subscription.uploads[0]"),
    ],
)
def test_plan_includes_event_wiring_and_scale_to_zero(deployed, cloud: str, resource: str) -> None:
    _, results = deployed
    output = results[cloud].output
    assert f"# {resource} will be created" in output, output
    zero = {"gcp": "min_instance_count = 0", "aws": "min_capacity       = 0", "azure": "min_replicas"}[cloud]
    assert zero in output
