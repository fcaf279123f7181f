"""Session fixtures for the image tests: engine check, one function image, emulators on one network.

Image builds are few and cached: the base (scripts/build-base-image.sh), the function image (once per
session; MODELFN_TEST_IMAGE reuses a prebuilt one), one small image per emulator (docker/*.Dockerfile)
and, for its own test, the torch-cpu variant.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator

import pytest

from tests.integration import images
from tests.integration.docker_env import (
    REQUIRE_DOCKER,
    ROOT,
    TORCH_WHEEL,
    Network,
    build_image,
    engine_problem,
    ensure_base_image,
    git_revision,
    project_version,
)
from tests.integration.stores import Emulator, start_emulator

SKIP_HINT = "set MODELFN_REQUIRE_DOCKER=1 to make this a failure; scripts/docker-engine.sh starts an engine"


@pytest.fixture(scope="session", autouse=True)
def _docker_engine() -> None:
    """No engine: each image test fails when MODELFN_REQUIRE_DOCKER=1, else skips with a loud reason."""
    problem = engine_problem()
    if problem is None:
        return
    if REQUIRE_DOCKER:
        pytest.fail(f"MODELFN_REQUIRE_DOCKER=1 but {problem}", pytrace=False)
    reason = f"NO DOCKER ENGINE: image/end-to-end tests NOT RUN: {problem} ({SKIP_HINT})"
    warnings.warn(reason, pytest.PytestWarning, stacklevel=1)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def base_image() -> str:
    """The local base image (MODELFN_BASE_IMAGE), built by scripts/build-base-image.sh if missing."""
    return ensure_base_image()


def image_build_args(base_image: str, variant: str) -> dict[str, str]:
    """The build arguments CI and the tests pass (cloudbuild.yaml passes the same names)."""
    return {
        "BASE_IMAGE": base_image,
        "VARIANT": variant,
        "VERSION": project_version(),
        "REVISION": git_revision(),
        "SOURCE": "https://example.invalid/modelfn",
    }


@pytest.fixture(scope="session")
def function_image(base_image: str) -> str:
    """The production image (cpu variant), built once per session from the repository's Dockerfile."""
    if prebuilt := os.environ.get("MODELFN_TEST_IMAGE"):
        return prebuilt
    return build_image(images.FUNCTION["cpu"], ROOT, ROOT / "Dockerfile", image_build_args(base_image, "cpu"))


@pytest.fixture(scope="session")
def torch_image(base_image: str) -> str:
    """The torch-cpu variant, with the torch CPU wheel from local disk added to its build context."""
    if prebuilt := os.environ.get("MODELFN_TEST_TORCH_IMAGE"):
        return prebuilt
    if not TORCH_WHEEL.exists():
        pytest.skip(f"no torch CPU wheel at {TORCH_WHEEL} (set MODELFN_TORCH_WHEEL)")
    args = {**image_build_args(base_image, "torch-cpu"), "TORCH_FIND_LINKS": "/src/torch"}
    # The wheel is streamed into this build's context only; no wheelhouse/ is left in the checkout.
    extra = {f"wheelhouse/{TORCH_WHEEL.name}": TORCH_WHEEL}
    return build_image(images.FUNCTION["torch-cpu"], ROOT, ROOT / "Dockerfile", args, extra)


@pytest.fixture(scope="session")
def network() -> Iterator[Network]:
    """One Docker network for the session: the function reaches emulators by alias over it."""
    net = Network(docker_network_kw={"labels": {"modelfn.test": "integration"}})
    net.name = f"modelfn-it-{uuid.uuid4().hex[:8]}"
    net.create()
    yield net
    net.remove()


def emulator_image(kind: str, base_image: str) -> str:
    """Build docker/<kind>.Dockerfile on the local base (cached after the first time)."""
    name = images.EMULATOR_FILES[kind]
    return build_image(
        images.EMULATORS[kind],
        ROOT / "docker",
        ROOT / "docker" / f"{name}.Dockerfile",
        {"BASE_IMAGE": base_image},
    )


@pytest.fixture(scope="module", params=["s3", "gcs", "azure"])
def emulator(request: pytest.FixtureRequest, base_image: str, network: Network) -> Iterator[Emulator]:
    """A running emulator with an empty bucket; the demo model is published by the tests' fixtures."""
    emu = start_emulator(request.param, emulator_image(request.param, base_image), network)
    yield emu
    emu.service.stop()
