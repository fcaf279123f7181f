"""Each SDK's launch request, captured by a local stand-in endpoint and checked against the API's schema."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import botocore
import pytest

from function.jobs.launchers import JobRequest, cloud_run, container_apps, ecs
from loader.errors import StoreConfigError, StoreUnavailable
from tests.jobs.standin import JOB_CONTAINERS, StandIn

REQUEST = JobRequest("s3://in/inputs/big.jsonl", "s3://in/outputs/big", 3)


@pytest.fixture
def standin():
    server = StandIn()
    yield server
    server.close()


def launch_settings(make_settings, standin, **values):
    return make_settings(**{"batch_api_endpoint": standin.url, "batch_container_name": "modelfn", **values})


def test_cloud_run_jobs_run_carries_overrides_and_task_count(make_settings, standin):
    from google.cloud import run_v2
    from google.protobuf import json_format

    job = "projects/p1/locations/europe-west1/jobs/modelfn-batch"
    settings = launch_settings(make_settings, standin, batch_launcher="cloud-run", batch_job_name=job)
    assert cloud_run(settings, REQUEST) == f"{job}/executions/e1"
    [req] = standin.requests
    assert urlsplit(req.path).path == f"/v2/{job}:run"  # POST /v2/{name=projects/*/locations/*/jobs/*}:run
    # Published REST schema (RunJobRequest): unknown fields are an error in strict proto3 JSON parsing.
    json_format.ParseDict(req.body, run_v2.RunJobRequest.pb(run_v2.RunJobRequest()), ignore_unknown_fields=False)
    assert req.body["overrides"]["taskCount"] == 3
    assert req.body["overrides"]["containerOverrides"] == [
        {"name": "modelfn", "args": ["--input", REQUEST.input_uri, "--output", REQUEST.output_uri]}
    ]  # no --shard: each task reads CLOUD_RUN_TASK_INDEX / CLOUD_RUN_TASK_COUNT


def ecs_shapes():
    path = Path(botocore.__file__).parent / "data" / "ecs" / "2014-11-13" / "service-2.json.gz"
    return json.loads(gzip.decompress(path.read_bytes()))["shapes"]


def check_shape(shapes, name, value, where="RunTaskRequest"):
    """Validate a wire JSON value against the published ECS service model (names, types, required, enums)."""
    shape = shapes[name]
    kind = shape["type"]
    if kind == "structure":
        assert isinstance(value, dict), where
        assert set(value) <= set(shape["members"]), f"{where}: unknown fields {set(value) - set(shape['members'])}"
        assert set(shape.get("required", [])) <= set(value), f"{where}: missing required fields"
        for key, item in value.items():
            check_shape(shapes, shape["members"][key]["shape"], item, f"{where}.{key}")
    elif kind == "list":
        assert isinstance(value, list), where
        for item in value:
            check_shape(shapes, shape["member"]["shape"], item, f"{where}[]")
    elif kind == "string":
        assert isinstance(value, str), where
        assert value in shape.get("enum", [value]), f"{where}: {value!r} not in the enum"
    elif kind in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), where
    elif kind == "boolean":
        assert isinstance(value, bool), where


def test_ecs_run_task_one_call_per_shard_with_command_overrides(make_settings, standin, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    settings = launch_settings(
        make_settings,
        standin,
        batch_launcher="ecs",
        batch_job_name="modelfn-batch:3",
        batch_ecs_cluster="batch",
        batch_ecs_subnets="subnet-a, subnet-b",
        batch_ecs_security_groups="sg-1",
    )
    assert ecs(settings, REQUEST).endswith("(+2 tasks)")
    assert len(standin.requests) == 3
    shapes = ecs_shapes()
    for shard, req in enumerate(standin.requests):
        assert req.headers["X-Amz-Target"] == "AmazonEC2ContainerServiceV20141113.RunTask"
        assert req.headers["Content-Type"] == "application/x-amz-json-1.1"
        check_shape(shapes, "RunTaskRequest", req.body)
        assert req.body["count"] == 1 and req.body["launchType"] == "FARGATE"
        assert req.body["cluster"] == "batch" and req.body["taskDefinition"] == "modelfn-batch:3"
        vpc = req.body["networkConfiguration"]["awsvpcConfiguration"]
        assert vpc == {"subnets": ["subnet-a", "subnet-b"], "securityGroups": ["sg-1"], "assignPublicIp": "DISABLED"}
        [override] = req.body["overrides"]["containerOverrides"]
        assert override == {"name": "modelfn", "command": REQUEST.args(shard)}
        assert override["command"][-2:] == ["--shard", f"{shard}/3"]


def test_ecs_placement_failures_are_retryable(make_settings, standin, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    settings = launch_settings(make_settings, standin, batch_launcher="ecs", batch_job_name="td")
    standin.fail_next += [503, 200, 299]
    with pytest.raises(StoreUnavailable, match="ECS refused"):
        ecs(settings, REQUEST)
    with pytest.raises(StoreUnavailable, match="could not place batch task 1: RESOURCE:ENI"):
        ecs(settings, REQUEST)


class FakeCredential:
    """An Entra ID token credential (the real one needs login.microsoftonline.com)."""

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        return AccessToken("token", int(time.time()) + 3600)


# From the published REST spec (Microsoft.App, Jobs.json / CommonDefinitions.json): JobExecutionTemplate
# and JobExecutionContainer properties.
TEMPLATE_FIELDS = {"containers", "initContainers"}
CONTAINER_FIELDS = {"image", "name", "command", "args", "env", "resources"}


def test_container_apps_jobs_start_one_execution_per_shard(make_settings, standin):
    settings = launch_settings(
        make_settings,
        standin,
        batch_launcher="container-apps",
        batch_job_name="modelfn-batch",
        batch_azure_subscription_id="00000000-0000-0000-0000-000000000001",
        batch_azure_resource_group="rg-ml",
    )
    assert container_apps(settings, REQUEST, FakeCredential()).startswith("job-exec-2")
    get, *starts = standin.requests
    assert get.method == "GET" and urlsplit(get.path).path.endswith("/providers/Microsoft.App/jobs/modelfn-batch")
    assert len(starts) == 3
    for shard, req in enumerate(starts):
        url = urlsplit(req.path)
        assert url.path == (
            "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-ml"
            "/providers/Microsoft.App/jobs/modelfn-batch/start"
        )
        assert parse_qs(url.query)["api-version"][0][:4].isdigit()
        assert req.headers["Authorization"] == "Bearer token"
        assert set(req.body) <= TEMPLATE_FIELDS
        [container] = req.body["containers"]
        assert set(container) <= CONTAINER_FIELDS
        # The job's own container (a start template replaces it), with only the arguments changed.
        assert container == {**JOB_CONTAINERS[0], "args": REQUEST.args(shard)}


def test_container_apps_refuses_a_job_without_the_batch_container(make_settings, standin):
    settings = launch_settings(
        make_settings,
        standin,
        batch_launcher="container-apps",
        batch_job_name="modelfn-batch",
        batch_container_name="other",
        batch_azure_subscription_id="s",
        batch_azure_resource_group="rg",
    )
    with pytest.raises(StoreConfigError, match="no container named 'other'"):
        container_apps(settings, REQUEST, FakeCredential())
    assert [r.method for r in standin.requests] == ["GET"]  # nothing started


def test_a_launcher_needs_its_job_name(make_settings):
    from function.jobs.launchers import launcher_for

    with pytest.raises(StoreConfigError, match="BATCH_JOB_NAME"):
        launcher_for(make_settings(batch_launcher="cloud-run"))
