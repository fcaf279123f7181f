"""Terraform must match the app: env var names are Settings fields; probe and event paths are app routes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from function.settings import Settings
from tests.terraform.tools import MODULES, TERRAFORM_DIR

# SDK-standard names the modules set that are not Settings fields: boto3 reads AWS_REGION;
# azure-identity's DefaultAzureCredential reads AZURE_CLIENT_ID to pick the user-assigned identity.
SDK_ENV = {"AWS_REGION", "AZURE_CLIENT_ID"}
SETTINGS_ENV = {name.upper() for name in Settings.model_fields}

MAP_KEY = re.compile(r"(?:^|[{,])\s*([A-Z][A-Z0-9_]+)\s*=(?!=)", re.M)
QUOTED = re.compile(r'"([A-Z][A-Z0-9_]{2,})"')
# Probe paths: `path = "/x"` attributes, and URLs in container health-check commands.
PATHS = re.compile(r'path\s*=\s*"(/[^"]*)"|127\.0\.0\.1:8080(/[A-Za-z0-9_/-]+)')


def _module_tf(module: str) -> str:
    path = TERRAFORM_DIR / "modules" / module
    return "\n".join(p.read_text() for p in sorted(path.glob("*.tf")))


def env_names(module: str) -> set[str]:
    """Env var names a module sets: keys of its env maps, the managed names and the secret env lists."""
    text = _module_tf(module)
    names = set(MAP_KEY.findall(text))
    for line in text.splitlines():
        if "managed_env" in line or '["EVENTS_SECRET"]' in line:
            names |= set(QUOTED.findall(line))
    return names


def asserted_env_names(module: str) -> set[str]:
    """The exact env names the module's own `terraform test` asserts the plan sets."""
    text = (TERRAFORM_DIR / "modules" / module / "tests" / "contract.tftest.hcl").read_text()
    block = text.split('run "env_names_match_settings"', 1)[1].split("\nrun ", 1)[0]
    names = set(QUOTED.findall(block.split("error_message", 1)[0]))
    assert names, f"{module}: env_names_match_settings asserts no names"
    return names


@pytest.mark.parametrize("module", MODULES)
def test_module_env_vars_are_settings_fields(module: str) -> None:
    names = env_names(module) | asserted_env_names(module)
    assert {"MODEL_URI", "EVENTS_INPUT_URI", "EVENTS_OUTPUT_URI"} <= names, names
    unknown = names - SETTINGS_ENV - SDK_ENV
    assert not unknown, f"{module} sets env vars the function does not read: {sorted(unknown)}"


def test_cloud_run_leaves_port_to_the_platform() -> None:
    assert "PORT" not in asserted_env_names("cloud-run")
    assert "PORT" in asserted_env_names("ecs-fargate") and "PORT" in asserted_env_names("container-apps")


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """The app's URL rules and their methods (lazy load: no model is fetched)."""
    from function.app import create_app

    cache = Path(tmp_path_factory.mktemp("cache"))
    app = create_app(Settings(load_mode="lazy", cache_dir=cache))
    found: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        found.setdefault(rule.rule, set()).update(rule.methods or ())
    return found


@pytest.mark.parametrize("module", MODULES)
def test_probe_paths_are_app_routes(module: str, routes: dict[str, set[str]]) -> None:
    paths = {a or b for a, b in PATHS.findall(_module_tf(module))}
    # Cloud Run (google 6.x) has startup and liveness probes only, both on /healthz (tests/terraform/test_plans.py).
    assert {"/healthz"} | ({"/readyz"} if module != "cloud-run" else set()) <= paths, paths
    for path in paths - {"/events"}:
        assert path in routes and "GET" in routes[path], f"{module} probes {path}, which the app does not serve"


@pytest.mark.parametrize("module", MODULES)
def test_event_target_is_the_apps_post_route(module: str, routes: dict[str, set[str]]) -> None:
    assert "/events" in _module_tf(module)
    assert "/events" in routes and "POST" in routes["/events"], "the app has no POST /events route"
