"""`modelfn deploy {gcp|aws|azure} --config deploy.toml [--plan | --apply | --destroy | --output]`."""

from __future__ import annotations

from pathlib import Path

import click

from iac.driver import Deployment, run
from iac.errors import DeployError
from iac.spec import CLOUDS, load_spec


@click.command("deploy")
@click.argument("cloud", type=click.Choice(CLOUDS))
@click.option(
    "--config",
    "config",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Deployment spec (TOML): shared keys plus a [gcp], [aws] or [azure] table.",
)
@click.option("--plan", "plan", is_flag=True, help="Show what would change (the default).")
@click.option("--apply", "apply", is_flag=True, help="Create or update the deployment.")
@click.option("--destroy", "destroy", is_flag=True, help="Delete the deployment.")
@click.option("--output", "output", is_flag=True, help="Print the stack's outputs (URL, identity, bucket) as JSON.")
@click.option("--auto-approve", is_flag=True, help="Do not ask before --apply/--destroy.")
@click.option(
    "--stack-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Root stack to use instead of terraform/<cloud>.",
)
@click.option(
    "--no-init",
    is_flag=True,
    help="Skip `terraform init` (already initialised, or offline); local modules are fetched with `terraform get`.",
)
def deploy(
    cloud: str,
    config: Path,
    plan: bool,
    apply: bool,
    destroy: bool,
    output: bool,
    auto_approve: bool,
    stack_dir: Path | None,
    no_init: bool,
) -> None:
    """Deploy the modelfn image to CLOUD with Terraform, from a validated spec."""
    chosen = [name for name, on in (("plan", plan), ("apply", apply), ("destroy", destroy), ("output", output)) if on]
    if len(chosen) > 1:
        raise click.UsageError("choose one of --plan, --apply, --destroy, --output")
    try:
        spec = load_spec(cloud, config)
        deployment = Deployment(
            spec=spec, action=(chosen or ["plan"])[0], stack_dir=stack_dir, init=not no_init, auto_approve=auto_approve
        )
        run(deployment)
    except DeployError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(exc.exit_code) from None
