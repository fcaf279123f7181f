"""Build contexts and image tags, proven with cheap builds of a tiny context (no function image is built)."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import pytest

from tests.integration import images
from tests.integration.docker_env import ROOT, build_image, docker_cli, ensure_base_image, image_id

PROBE_DOCKERFILE = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY . /ctx/\nRUN find /ctx -type f | sort\n"


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A tiny checkout: the repository's .dockerignore and one file in each kind of folder."""
    root = tmp_path / "ctx"
    for name in ("function/app.py", "wheelhouse/torch-0-py3-none-any.whl", "tests/test_x.py", ".venv/bin/python"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    shutil.copy(ROOT / ".dockerignore", root / ".dockerignore")
    (root / "Dockerfile").write_text(PROBE_DOCKERFILE)
    return root


def sent(tag: str) -> set[str]:
    """The files a probe image's build saw (its RUN listed /ctx)."""
    out = docker_cli("run", "--rm", "--entrypoint", "find", tag, "/ctx", "-type", "f").stdout
    return {line.removeprefix("/ctx/") for line in out.split()}


@pytest.fixture
def probe_tag():
    yield images.PROBE
    docker_cli("image", "rm", images.PROBE, check=False)


def test_the_default_context_leaves_wheelhouse_out(context, probe_tag):
    build_image(probe_tag, context, context / "Dockerfile", {"BASE_IMAGE": ensure_base_image()})
    files = sent(probe_tag)
    assert "function/app.py" in files
    assert not {f for f in files if f.startswith(("wheelhouse/", "tests/", ".venv/"))}, files


def test_the_torch_build_streams_the_wheel_into_its_own_context_only(context, probe_tag, tmp_path):
    wheel = tmp_path / "torch-2.13.0+cpu-cp311-none-any.whl"
    wheel.write_bytes(b"a wheel")
    extra = {f"wheelhouse/{wheel.name}": wheel}
    build_image(probe_tag, context, context / "Dockerfile", {"BASE_IMAGE": ensure_base_image()}, extra)
    files = sent(probe_tag)
    assert f"wheelhouse/{wheel.name}" in files and "function/app.py" in files
    assert "wheelhouse/torch-0-py3-none-any.whl" not in files  # the checkout's own wheelhouse stays out
    assert not (ROOT / "wheelhouse").exists() or not any((ROOT / "wheelhouse").iterdir())


def test_a_rebuild_under_the_same_tag_removes_the_image_it_replaced(context, probe_tag):
    args = {"BASE_IMAGE": ensure_base_image()}
    first = image_id(build_image(probe_tag, context, context / "Dockerfile", args))
    (context / "function" / "app.py").write_text("changed")
    second = image_id(build_image(probe_tag, context, context / "Dockerfile", args))
    assert first and second and first != second
    assert docker_cli("image", "inspect", first, check=False).returncode != 0  # no untagged leftover
    dangling = docker_cli("images", "-q", "--no-trunc", "--filter", "dangling=true").stdout.split()
    assert first not in dangling


def test_suite_tags_are_stable_and_make_clean_images_removes_every_one():
    assert images.all_tags() == images.all_tags()
    assert all(re.match(r"^modelfn-(it|emu-[a-z0-9]+):[a-z0-9-]+$", tag) for tag in images.all_tags())
    makefile = (ROOT / "Makefile").read_text()
    listed = re.search(r"^TEST_IMAGES := (.*?)(?<!\\)$", makefile, re.M | re.S)
    assert listed
    assert set(listed.group(1).replace("\\\n", " ").split()) == set(images.all_tags())
    assert "clean: clean-images" in makefile
    conftest = (ROOT / "tests" / "integration" / "conftest.py").read_text()
    assert not re.search(r"\"modelfn-(it|emu-[a-z]+):", conftest), "tags belong in tests/integration/images.py"


def test_a_multi_stage_build_leaves_no_untagged_stage_image(context, probe_tag, monkeypatch):
    mark = f"probe-{uuid.uuid4().hex[:12]}"
    (context / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS build\n"
        f"LABEL io.modelfn.probe={mark}\nCOPY function/ /src/\nRUN find /src -type f > /files\n"
        "FROM ${BASE_IMAGE}\nCOPY --from=build /files /files\n"
    )
    monkeypatch.setitem(images.STAGES, probe_tag, ("build",))
    args = {"BASE_IMAGE": ensure_base_image()}
    stage = images.stage_tag(probe_tag, "build")
    try:
        for content in ("one", "two"):  # a rebuild with a changed stage replaces both images
            (context / "function" / "app.py").write_text(content)
            build_image(probe_tag, context, context / "Dockerfile", args)
            assert image_id(stage) and image_id(probe_tag)
            left = docker_cli("images", "-q", "--filter", "dangling=true", "--filter", f"label=io.modelfn.probe={mark}")
            assert left.stdout.split() == [], "an untagged stage image was left behind"
    finally:
        docker_cli("image", "rm", stage, check=False)
