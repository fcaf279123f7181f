"""What an apply would send, read from `terraform show -json` of the root stacks (issue #9's plan checks)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from functools import partial
from typing import Any

import pytest

from function.app import create_app
from function.settings import Settings
from tests.events import payloads
from tests.terraform.plans import Plan, container_env, plan
from tests.terraform.tools import STACKS, copy_terraform, require_terraform, run_parallel, terraform

# Session fixtures run terraform validate/test/plan for every stack and module: minutes on 2 cores.
pytestmark = pytest.mark.timeout(1800)

EVENTS = {"input_prefix": "inputs/", "output_prefix": "outputs/"}
# name -> (stack, overrides); names starting with "refuse-" must fail at plan.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "aws": ("aws", {}),
    "aws-existing-bucket": ("aws", {"create_bucket": False}),
    "aws-storage-only": ("aws", {"deploy_service": False}),
    "gcp": ("gcp", {"bucket_location": "EU"}),
    "gcp-no-events": ("gcp", {"events": None, "secrets": None}),
    "azure": ("azure", {}),
    "refuse-gcp-public-events": ("gcp", {"public": True}),
    "refuse-gcp-cpu-memory": ("gcp", {"cpu": 1, "memory_mib": 8192}),
    "refuse-gcp-sa-id-length": ("gcp", {"name": "a-twenty-four-char-name1"}),
    "refuse-gcp-gpu-cpu-image": ("gcp", {"gpu": "nvidia-l4", "cpu": 4, "memory_mib": 16384}),
}
# Idle timeouts of the platforms' front ends that Terraform cannot read from a resource (docs/deploy.md).
PLATFORM_IDLE_SECONDS = {"gcp": 600, "azure": 240}


@pytest.fixture(scope="session")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Plan]:
    """Every variant planned once, in parallel."""
    require_terraform()
    root = copy_terraform(tmp_path_factory.mktemp("plans"))
    for stack in STACKS:
        got = terraform(root / stack, ["get", "-no-color"])
        assert got.returncode == 0, got.output
    jobs = {name: partial(plan, root, stack, name, overrides) for name, (stack, overrides) in VARIANTS.items()}
    return run_parallel(jobs)  # type: ignore[arg-type]


def _planned(plans: dict[str, Plan], name: str) -> Plan:
    result = plans[name]
    assert result.result.returncode == 0, result.result.output
    return result


# --- probes: startup/liveness need no model, readiness does; the app answers accordingly ---


def _probes(plan_: Plan, stack: str) -> dict[str, str]:
    if stack == "gcp":
        c = plan_.one("google_cloud_run_v2_service")["values"]["template"][0]["containers"][0]
        return {kind: c[f"{kind}_probe"][0]["http_get"][0]["path"] for kind in ("startup", "liveness")}
    if stack == "azure":
        c = plan_.one("azurerm_container_app")["values"]["template"][0]["container"][0]
        return {kind: c[f"{kind}_probe"][0]["path"] for kind in ("startup", "readiness", "liveness")}
    task = plan_.one("aws_ecs_task_definition")
    service = next(c for c in json.loads(task["values"]["container_definitions"]) if c["essential"])
    liveness = re.search(r"127\.0\.0\.1:8080(/\w+)", service["healthCheck"]["command"][-1])
    assert liveness
    readiness = plan_.one("aws_lb_target_group")["values"]["health_check"][0]["path"]
    return {"liveness": liveness.group(1), "readiness": readiness}


@pytest.fixture(scope="module")
def unready_client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The real app before any model is published (a first deployment): events on, model missing."""
    root = tmp_path_factory.mktemp("first-deploy")
    (root / "store").mkdir()
    store = f"file://{root}/store"
    settings = Settings(
        model_uri=f"{store}/models/iris@prod",
        cache_dir=root / "cache",
        events_input_uri=f"{store}/inputs",
        events_output_uri=f"{store}/outputs",
        events_secret="0123456789abcdef0123",
    )
    return create_app(settings).test_client()


@pytest.mark.parametrize("stack", STACKS)
def test_probes_need_no_model_except_readiness(plans, unready_client, stack: str) -> None:
    probes = _probes(_planned(plans, stack), stack)
    for kind, path in probes.items():
        status = unready_client.get(path).status_code
        if kind == "readiness":
            assert status == 503, f"{stack}: readiness {path} must wait for the model"
        else:
            assert status == 200, f"{stack}: {kind} probe {path} fails before a model is published"
    assert "startup" in probes or stack == "aws"  # ECS has no startup probe (health_check_grace_period)


def test_event_grid_handshakes_are_answered_before_the_model_loads(unready_client) -> None:
    assert unready_client.get("/readyz").status_code == 503
    headers, body = payloads.validation()
    validated = unready_client.post("/events", data=body, headers=headers)
    assert validated.status_code == 200 and validated.get_json()["validationResponse"]
    options = unready_client.options("/events", headers={"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert options.status_code == 200 and options.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"


# --- keep-alive and threads ---


@pytest.mark.parametrize("stack", STACKS)
def test_keepalive_outlasts_the_platform_idle_timeout(plans, stack: str, tmp_path) -> None:
    plan_ = _planned(plans, stack)
    env = container_env(plan_, stack)
    idle = plan_.one("aws_lb")["values"]["idle_timeout"] if stack == "aws" else PLATFORM_IDLE_SECONDS[stack]
    assert int(env["KEEPALIVE_SECONDS"]) > idle, f"{stack}: Gunicorn closes idle connections before the platform"
    served = _gunicorn_config(env, tmp_path)
    assert served["keepalive"] == int(env["KEEPALIVE_SECONDS"]) and served["threads"] == int(env["THREADS"])


def _gunicorn_config(env: dict[str, str], scratch) -> dict[str, Any]:
    """What Gunicorn would run with, given the plan's container environment (the real config module)."""
    names = ("THREADS", "KEEPALIVE_SECONDS", "WORKERS", "TIMEOUT")
    code = (
        "import json, function.gunicorn_conf as g; print(json.dumps({'keepalive': g.keepalive, 'threads': g.threads}))"
    )
    child = {**os.environ, **{k: env[k] for k in names if k in env}, "PROMETHEUS_MULTIPROC_DIR": str(scratch)}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=child, capture_output=True, text=True, timeout=60, check=True
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("stack", STACKS)
def test_threads_leave_room_for_probes(plans, stack: str) -> None:
    plan_ = _planned(plans, stack)
    env = container_env(plan_, stack)
    if stack == "gcp":
        template = plan_.one("google_cloud_run_v2_service")["values"]["template"][0]
        concurrency = template["max_instance_request_concurrency"]
    elif stack == "azure":
        rule = plan_.one("azurerm_container_app")["values"]["template"][0]["http_scale_rule"][0]
        concurrency = int(rule["concurrent_requests"])
    else:
        concurrency = plans["aws"].data["variables"]["concurrency"]["value"]  # the ALB itself sets no cap
    assert env["WORKERS"] == "1" and int(env["THREADS"]) == concurrency + 4


# --- AWS: the ALB forwards only the service's host and routes ---


def _alb_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$")


def _public_paths() -> set[str]:
    app = create_app(Settings(load_mode="lazy"))
    rules = {r.rule for r in app.url_map.iter_rules()} - {"/metrics"}
    return {re.sub(r"<[^>]+>", "x", r) for r in rules if not r.startswith("/static")}


def test_alb_default_is_a_fixed_404_and_rules_forward_host_and_routes(plans) -> None:
    plan_ = _planned(plans, "aws")
    (action,) = plan_.one("aws_lb_listener", "https")["values"]["default_action"]
    assert action["type"] == "fixed-response" and action["fixed_response"][0]["status_code"] == "404"
    patterns: list[str] = []
    for rule in plan_.resources("aws_lb_listener_rule"):
        conditions = rule["values"]["condition"]
        hosts = [v for c in conditions for h in c["host_header"] for v in h["values"]]
        assert hosts == ["iris.ml.example.com"], rule["address"]
        assert rule["values"]["action"][0]["type"] == "forward"
        patterns += [v for c in conditions for p in c["path_pattern"] for v in p["values"]]
    compiled = [_alb_pattern(p) for p in patterns]
    paths = _public_paths()
    assert all(any(c.match(p) for c in compiled) for p in paths), f"unforwarded routes: {paths}"
    assert all(any(c.match(p) for p in paths) for c in compiled), f"patterns matching no route: {patterns}"
    assert not any(c.match("/metrics") or c.match("/") or c.match("/wp-login.php") for c in compiled)


def test_bucket_notification_is_only_taken_over_on_a_bucket_the_stack_creates(plans) -> None:
    assert len(list(_planned(plans, "aws").resources("aws_s3_bucket_notification"))) == 1
    assert not list(_planned(plans, "aws-existing-bucket").resources("aws_s3_bucket_notification"))


def test_first_deployment_step_creates_only_the_storage(plans) -> None:
    types = {r["type"] for r in _planned(plans, "aws-storage-only").resources()}
    assert "aws_s3_bucket" in types and not any(t.startswith(("aws_ecs", "aws_lb", "aws_iam")) for t in types)


# --- Azure: one role assignment per identity, role and scope ---


def test_one_role_assignment_per_identity_role_and_scope(plans) -> None:
    plan_ = _planned(plans, "azure")
    keys = Counter()
    for assignment in plan_.resources("azurerm_role_assignment"):
        principal = plan_.config(assignment["address"])["expressions"]["principal_id"].get("references", ["?"])[0]
        scope = assignment["values"].get("scope") or str(
            plan_.config(assignment["address"])["expressions"]["scope"].get("references")
        )
        keys[(principal, assignment["values"]["role_definition_name"], scope)] += 1
    duplicates = {k: n for k, n in keys.items() if n > 1}
    assert not duplicates, f"Azure answers 409 RoleAssignmentExists for: {duplicates}"


def test_event_subscriptions_wait_for_propagation_and_the_endpoint(plans) -> None:
    azure = _planned(plans, "azure")
    subscription = azure.config("module.service.azurerm_eventgrid_system_topic_event_subscription.uploads")
    assert "terraform_data.endpoint_ready" in subscription["depends_on"]
    gcp = _planned(plans, "gcp")
    trigger = gcp.config("module.service.google_eventarc_trigger.uploads")
    assert "terraform_data.iam_propagation" in trigger["depends_on"]


# --- GCP: APIs, CPU, locations, validations ---

# Which API each planned resource type calls (a fresh project has none of them enabled).
API_OF = {
    "google_service_account": "iam.googleapis.com",
    "google_cloud_run_v2_service": "run.googleapis.com",
    "google_storage_bucket": "storage.googleapis.com",
    "google_eventarc_trigger": "eventarc.googleapis.com",
    "google_secret_manager_secret_iam_member": "secretmanager.googleapis.com",
    "google_project_iam_member": "cloudresourcemanager.googleapis.com",
}


@pytest.mark.parametrize("variant", ["gcp", "gcp-no-events"])
def test_every_api_the_plan_uses_is_enabled(plans, variant: str) -> None:
    plan_ = _planned(plans, variant)
    enabled = {r["values"]["service"] for r in plan_.resources("google_project_service")}
    needed = {API_OF[r["type"]] for r in plan_.resources() if r["type"] in API_OF}
    if any(r["type"] == "google_eventarc_trigger" for r in plan_.resources()):
        needed.add("pubsub.googleapis.com")  # Cloud Storage notifications reach Eventarc over Pub/Sub
    assert needed <= enabled, f"not enabled: {sorted(needed - enabled)}"
    assert "iam.googleapis.com" in enabled


def test_events_keep_cpu_allocated_and_use_a_lower_case_location(plans) -> None:
    plan_ = _planned(plans, "gcp")
    resources = plan_.one("google_cloud_run_v2_service")["values"]["template"][0]["containers"][0]["resources"][0]
    assert resources["cpu_idle"] is False
    assert plan_.one("google_eventarc_trigger")["values"]["location"] == "eu"
    quiet = _planned(plans, "gcp-no-events").one("google_cloud_run_v2_service")
    assert quiet["values"]["template"][0]["containers"][0]["resources"][0]["cpu_idle"] is True


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("refuse-gcp-public-events", "anyone POST /events"),
        ("refuse-gcp-cpu-memory", "memory_mib does not fit cpu"),
        ("refuse-gcp-sa-id-length", "<name>-events"),
        ("refuse-gcp-gpu-cpu-image", "gpu variant"),
    ],
)
def test_plan_refuses_what_an_apply_would_reject(plans, variant: str, message: str) -> None:
    result = plans[variant].result
    assert result.returncode != 0, f"{variant} planned"
    assert message in " ".join(result.output.split()), result.output
