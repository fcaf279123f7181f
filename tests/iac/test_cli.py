"""`modelfn deploy` through its click command: exit codes and messages, terraform command lines, tfvars."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from iac.cli import deploy
from iac.spec import load_spec
from tests.terraform.tools import REPO, copy_terraform

EXAMPLES = REPO / "iac" / "examples"
SECRET = "0123456789abcdef0123456789abcdef"

AUTH_STDERR = {
    "gcp": "Error: Attempted to load application default credentials since neither `credentials` nor "
    "`access_token` was set in the provider block.\nOriginal error: google: could not find default credentials.",
    "aws": "Error: No valid credential sources found\n\nPlease see https://registry.terraform.io/providers/hashicorp/aws",
    "azure": "Error: building AzureRM Client: please ensure you have installed Azure CLI version 2.0.79 or newer. "
    "Error: Please run 'az login' to setup account.",
}


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_terraform(tmp_path_factory.mktemp("stacks"))


@pytest.fixture
def fake_terraform(tmp_path: Path):
    """A stand-in terraform executable: logs its argv (and TF_VAR_events_secret), fails `plan` as told."""

    def make(plan_stderr: str = "", plan_code: int = 0) -> tuple[Path, Path]:
        log = tmp_path / "calls.jsonl"
        script = tmp_path / "bin" / "terraform"
        script.parent.mkdir(exist_ok=True)
        script.write_text(
            "#!/usr/bin/env python3\n"
            "import json, os, sys\n"
            f"with open({str(log)!r}, 'a') as f:\n"
            "    secret = os.environ.get('TF_VAR_events_secret')\n"
            "    f.write(json.dumps({'argv': sys.argv[1:], 'secret': secret}) + '\\n')\n"
            f"if sys.argv[1] in ('plan', 'apply', 'destroy') and {plan_code}:\n"
            f"    sys.stderr.write({plan_stderr!r})\n"
            f"    sys.exit({plan_code})\n"
            "print('fake terraform ok')\n"
        )
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        return script, log

    return make


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(deploy, list(args), env=env, catch_exceptions=False)


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_invalid_spec_exits_2_with_field_value_and_reason(tmp_path: Path) -> None:
    config = tmp_path / "deploy.toml"
    config.write_text((EXAMPLES / "aws.toml").read_text().replace("\n[aws]\n", '\n[aws]\ngpu = "nvidia-l4"\n'))
    result = invoke("aws", "--config", str(config))
    assert result.exit_code == 2
    assert "error: invalid aws spec:\ngpu = 'nvidia-l4': ECS Fargate has no GPUs" in result.output


def test_unreadable_or_malformed_config_exits_2(tmp_path: Path) -> None:
    result = invoke("gcp", "--config", str(tmp_path / "nope.toml"))
    assert result.exit_code == 2 and "cannot read" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    result = invoke("gcp", "--config", str(bad))
    assert result.exit_code == 2 and "is not valid TOML" in result.output


def test_usage_errors_exit_2() -> None:
    config = str(EXAMPLES / "gcp.toml")
    result = invoke("gcp", "--config", config, "--plan", "--apply")
    assert result.exit_code == 2 and "choose one of --plan, --apply, --destroy, --output" in result.output
    assert invoke("oracle", "--config", config).exit_code == 2


def test_terraform_missing_exits_3(tmp_path: Path, stacks: Path) -> None:
    env = {"PATH": str(tmp_path), "MODELFN_TERRAFORM": ""}
    result = invoke("gcp", "--config", str(EXAMPLES / "gcp.toml"), "--stack-dir", str(stacks / "gcp"), env=env)
    assert result.exit_code == 3
    assert "terraform not found" in result.output


@pytest.mark.parametrize("cloud", ["gcp", "aws", "azure"])
def test_not_authenticated_exits_4_with_login_hint(cloud: str, fake_terraform, stacks: Path) -> None:
    script, _ = fake_terraform(AUTH_STDERR[cloud], 1)
    env = {"MODELFN_TERRAFORM": str(script), "MODELFN_EVENTS_SECRET": SECRET}
    result = invoke(cloud, "--config", str(EXAMPLES / f"{cloud}.toml"), "--stack-dir", str(stacks / cloud), env=env)
    assert result.exit_code == 4, result.output
    hint = {"gcp": "gcloud auth application-default login", "aws": "aws sso login", "azure": "az login"}[cloud]
    assert f"error: not authenticated to {cloud}" in result.output and hint in result.output


def test_other_terraform_failures_pass_its_exit_code_through(fake_terraform, stacks: Path) -> None:
    script, _ = fake_terraform("Error: Unsupported argument\n", 7)
    env = {"MODELFN_TERRAFORM": str(script)}
    result = invoke("gcp", "--config", str(EXAMPLES / "gcp.toml"), "--stack-dir", str(stacks / "gcp"), env=env)
    assert result.exit_code == 7
    assert "Error: Unsupported argument" in result.output and "`terraform plan` failed" in result.output


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], [["init", "-input=false"], ["plan", "-input=false"]]),
        (["--plan", "--no-init"], [["get"], ["plan", "-input=false"]]),
        (["--apply", "--auto-approve"], [["init", "-input=false"], ["apply", "-input=false", "-auto-approve"]]),
        (["--apply"], [["init", "-input=false"], ["apply", "-input=false"]]),
        (["--destroy", "--auto-approve"], [["init", "-input=false"], ["destroy", "-input=false", "-auto-approve"]]),
        (["--output"], [["init", "-input=false"], ["output", "-json"]]),
    ],
)
def test_actions_run_these_terraform_commands(flags, expected, fake_terraform, stacks: Path) -> None:
    script, log = fake_terraform()
    result = invoke(
        "gcp",
        "--config",
        str(EXAMPLES / "gcp.toml"),
        "--stack-dir",
        str(stacks / "gcp"),
        *flags,
        env={"MODELFN_TERRAFORM": str(script)},
    )
    assert result.exit_code == 0, result.output
    assert [c["argv"] for c in calls(log)] == expected


def test_writes_the_stacks_tfvars_json(fake_terraform, stacks: Path) -> None:
    script, _ = fake_terraform()
    result = invoke(
        "aws",
        "--config",
        str(EXAMPLES / "aws.toml"),
        "--stack-dir",
        str(stacks / "aws"),
        env={"MODELFN_TERRAFORM": str(script)},
    )
    assert result.exit_code == 0, result.output
    written = json.loads((stacks / "aws" / "terraform.tfvars.json").read_text())
    assert written == json.loads(json.dumps(load_spec("aws", EXAMPLES / "aws.toml").to_tfvars()))


def test_azure_events_secret_comes_from_the_environment_not_a_file(fake_terraform, stacks: Path) -> None:
    script, log = fake_terraform()
    config, stack = str(EXAMPLES / "azure.toml"), str(stacks / "azure")
    env = {"MODELFN_TERRAFORM": str(script), "MODELFN_EVENTS_SECRET": ""}
    result = invoke("azure", "--config", config, "--stack-dir", stack, env=env)
    assert result.exit_code == 2 and "$MODELFN_EVENTS_SECRET" in result.output
    result = invoke("azure", "--config", config, "--stack-dir", stack, env={**env, "MODELFN_EVENTS_SECRET": SECRET})
    assert result.exit_code == 0, result.output
    assert {c["secret"] for c in calls(log)} == {SECRET}
    assert SECRET not in (stacks / "azure" / "terraform.tfvars.json").read_text()
    assert "TF_VAR_events_secret" not in os.environ
