"""Shared helpers for the Terraform and deploy-driver tests: find the tools, copy stacks, run terraform."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO / "terraform"
MODULES = ("cloud-run", "ecs-fargate", "container-apps")
STACKS = ("gcp", "aws", "azure")
CHECKOV = REPO / ".tools" / "checkov-venv" / "bin" / "checkov"
DEFAULT_RC = Path.home() / ".cache" / "terraform-offline" / "terraformrc"
HINT = "run `source scripts/terraform-tools.sh` first; MODELFN_REQUIRE_TERRAFORM=1 turns this skip into a failure"


def required() -> bool:
    """CI sets MODELFN_REQUIRE_TERRAFORM=1: missing tools then fail instead of skipping."""
    return os.environ.get("MODELFN_REQUIRE_TERRAFORM") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip loudly, or fail when the tools are required."""
    message = f"TERRAFORM CHECKS NOT RUN: {reason} ({HINT})"
    if required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def cli_config() -> Path | None:
    """The terraformrc that points Terraform at the offline provider stand-ins."""
    configured = os.environ.get("TF_CLI_CONFIG_FILE")
    for path in (Path(configured) if configured else None, DEFAULT_RC):
        if path is not None and path.is_file() and "dev_overrides" in path.read_text():
            return path
    return None


def require_terraform(providers: bool = True) -> None:
    """Skip/fail unless terraform (and, with providers, the offline stand-ins) are installed."""
    if shutil.which("terraform") is None:
        skip_or_fail("terraform is not on PATH")
    if providers and cli_config() is None:
        skip_or_fail("the offline provider stand-ins are not installed (no TF_CLI_CONFIG_FILE)")


def require_checkov() -> Path:
    """Skip/fail unless checkov is installed in .tools/checkov-venv."""
    if not CHECKOV.is_file():
        skip_or_fail(f"checkov is not installed at {CHECKOV.relative_to(REPO)}")
    return CHECKOV


def tf_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for terraform runs against the stand-ins."""
    env = dict(os.environ)
    rc = cli_config()
    if rc is not None:
        env["TF_CLI_CONFIG_FILE"] = str(rc)
    env.update({"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_CLI_ARGS": "-no-color"})
    env.update(extra or {})
    return env


def copy_terraform(dest: Path) -> Path:
    """Copy terraform/ to dest (terraform writes .terraform/ next to the code; never in the repo)."""
    target = dest / "terraform"
    shutil.copytree(
        TERRAFORM_DIR,
        target,
        ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*", "terraform.tfvars.json"),
    )
    return target


@dataclass(frozen=True)
class Result:
    """Outcome of a sequence of terraform commands."""

    returncode: int
    output: str


def terraform(cwd: Path, *commands: list[str], env: Mapping[str, str] | None = None, timeout: int = 1200) -> Result:
    """Run terraform commands in order in cwd, stopping at the first failure."""
    output = []
    for args in commands:
        proc = subprocess.run(
            ["terraform", *args],
            cwd=cwd,
            env=dict(env or tf_env()),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output.append(f"$ terraform {' '.join(args)}\n{proc.stdout}{proc.stderr}")
        if proc.returncode != 0:
            return Result(proc.returncode, "\n".join(output))
    return Result(0, "\n".join(output))


def run_parallel(jobs: Mapping[str, Callable[[], Result]], workers: int = 4) -> dict[str, Result]:
    """Run independent terraform jobs concurrently (each starts its own provider processes)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}
