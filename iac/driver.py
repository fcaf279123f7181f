"""Write terraform.tfvars.json for a root stack and run Terraform with clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from iac.errors import InvalidSpec, NotAuthenticated, TerraformFailed, TerraformMissing
from iac.spec import AzureSpec, DeploySpec

ACTIONS = ("plan", "apply", "destroy", "output")
TFVARS = "terraform.tfvars.json"
# Installed from a wheel the stacks ship inside the package (setup.py); in a checkout they are terraform/.
PACKAGED_STACKS = Path(__file__).resolve().parent / "stacks"
CHECKOUT_STACKS = Path(__file__).resolve().parent.parent / "terraform"
DEFAULT_STACKS = PACKAGED_STACKS if PACKAGED_STACKS.is_dir() else CHECKOUT_STACKS

# Well-known credential failures, per provider, as they appear in terraform's stderr.
AUTH_ERRORS: dict[str, tuple[str, ...]] = {
    "gcp": (
        "could not find default credentials",
        "oauth2: cannot fetch token",
        "reauthentication failed",
        "invalid_grant",
        "attempted to load application default credentials",
    ),
    "aws": (
        "no valid credential sources found",
        "failed to refresh cached credentials",
        "nocredentialproviders",
        "expiredtoken",
        "invalidclienttokenid",
        "the security token included in the request is invalid",
        "get identity: get credentials",
    ),
    "azure": (
        "please run 'az login'",
        "az login",
        "unable to build authorizer",
        "building azurerm client",
        "obtaining authorization token",
        "aadsts",
    ),
}
LOGIN_HINT = {
    "gcp": "run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS)",
    "aws": "run `aws sso login` / `aws configure`, or set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
    "azure": "run `az login` (or set ARM_CLIENT_ID/ARM_TENANT_ID with a secret, certificate or OIDC token)",
}


@dataclass
class Deployment:
    """One run of the driver: a validated spec, its root stack and the action to take."""

    spec: DeploySpec
    action: str = "plan"
    stack_dir: Path | None = None
    init: bool = True
    auto_approve: bool = False
    terraform: str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    # Installed from a wheel, the packaged stacks are copied here (state and .terraform live with them,
    # never inside site-packages, where an upgrade would delete them).
    workdir: Path = Path(".modelfn")

    @property
    def stack(self) -> Path:
        """The root stack directory: --stack-dir, terraform/<cloud> in a checkout, or the workdir's copy."""
        if self.stack_dir is not None:
            return self.stack_dir.resolve()
        if DEFAULT_STACKS is PACKAGED_STACKS:
            return (self.workdir / "terraform" / self.spec.cloud).resolve()
        return (CHECKOUT_STACKS / self.spec.cloud).resolve()


def materialise(deployment: Deployment) -> Path:
    """Copy the packaged stacks into the workdir when they are used (code refreshed, state kept)."""
    stack = deployment.stack
    if deployment.stack_dir is None and DEFAULT_STACKS is PACKAGED_STACKS:
        shutil.copytree(PACKAGED_STACKS, stack.parent, dirs_exist_ok=True)
    return stack


def find_terraform(explicit: str | None, environ: Mapping[str, str]) -> str:
    """The terraform executable: explicit, $MODELFN_TERRAFORM, or on PATH."""
    name = explicit or environ.get("MODELFN_TERRAFORM") or "terraform"
    found = shutil.which(name, path=environ.get("PATH"))
    if not found:
        raise TerraformMissing(
            f"terraform not found ({name!r}): install Terraform >= 1.9 "
            "(https://developer.hashicorp.com/terraform/install) or set MODELFN_TERRAFORM"
        )
    return found


def write_tfvars(spec: DeploySpec, stack: Path) -> Path:
    """Write the spec as the stack's terraform.tfvars.json and return its path."""
    if not (stack / "main.tf").is_file():
        raise InvalidSpec(f"{stack} is not a Terraform root stack (no main.tf)")
    path = stack / TFVARS
    path.write_text(json.dumps(spec.to_tfvars(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def secret_env(deployment: Deployment) -> dict[str, str]:
    """TF_VAR_* values that must not be written to disk (Azure's events secret)."""
    spec = deployment.spec
    if not isinstance(spec, AzureSpec) or spec.events is None or deployment.action == "output":
        return {}
    value = deployment.environ.get(spec.events_secret_env, "")
    if len(value) < 16:
        raise InvalidSpec(
            f"events need the shared secret (16+ characters) in ${spec.events_secret_env}: "
            f'export {spec.events_secret_env}="$(openssl rand -hex 32)"'
        )
    return {"TF_VAR_events_secret": value}


def commands(deployment: Deployment) -> list[list[str]]:
    """The terraform command lines for the deployment's action, in order."""
    first = ["init", "-input=false"] if deployment.init else ["get"]
    approve = ["-auto-approve"] if deployment.auto_approve else []
    action = {
        "plan": ["plan", "-input=false"],
        "apply": ["apply", "-input=false", *approve],
        "destroy": ["destroy", "-input=false", *approve],
        "output": ["output", "-json"],
    }[deployment.action]
    return [first, action]


def run(deployment: Deployment) -> int:
    """Write tfvars and run terraform; raise a typed DeployError on failure, return 0 on success."""
    if deployment.action not in ACTIONS:
        raise InvalidSpec(f"unknown action {deployment.action!r}: choose one of {', '.join(ACTIONS)}")
    terraform = find_terraform(deployment.terraform, deployment.environ)
    stack = materialise(deployment)
    env = {**deployment.environ, **secret_env(deployment), "TF_IN_AUTOMATION": "1"}
    write_tfvars(deployment.spec, stack)
    for args in commands(deployment):
        _run_one([terraform, *args], stack, env, deployment.spec.cloud)
    return 0


def _run_one(cmd: Sequence[str], cwd: Path, env: Mapping[str, str], cloud: str) -> None:
    """Run one terraform command; stdout streams through, stderr is echoed and inspected."""
    proc = subprocess.run(cmd, cwd=cwd, env=dict(env), stderr=subprocess.PIPE, text=True, check=False)
    if proc.stderr:
        sys.stderr.write(proc.stderr)
    if proc.returncode == 0:
        return
    lowered = proc.stderr.lower()
    if any(marker in lowered for marker in AUTH_ERRORS[cloud]):
        raise NotAuthenticated(f"not authenticated to {cloud}: {LOGIN_HINT[cloud]}")
    raise TerraformFailed(f"`terraform {cmd[1]}` failed in {cwd} (exit {proc.returncode})", proc.returncode)
