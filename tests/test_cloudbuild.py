"""cloudbuild.yaml and the Dockerfile cannot drift: same build arguments, variants, tags and defaults."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILT_IN = {"PROJECT_ID", "SHORT_SHA", "COMMIT_SHA", "BUILD_ID", "REPO_NAME", "BRANCH_NAME", "TAG_NAME"}
REQUIRED_ARGS = {"BASE_IMAGE", "VARIANT", "VERSION", "REVISION", "SOURCE"}


@pytest.fixture(scope="module")
def cloudbuild() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def step(cloudbuild: dict[str, Any], step_id: str) -> dict[str, Any]:
    matches = [s for s in cloudbuild["steps"] if s.get("id") == step_id]
    assert len(matches) == 1, f"expected one step with id {step_id}"
    return matches[0]


def dockerfile_args(dockerfile: str) -> dict[str, str | None]:
    """Every ``ARG NAME[=default]`` in the Dockerfile (first definition wins)."""
    args: dict[str, str | None] = {}
    for name, default in re.findall(r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?\s*$", dockerfile, re.M):
        args.setdefault(name, default if default != "" else None)
    return args


def dockerfile_variants(dockerfile: str) -> set[str]:
    """The VARIANT values the build stage accepts (its ``case`` pattern)."""
    match = re.search(r'case "\$VARIANT" in\s*\\?\s*([a-z0-9|-]+)\)', dockerfile)
    assert match, "Dockerfile no longer validates VARIANT with a case statement"
    return set(match.group(1).split("|"))


def build_args(build: dict[str, Any]) -> dict[str, str]:
    pairs = [a.split("=", 2)[1:] for a in build["args"] if a.startswith("--build-arg=")]
    return {name: value for name, value in pairs}


def option_values(build: dict[str, Any], option: str) -> list[str]:
    return [a.split("=", 1)[1] for a in build["args"] if a.startswith(f"{option}=")]


def test_build_step_passes_exactly_the_dockerfiles_arguments(cloudbuild: dict, dockerfile: str) -> None:
    passed = build_args(step(cloudbuild, "build"))
    defined = dockerfile_args(dockerfile)
    unknown = set(passed) - set(defined) - {"BUILDKIT_INLINE_CACHE"}
    assert not unknown, f"cloudbuild.yaml passes build args the Dockerfile does not declare: {unknown}"
    assert set(passed) >= REQUIRED_ARGS, f"missing build args: {REQUIRED_ARGS - set(passed)}"
    assert set(defined) >= REQUIRED_ARGS


def test_targets_match_the_dockerfile_stages(cloudbuild: dict, dockerfile: str) -> None:
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", dockerfile, re.M | re.I))
    targets = option_values(step(cloudbuild, "build"), "--target")
    assert set(targets) <= stages, f"unknown --target {set(targets) - stages}; stages: {stages}"
    last_stage = re.findall(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?\s*$", dockerfile, re.M | re.I)[-1]
    assert not targets or targets == [last_stage], "the deployable image must be the final stage"


def test_defaults_agree(cloudbuild: dict, dockerfile: str) -> None:
    subs = cloudbuild["substitutions"]
    defined = dockerfile_args(dockerfile)
    passed = build_args(step(cloudbuild, "build"))
    for arg, value in passed.items():
        sub = re.fullmatch(r"\$\{(_[A-Z0-9_]+)\}", value)
        if sub and arg in ("BASE_IMAGE", "VARIANT"):
            assert subs[sub.group(1)] == defined[arg], f"{arg}: cloudbuild default differs from the Dockerfile"
    assert subs["_VARIANT"] in dockerfile_variants(dockerfile)
    for variant in dockerfile_variants(dockerfile):
        assert (ROOT / "requirements" / f"{variant}.txt").is_file(), f"no lock for variant {variant}"


def test_version_default_matches_pyproject(cloudbuild: dict, dockerfile: str) -> None:
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert cloudbuild["substitutions"]["_VERSION"] == version
    assert dockerfile_args(dockerfile)["VERSION"] == version


def test_tags_cache_push_and_images_agree(cloudbuild: dict) -> None:
    build = step(cloudbuild, "build")
    tags = option_values(build, "--tag")
    assert any(t.endswith(":$SHORT_SHA") for t in tags)
    assert any(t.endswith(":${_VERSION}") for t in tags)
    cache_from = option_values(build, "--cache-from")
    assert cache_from and set(cache_from) <= set(tags), "--cache-from must name a tag this build pushes"
    assert sorted(cloudbuild["images"]) == sorted(tags)
    assert all(t.startswith("${_REGION}-docker.pkg.dev/$PROJECT_ID/") for t in tags)  # Artifact Registry


def test_unit_tests_run_against_the_built_image_before_push(cloudbuild: dict) -> None:
    ids = [s["id"] for s in cloudbuild["steps"]]
    unit = step(cloudbuild, "unit-tests")
    sha_tag = next(t for t in option_values(step(cloudbuild, "build"), "--tag") if t.endswith(":$SHORT_SHA"))
    assert sha_tag in unit["args"]
    assert (ROOT / unit["args"][-1]).is_file()
    assert ids.index("build") < ids.index("unit-tests") < ids.index("push") < ids.index("deploy")
    assert "unit-tests" in step(cloudbuild, "push")["waitFor"]


def test_deploy_is_gated_by_the_deploy_substitution(cloudbuild: dict) -> None:
    deploy = step(cloudbuild, "deploy")
    script = " ".join(deploy["args"])
    assert '"${_DEPLOY}" != "true"' in script and "exit 0" in script
    assert cloudbuild["substitutions"]["_DEPLOY"] == "false"
    assert deploy["waitFor"] == ["push"]


def test_every_substitution_is_defined_and_documented(cloudbuild: dict) -> None:
    text = (ROOT / "cloudbuild.yaml").read_text()
    header = text.split("substitutions:", 1)[0]
    used = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", text.split("substitutions:", 1)[1]))
    user = {name for name in used if name.startswith("_")}
    assert user <= set(cloudbuild["substitutions"]), f"undefined: {user - set(cloudbuild['substitutions'])}"
    assert used - user <= BUILT_IN, f"unknown built-in substitutions: {used - user - BUILT_IN}"
    for name in cloudbuild["substitutions"]:
        assert re.search(rf"^#\s+{name}\s", header, re.M), f"{name} is not documented at the top"


def test_every_variant_is_documented_with_a_base_that_the_dockerfile_also_names(cloudbuild: dict, dockerfile: str):
    text = (ROOT / "cloudbuild.yaml").read_text()
    documented = re.search(r"^#\s+_VARIANT\s.*argument: ([a-z0-9| -]+?)\s+\(", text, re.M)
    assert documented, "_VARIANT's documentation line lists the variants"
    assert {v.strip() for v in documented.group(1).split("|")} == dockerfile_variants(dockerfile)
    for variant in ("gpu", "torch-gpu"):
        example = re.search(rf"_VARIANT={variant},_BASE_IMAGE=(\S+)", text)
        assert example, f"cloudbuild.yaml shows how to build {variant}"
        assert f"--build-arg VARIANT={variant}" in dockerfile
        assert f"BASE_IMAGE={example.group(1)} -t modelfn:{variant}" in dockerfile, "base images disagree"


def test_torch_gpu_lock_pins_the_dockerfiles_torch(dockerfile: str):
    lock = (ROOT / "requirements" / "torch-gpu.txt").read_text().splitlines()
    assert "-r cpu.txt" in lock
    pins = dict(line.split("==") for line in lock if "==" in line)
    assert pins["torch"] == dockerfile_args(dockerfile)["TORCH_VERSION"]
    assert all(pins[name] for name in ("triton", "nvidia-cudnn-cu13", "nvidia-cublas"))  # its CUDA libraries
    cpu = {line.split("==")[0] for line in (ROOT / "requirements" / "cpu.txt").read_text().splitlines() if "==" in line}
    assert not cpu & pins.keys(), "torch-gpu.txt repeats pins of cpu.txt"
    import tomllib

    nvml = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["nvml"]
    assert [f"nvidia-ml-py=={pins['nvidia-ml-py']}"] == nvml, "regenerate with requirements/torch-gpu-lock.py"
