"""The local stack (compose.yaml) comes up with locally built images and Prometheus scrapes the function."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.emulators import free_port
from tests.integration.docker_env import REQUIRE_DOCKER, ROOT, wait_for

pytestmark = pytest.mark.timeout(1800)
Compose = Callable[..., subprocess.CompletedProcess[str]]

SERVICES = ["s3", "seed", "function", "prometheus"]  # Grafana has no image reachable here (files: tests/health)


def compose_cli() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    message = "no `docker compose` / `docker-compose` (Debian: apt-get install -y docker-compose)"
    if REQUIRE_DOCKER:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def stack(function_image: str, base_image: str) -> Iterator[tuple[dict[str, str], Compose]]:
    """``up -d`` of the stack under a private project name and free ports; ``down -v`` afterwards."""
    ports = {"FUNCTION_PORT": str(free_port()), "PROMETHEUS_PORT": str(free_port()), "GRAFANA_PORT": str(free_port())}
    env = {**os.environ, "BASE_IMAGE": base_image, "MODELFN_IMAGE": function_image, **ports}
    base = [*compose_cli(), "-p", f"modelfn-stack-{uuid.uuid4().hex[:8]}", "-f", str(ROOT / "compose.yaml")]

    def compose(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)

    built = compose("build", "s3", "prometheus")
    assert built.returncode == 0, built.stderr[-3000:]
    try:
        up = compose("up", "-d", "--no-build", *SERVICES)
        assert up.returncode == 0, up.stderr[-3000:]
        yield ports, compose
    finally:
        logs = compose("logs", "--no-color", timeout=60).stdout[-4000:]
        compose("down", "-v", "--remove-orphans", timeout=120)
        print(logs)  # shown by pytest only when the test failed


def test_prometheus_scrapes_the_function_then_a_canary_shows_up_by_role(stack: tuple[dict[str, str], Compose]):
    ports, compose = stack
    function = f"http://127.0.0.1:{ports['FUNCTION_PORT']}"
    prometheus = f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}"

    def ready() -> bool | None:
        with urllib.request.urlopen(f"{function}/readyz", timeout=5) as response:
            return True if response.status == 200 else None

    wait_for(ready, 240, "the function to load the seeded demo model")
    body = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}).encode()
    for _ in range(5):
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(f"{function}/v1/models/iris:predict", body, headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["model_version"] == "1.0.0"

    def query(expr: str) -> list[dict[str, Any]] | None:
        url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        result: list[dict[str, Any]] = get_json(url)["data"]["result"]
        return result or None

    info = wait_for(lambda: query('modelfn_model_info{job="modelfn"} == 1'), 120, "Prometheus to scrape the function")
    assert info[0]["metric"]["name"] == "iris" and info[0]["metric"]["version"] == "1.0.0"
    confidence = wait_for(lambda: query("modelfn_prediction_confidence_count > 0"), 60, "health metrics scraped")
    assert confidence[0]["metric"]["role"] == "primary"
    groups = {g["name"] for g in get_json(f"{prometheus}/api/v1/rules")["data"]["groups"]}
    assert {"modelfn-recording", "modelfn-alerts"} <= groups

    # A canary through the alias, as a user would run it: the function picks it up by polling the store.
    promote = [
        "python",
        "-m",
        "function.cli",
        "promote",
        "iris@1.1.0",
        "--alias",
        "prod",
        "--store",
        "s3://models/demo",
    ]
    moved = compose("exec", "-T", "function", *promote, "--canary", "30", timeout=120)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    wait_for(lambda: get_json(f"{function}/readyz").get("candidate"), 120, "the function to load the canary")
    answered = set()
    for i in range(100):
        headers = {"Content-Type": "application/json", "X-Route-Key": f"user-{i}"}
        request = urllib.request.Request(f"{function}/v1/models/iris:predict", body, headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            answered.add((response.headers["X-Model-Version"], json.loads(response.read())["model_version"]))
    assert answered == {("1.0.0", "1.0.0"), ("1.1.0", "1.1.0")}
    by_role = 'sum by (version, role) (modelfn_predictions_total{job="modelfn",outcome="ok"}) > 0'
    split = wait_for(
        lambda: r if (r := query(by_role)) and len(r) == 2 else None, 120, "Prometheus to scrape the canary"
    )
    assert {(r["metric"]["version"], r["metric"]["role"]) for r in split} == {("1.0.0", "primary"), ("1.1.0", "canary")}
