"""The deploy spec refuses what the Terraform stacks refuse (issue #9 items 12, 14, 15), before any plan runs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from iac.errors import InvalidSpec
from iac.spec import parse_spec
from tests.iac.test_spec import example

GPU_IMAGE = "europe-west4-docker.pkg.dev/my-project/modelfn/modelfn:0.1.0-gpu"


def _gcp(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(example("gcp"))
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        elif key in ("public", "gpu", "image"):
            data["gcp"][key] = value
        else:
            data[key] = value
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"public": True}, "anyone POST /events"),
        ({"cpu": 1, "memory_mib": 8192}, "memory_mib for cpu 1 must be between 512 and 4096"),
        ({"cpu": 4, "memory_mib": 1024}, "memory_mib for cpu 4 must be between 2048 and 16384"),
        ({"name": "a-twenty-four-char-name1"}, "name is too long"),
        ({"gpu": "nvidia-l4", "cpu": 4, "memory_mib": 16384}, "gpu variant"),
    ],
)
def test_gcp_spec_refuses(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        parse_spec("gcp", _gcp(**changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"public": True, "events": None},
        {"cpu": 8, "memory_mib": 32768},
        {"name": "a-twenty-four-char-name1", "events": None},
        {"gpu": "nvidia-l4", "cpu": 4, "memory_mib": 16384, "image": GPU_IMAGE},
    ],
)
def test_gcp_spec_accepts_the_valid_neighbours(changes: dict[str, Any]) -> None:
    parse_spec("gcp", _gcp(**changes))


@pytest.mark.parametrize("cloud", ["gcp", "aws", "azure"])
@pytest.mark.parametrize("name", ["THREADS", "KEEPALIVE_SECONDS"])
def test_serving_env_is_owned_by_the_stacks(cloud: str, name: str) -> None:
    data = copy.deepcopy(example(cloud))
    data.setdefault("env", {})[name] = "1"
    with pytest.raises(InvalidSpec, match=f"{name} are set by the deployment itself"):
        parse_spec(cloud, data)


@pytest.mark.parametrize("cloud", ["gcp", "aws", "azure"])
def test_first_deployment_step_reaches_the_stack(cloud: str) -> None:
    data = copy.deepcopy(example(cloud))
    assert parse_spec(cloud, data).to_tfvars()["deploy_service"] is True
    data["deploy_service"] = False
    assert parse_spec(cloud, data).to_tfvars()["deploy_service"] is False
