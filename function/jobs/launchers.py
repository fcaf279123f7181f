"""Start a batch job on a cloud's job engine, with each engine's SDK imported only when it is used.

The job (or task definition) runs ``python -m function.cli batch run``; a launch only adds the
arguments: ``--input``, ``--output`` and, where the engine gives tasks no index, ``--shard I/N``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from function.settings import Settings
from loader.errors import StoreConfigError, StoreUnavailable


@dataclass(frozen=True)
class JobRequest:
    """One job execution: which object, where the parts go, how many tasks."""

    input_uri: str
    output_uri: str
    tasks: int

    def args(self, shard: int | None = None) -> list[str]:
        """The container arguments of one task (``shard`` None: the engine passes the task index)."""
        args = ["--input", self.input_uri, "--output", self.output_uri]
        return args if shard is None else [*args, "--shard", f"{shard}/{self.tasks}"]


Launcher = Callable[[JobRequest], str]


def launcher_for(settings: Settings, credential: Any = None) -> Launcher:
    """The configured engine's launcher; ``credential`` replaces Azure's default credential chain."""
    kind = settings.batch_launcher
    if not settings.batch_job_name:
        raise StoreConfigError(f"BATCH_LAUNCHER={kind} needs BATCH_JOB_NAME")
    if kind == "cloud-run":
        return lambda request: cloud_run(settings, request)
    if kind == "ecs":
        return lambda request: ecs(settings, request)
    if kind == "container-apps":
        return lambda request: container_apps(settings, request, credential)
    raise StoreConfigError(f"no launcher for BATCH_LAUNCHER={kind}")


def cloud_run(settings: Settings, request: JobRequest) -> str:
    """Cloud Run Admin API v2 ``jobs.run``: one execution, ``taskCount`` tasks (CLOUD_RUN_TASK_INDEX)."""
    try:
        from google.api_core import exceptions
        from google.cloud import run_v2
    except ImportError:
        raise StoreConfigError("cloud-run jobs need google-cloud-run: pip install 'modelfn[jobs-gcp]'") from None
    options: dict[str, Any] = {"transport": "rest"}
    if settings.batch_api_endpoint:  # an emulator or stand-in endpoint takes unauthenticated calls
        from google.auth.credentials import AnonymousCredentials

        options.update(client_options={"api_endpoint": settings.batch_api_endpoint}, credentials=AnonymousCredentials())
    override = run_v2.RunJobRequest.Overrides.ContainerOverride(name=settings.batch_container_name, args=request.args())
    body = run_v2.RunJobRequest(
        name=settings.batch_job_name,
        overrides=run_v2.RunJobRequest.Overrides(container_overrides=[override], task_count=request.tasks),
    )
    try:
        operation = run_v2.JobsClient(**options).run_job(request=body)
    except exceptions.GoogleAPICallError as exc:
        raise _refused("Cloud Run", exc.code, getattr(exc, "message", "")) from None
    execution = operation.metadata
    return str(getattr(execution, "name", "") or operation.operation.name)


def ecs(settings: Settings, request: JobRequest) -> str:
    """ECS ``RunTask`` on Fargate, one call per shard (ECS tasks get no index; overrides are per call)."""
    try:
        import boto3
        import botocore.config
        import botocore.exceptions
    except ImportError:
        raise StoreConfigError("BATCH_LAUNCHER=ecs needs boto3: pip install 'modelfn[jobs-aws]'") from None
    # No SDK retries: the event platform redelivers, and a redelivery finds the claim released.
    config = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"})
    client = boto3.session.Session().client("ecs", endpoint_url=settings.batch_api_endpoint, config=config)
    network = {
        "subnets": _split(settings.batch_ecs_subnets),
        "securityGroups": _split(settings.batch_ecs_security_groups),
        "assignPublicIp": "ENABLED" if settings.batch_ecs_public_ip else "DISABLED",
    }
    arns, container = [], settings.batch_container_name
    for shard in range(request.tasks):
        try:
            response = client.run_task(
                cluster=settings.batch_ecs_cluster or "default",
                taskDefinition=settings.batch_job_name,
                launchType="FARGATE",
                count=1,
                startedBy="modelfn-batch",
                networkConfiguration={"awsvpcConfiguration": network},
                overrides={"containerOverrides": [{"name": container, "command": request.args(shard)}]},
            )
        except botocore.exceptions.BotoCoreError as exc:
            raise StoreUnavailable(f"ECS unreachable: {type(exc).__name__}") from None
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            raise _refused("ECS", error.get("Code"), error.get("Message", "")) from None
        if response.get("failures"):
            reason = response["failures"][0].get("reason", "unknown")
            raise StoreUnavailable(f"ECS could not place batch task {shard}: {reason}")
        arns.append(response["tasks"][0]["taskArn"])
    return arns[0] if len(arns) == 1 else f"{arns[0]} (+{len(arns) - 1} tasks)"


def container_apps(settings: Settings, request: JobRequest, credential: Any = None) -> str:
    """Container Apps ``jobs.start``, one execution per shard (replicas get no index).

    A start template replaces the job's containers, so it is the job's own template (read first)
    with only the arguments of the batch container changed.
    """
    try:
        from azure.core.exceptions import AzureError, HttpResponseError
        from azure.mgmt.appcontainers import ContainerAppsAPIClient
    except ImportError:
        raise StoreConfigError(
            "container-apps jobs need azure-mgmt-appcontainers: pip install 'modelfn[jobs-azure]'"
        ) from None
    group, job = settings.batch_azure_resource_group, str(settings.batch_job_name)
    if not (settings.batch_azure_subscription_id and group):
        raise StoreConfigError("container-apps jobs need BATCH_AZURE_SUBSCRIPTION_ID and BATCH_AZURE_RESOURCE_GROUP")
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    endpoint = settings.batch_api_endpoint
    client = ContainerAppsAPIClient(credential, settings.batch_azure_subscription_id, base_url=endpoint)
    # A plain-HTTP stand-in endpoint (tests, a local proxy) cannot carry a bearer token otherwise.
    plain: dict[str, Any] = {"enforce_https": False} if (endpoint or "").startswith("http://") else {}
    names = []
    try:
        found: Any = client.jobs.get(group, job, **plain)
        containers = found.properties.template.containers if found.properties and found.properties.template else []
        for shard in range(request.tasks):
            template = _execution_template(containers, settings.batch_container_name, request.args(shard))
            # polling=False: the execution runs for as long as it needs; nobody waits here.
            poller = client.jobs.begin_start(group, job, template=template, polling=False, **plain)
            names.append(str(poller.result().get("name", "")))
    except HttpResponseError as exc:
        raise _refused("Container Apps", exc.status_code, exc.reason or "") from None
    except AzureError as exc:
        raise StoreUnavailable(f"Container Apps unreachable: {type(exc).__name__}") from None
    return names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} executions)"


def _execution_template(containers: list[Any], target: str, args: list[str]) -> Any:
    """The job's containers as a start template, with ``args`` on the ``target`` container."""
    from azure.mgmt.appcontainers.models import JobExecutionContainer, JobExecutionTemplate

    if target not in [c.name for c in containers]:
        raise StoreConfigError(f"the Container Apps job has no container named {target!r} (BATCH_CONTAINER_NAME)")
    fields = ("name", "image", "command", "env", "resources")
    return JobExecutionTemplate(
        containers=[
            JobExecutionContainer(
                **{f: getattr(c, f) for f in fields if getattr(c, f) is not None},
                args=args if c.name == target else c.args,
            )
            for c in containers
        ]
    )


def _refused(engine: str, code: Any, message: str) -> Exception:
    """Throttling and server errors are retried; anything else is a configuration problem."""
    text = f"{engine} refused the batch job launch: {code} {message[:200]}".strip()
    if str(code) in ("429", "500", "502", "503", "504", "ThrottlingException", "ServerException"):
        return StoreUnavailable(text)
    return StoreConfigError(text)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]
