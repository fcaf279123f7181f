"""Deployment specs: the examples parse, bad specs fail with field, value and reason."""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from iac.errors import InvalidSpec
from iac.spec import AwsSpec, AzureSpec, GcpSpec, load_spec, parse_spec
from tests.terraform.tools import REPO, STACKS, TERRAFORM_DIR

EXAMPLES = REPO / "iac" / "examples"


def example(cloud: str) -> dict[str, Any]:
    return tomllib.loads((EXAMPLES / f"{cloud}.toml").read_text())


def declared_variables(stack: str) -> set[str]:
    return set(re.findall(r'^variable "([a-z_0-9]+)"', (TERRAFORM_DIR / stack / "variables.tf").read_text(), re.M))


@pytest.mark.parametrize(("cloud", "kind"), [("gcp", GcpSpec), ("aws", AwsSpec), ("azure", AzureSpec)])
def test_examples_parse(cloud: str, kind: type) -> None:
    spec = load_spec(cloud, EXAMPLES / f"{cloud}.toml")
    assert isinstance(spec, kind)
    assert spec.scaling.min_instances == 0
    assert spec.events is not None


@pytest.mark.parametrize("cloud", STACKS)
def test_tfvars_only_use_the_stacks_variables(cloud: str) -> None:
    tfvars = load_spec(cloud, EXAMPLES / f"{cloud}.toml").to_tfvars()
    assert set(tfvars) <= declared_variables(cloud), set(tfvars) - declared_variables(cloud)
    assert tfvars["min_instances"] == 0 and tfvars["max_instances"] == 5 and tfvars["concurrency"] == 8
    assert tfvars["events"] == {"input_prefix": "inputs/", "output_prefix": "outputs/"}
    assert "events_secret" not in tfvars and "events_secret_env" not in tfvars


def test_cloud_table_overrides_shared_keys() -> None:
    data = example("gcp")
    data["image"] = "shared:1"
    assert parse_spec("gcp", data).image == data["gcp"]["image"]
    del data["gcp"]["image"]
    assert parse_spec("gcp", data).image == "shared:1"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value

    return mutate


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        del node[leaf]

    return mutate


INVALID = [
    ("gcp", _set("name", "Iris_1"), r"name = 'Iris_1': String should match pattern"),
    (
        "gcp",
        _set("model_uri", "s3://b/iris@1"),
        r"model_uri = 's3://b/iris@1': must look like gs://bucket/prefix/name@alias",
    ),
    ("gcp", _set("cpu", 3), r"cpu = 3: Cloud Run cpu must be one of 1, 2, 4, 6, 8"),
    ("gcp", _set("gcp.gpu", "nvidia-l4"), r"Cloud Run GPUs \(nvidia-l4\) need cpu >= 4 and memory_mib >= 16384"),
    ("gcp", _set("gcp.gpu", "nvidia-t4"), r"gpu = 'nvidia-t4': Input should be 'nvidia-l4'"),
    ("gcp", _drop("gcp.project_id"), r"project_id: Field required"),
    ("gcp", _drop("gcp"), r"the spec has no \[gcp\] table"),
    ("gcp", _set("colour", "blue"), r"colour = 'blue': Extra inputs are not permitted"),
    ("gcp", _set("scaling.min_instances", 9), r"scaling = .*: min_instances \(9\) must be <= max_instances \(5\)"),
    ("gcp", _set("scaling.concurrency", 0), r"scaling.concurrency = 0: Input should be greater than or equal to 1"),
    (
        "gcp",
        _set("events.output_prefix", "inputs/out/"),
        r"events = .*: input_prefix and output_prefix must not overlap",
    ),
    (
        "gcp",
        _set("events.input_prefix", "/inputs"),
        r"events.input_prefix = '/inputs': must be a relative prefix ending in '/'",
    ),
    ("gcp", _set("env.MODEL_URI", "gs://x/y@1"), r"env = .*: MODEL_URI are set by the deployment itself"),
    ("gcp", _set("env.log_level", "debug"), r"env = .*: names must be upper-case identifiers: log_level"),
    ("aws", _set("aws.gpu", "nvidia-l4"), r"gpu = 'nvidia-l4': ECS Fargate has no GPUs"),
    ("aws", _set("memory_mib", 16384), r"memory_mib for cpu 1 must be a multiple of 512 between 2048 and 8192"),
    ("aws", _drop("aws.events_secret_arn"), r"events need events_secret_arn"),
    (
        "aws",
        _set("aws.alb_subnet_ids", ["subnet-1"]),
        r"alb_subnet_ids = \['subnet-1'\]: List should have at least 2 items",
    ),
    ("aws", _set("aws.certificate_arn", "cert-1"), r"certificate_arn = 'cert-1': String should match pattern"),
    (
        "azure",
        _set("memory_mib", 4096),
        r"on the Consumption profile cpu must be <= 4 and memory_mib exactly cpu \* 2048",
    ),
    ("azure", _set("azure.gpu", "nvidia-l4"), r"gpu = 'nvidia-l4': Input should be 'nvidia-t4' or 'nvidia-a100'"),
    (
        "azure",
        _set("request_timeout_seconds", 300),
        r"request_timeout_seconds = 300: Input should be less than or equal to 240",
    ),
    (
        "azure",
        _set("azure.storage_account_name", "My_Account"),
        r"storage_account_name = 'My_Account': String should match pattern",
    ),
]


@pytest.mark.parametrize(("cloud", "mutate", "message"), INVALID, ids=[f"{c}-{m}" for c, _, m in INVALID])
def test_invalid_specs_say_field_value_and_why(
    cloud: str, mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = copy.deepcopy(example(cloud))
    mutate(data)
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(cloud, data)
    assert caught.value.exit_code == 2
    assert re.search(message, str(caught.value)), str(caught.value)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "deploy.toml"
    bad.write_text('name = "iris"\nimage = \n')
    with pytest.raises(InvalidSpec, match="is not valid TOML"):
        load_spec("gcp", bad)
    with pytest.raises(InvalidSpec, match="cannot read"):
        load_spec("gcp", tmp_path / "missing.toml")
