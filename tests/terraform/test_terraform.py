"""Terraform checks: fmt, validate against the real provider schemas, module contract tests, layout rules."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.terraform.tools import MODULES, STACKS, TERRAFORM_DIR, Result, require_terraform, tf_env

# Session fixtures run terraform validate/test/plan for every stack and module: minutes on 2 cores.
pytestmark = pytest.mark.timeout(1800)


def _blocks(text: str, kind: str) -> dict[str, str]:
    """Bodies of the top-level `kind "name" { ... }` blocks (brace matching; strings hold no braces here)."""
    found = {}
    for match in re.finditer(rf'^{kind} "([^"]+)" \{{', text, re.M):
        depth, i = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        found[match.group(1)] = text[match.end() : i - 1]
    return found


def _assert_ok(result: Result) -> None:
    assert result.returncode == 0, result.output


def test_fmt_check() -> None:
    require_terraform(providers=False)
    proc = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", "-no-color", str(TERRAFORM_DIR)],
        capture_output=True,
        text=True,
        env=tf_env(),
        check=False,
    )
    assert proc.returncode == 0, f"terraform fmt would change:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("stack", STACKS)
def test_root_stack_validates(tf_runs: dict[str, Result], stack: str) -> None:
    _assert_ok(tf_runs[f"validate:{stack}"])


@pytest.mark.parametrize("module", MODULES)
def test_module_example_validates(tf_runs: dict[str, Result], module: str) -> None:
    _assert_ok(tf_runs[f"example:{module}"])


@pytest.mark.parametrize("module", MODULES)
def test_module_contract_tests_pass(tf_runs: dict[str, Result], module: str) -> None:
    result = tf_runs[f"test:{module}"]
    _assert_ok(result)
    passed = re.search(r"Success! (\d+) passed, 0 failed", result.output)
    assert passed and int(passed.group(1)) >= 5, result.output


@pytest.mark.parametrize("module", MODULES)
def test_module_layout(module: str) -> None:
    path = TERRAFORM_DIR / "modules" / module
    for name in ("versions.tf", "main.tf", "variables.tf", "outputs.tf", "README.md", "examples/basic/main.tf"):
        assert (path / name).is_file(), f"{module} lacks {name}"
    assert list((path / "tests").glob("*.tftest.hcl")), f"{module} has no terraform test files"


@pytest.mark.parametrize("module", MODULES)
def test_modules_share_one_input_contract_and_outputs(module: str) -> None:
    contract = {
        "name",
        "image",
        "model_uri",
        "env",
        "secrets",
        "cpu",
        "memory_mib",
        "min_instances",
        "max_instances",
        "concurrency",
        "request_timeout_seconds",
        "gpu",
        "events",
        "labels",
    }
    path = TERRAFORM_DIR / "modules" / module
    variables = _blocks((path / "variables.tf").read_text(), "variable")
    assert contract <= set(variables), contract - set(variables)
    assert re.search(r"default\s*=\s*0\b", variables["min_instances"]), "min_instances must default to 0"
    outputs = set(_blocks((path / "outputs.tf").read_text(), "output"))
    assert {"url", "service_identity", "bucket"} <= outputs


@pytest.mark.parametrize("path", sorted(TERRAFORM_DIR.rglob("variables.tf")), ids=lambda p: str(p.parent.name))
def test_every_variable_is_typed_and_described(path) -> None:
    variables = _blocks(path.read_text(), "variable")
    assert variables
    for name, body in variables.items():
        assert re.search(r"^\s*type\s*=", body, re.M), f"{path}: variable {name} has no type"
        assert re.search(r'^\s*description\s*=\s*"\S', body, re.M), f"{path}: variable {name} has no description"


@pytest.mark.parametrize("path", sorted(TERRAFORM_DIR.rglob("versions.tf")), ids=lambda p: str(p.parent.name))
def test_provider_versions_are_constrained(path) -> None:
    text = path.read_text()
    assert "required_version" in text
    sources = re.findall(r'source\s*=\s*"hashicorp/(\w+)"\s*\n\s*version\s*=\s*"[^"]*<\s*\d', text)
    assert sources, f"{path}: providers need a bounded version constraint"


@pytest.mark.parametrize("stack", STACKS)
def test_root_stack_readme_and_example(stack: str) -> None:
    path = TERRAFORM_DIR / stack
    readme = (path / "README.md").read_text()
    assert "terraform apply" in readme
    assert (path / "terraform.tfvars.example").is_file()
    declared = set(_blocks((path / "variables.tf").read_text(), "variable"))
    used = set(re.findall(r"^([a-z_]+)\s*=", (path / "terraform.tfvars.example").read_text(), re.M))
    assert used <= declared, f"terraform.tfvars.example sets undeclared variables: {used - declared}"


def test_no_terraform_state_in_repo() -> None:
    leftovers = [
        p
        for pattern in (".terraform", ".terraform.lock.hcl", "*.tfstate", "terraform.tfvars.json")
        for p in TERRAFORM_DIR.rglob(pattern)
    ]
    assert not leftovers, f"remove generated Terraform files from the repo: {leftovers}"
