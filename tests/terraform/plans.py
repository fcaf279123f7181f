"""Plan the root stacks with the offline providers and read `terraform show -json`: what an apply would send."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.terraform.tools import Result, terraform

# Example inputs per stack (as in terraform.tfvars.example, events on); variants override keys.
BASE: dict[str, dict[str, Any]] = {
    "aws": {
        "region": "eu-west-1",
        "name": "iris",
        "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/modelfn:0.1.0",
        "model_uri": "s3://my-models-123456789012/models/iris@prod",
        "create_bucket": True,
        "vpc_id": "vpc-0123456789abcdef0",
        "alb_subnet_ids": ["subnet-a", "subnet-b"],
        "task_subnet_ids": ["subnet-c"],
        "certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc",
        "domain_name": "iris.ml.example.com",
        "concurrency": 8,
        "events_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:modelfn/iris/events-AbCdEf",
        "events": {"input_prefix": "inputs/", "output_prefix": "outputs/"},
    },
    "gcp": {
        "project_id": "my-project",
        "region": "europe-west4",
        "name": "iris",
        "image": "europe-west4-docker.pkg.dev/my-project/modelfn/modelfn:0.1.0",
        "model_uri": "gs://my-project-models/models/iris@prod",
        "create_bucket": True,
        "concurrency": 8,
        "secrets": {"API_TOKEN": "api-token"},
        "events": {"input_prefix": "inputs/", "output_prefix": "outputs/"},
    },
    "azure": {
        "subscription_id": "00000000-0000-0000-0000-000000000000",
        "location": "westeurope",
        "resource_group_name": "rg-modelfn-iris",
        "storage_account_name": "mlmodels0001",
        "create_storage_account": True,
        "name": "iris",
        "image": "mlregistry.azurecr.io/modelfn:0.1.0",
        "model_uri": "az://models/team/iris@prod",
        "concurrency": 8,
        "events_secret": "0123456789abcdef0123456789abcdef",
        "events": {"input_prefix": "inputs/", "output_prefix": "outputs/"},
    },
}


@dataclass(frozen=True)
class Plan:
    """One planned root stack: the JSON of `terraform show -json` (or the failed run's output)."""

    result: Result
    data: dict[str, Any]

    def resources(self, kind: str | None = None) -> Iterator[dict[str, Any]]:
        """Planned resources (all modules), optionally of one type."""

        def walk(module: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
            yield from module.get("resources", [])
            for child in module.get("child_modules", []):
                yield from walk(child)

        for resource in walk(self.data["planned_values"]["root_module"]):
            if kind is None or resource["type"] == kind:
                yield resource

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        """The single planned resource of a type (and name)."""
        found = [r for r in self.resources(kind) if name is None or r["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, planned {[r['address'] for r in found]}"
        return found[0]

    def config(self, address: str) -> dict[str, Any]:
        """The configuration block of a resource (by address without instance keys), across modules."""
        parts = re.sub(r"\[[^\]]*\]", "", address).split(".")
        module = self.data["configuration"]["root_module"]
        while parts[0] == "module":
            module = module["module_calls"][parts[1]]["module"]
            parts = parts[2:]
        wanted = ".".join(parts)
        return next(r for r in module["resources"] if r["address"] == wanted)


def plan(root: Path, stack: str, name: str, overrides: Mapping[str, Any] | None = None) -> Plan:
    """Plan terraform/<stack> (already `terraform get`) with BASE[stack] + overrides."""
    values = {**BASE[stack], **(overrides or {})}
    values = {k: v for k, v in values.items() if v is not None}
    var_file = root / stack / f"{name}.tfvars.json"
    var_file.write_text(json.dumps(values))
    out = f"{name}.tfplan"
    result = terraform(root / stack, ["plan", "-no-color", "-lock=false", f"-var-file={var_file.name}", f"-out={out}"])
    if result.returncode != 0:
        return Plan(result, {})
    shown = terraform(root / stack, ["show", "-json", "-no-color", out])
    start = shown.output.index("{")  # after the "$ terraform show" header line; warnings follow the JSON
    data, _ = json.JSONDecoder().raw_decode(shown.output, start)
    return Plan(result, data)


def container_env(plan_: Plan, stack: str) -> dict[str, str]:
    """Plain environment variables of the service's container."""
    if stack == "aws":
        task = plan_.one("aws_ecs_task_definition")
        service = next(c for c in json.loads(task["values"]["container_definitions"]) if c["essential"])
        return {e["name"]: e["value"] for e in service["environment"]}
    if stack == "gcp":
        container = plan_.one("google_cloud_run_v2_service")["values"]["template"][0]["containers"][0]
    else:
        container = plan_.one("azurerm_container_app")["values"]["template"][0]["container"][0]
    return {e["name"]: e["value"] for e in container["env"] if e.get("value") is not None}
