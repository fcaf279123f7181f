"""Docker plumbing for the image tests: engine check, local image builds, containers, HTTP polling."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests

# Ryuk (testcontainers' reaper) is an image pulled from a registry; pulls are impossible here and the
# fixtures remove what they start themselves. Set before testcontainers is imported.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from scripts.docker_context import write_context
from tests.integration.images import STAGES, stage_tag

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("MODELFN_BASE_IMAGE", "modelfn-base:bookworm")
REQUIRE_DOCKER = os.environ.get("MODELFN_REQUIRE_DOCKER") == "1"
TORCH_WHEEL = Path(
    os.environ.get("MODELFN_TORCH_WHEEL", "/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
)
UID = "10001"
BUILD_TIMEOUT = 1500

T = TypeVar("T")

__all__ = ["DockerContainer", "Network"]


def engine_problem() -> str | None:
    """Why no Docker engine can be used, or None when one answers."""
    if shutil.which("docker") is None:
        return "the docker CLI is not on PATH"
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as exc:
        return f"no Docker engine answers ({type(exc).__name__}: {exc})"
    return None


def docker_cli(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; on failure raise with the tail of its output."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise RuntimeError(f"docker {' '.join(args[:3])} ... failed ({proc.returncode}):\n{tail}")
    return proc


def image_exists(tag: str) -> bool:
    """Whether the engine has this image locally."""
    return docker_cli("image", "inspect", tag, check=False).returncode == 0


def ensure_base_image() -> str:
    """The local base image, built with scripts/build-base-image.sh when missing (never pulled)."""
    if not image_exists(BASE_IMAGE):
        env = {**os.environ, "MODELFN_BASE_IMAGE": BASE_IMAGE}
        proc = subprocess.run(
            ["bash", str(ROOT / "scripts" / "build-base-image.sh")],
            capture_output=True,
            text=True,
            env=env,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"scripts/build-base-image.sh failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    return BASE_IMAGE


def image_id(tag: str) -> str | None:
    """The image id a tag points at, or None."""
    proc = docker_cli("image", "inspect", "--format", "{{.Id}}", tag, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def build_image(
    tag: str,
    context: Path,
    dockerfile: Path,
    build_args: dict[str, str],
    extra: dict[str, Path] | None = None,
) -> str:
    """``docker build`` under a stable tag (layer cache reused; FROM images are local, never pulled).

    Stages listed in ``images.STAGES`` are built and tagged first, so no untagged stage image is left;
    an image a rebuild replaced under the same tag is removed. ``extra`` files are streamed into the
    context (the torch wheel), so nothing is copied into the repository.
    """
    for stage in STAGES.get(tag, ()):
        _build(stage_tag(tag, stage), context, dockerfile, build_args, extra, target=stage)
    return _build(tag, context, dockerfile, build_args, extra)


def _build(
    tag: str,
    context: Path,
    dockerfile: Path,
    build_args: dict[str, str],
    extra: dict[str, Path] | None,
    target: str | None = None,
) -> str:
    replaced = image_id(tag)
    args = ["build", "-t", tag, "-f", str(dockerfile.relative_to(context) if extra else dockerfile)]
    args += ["--target", target] if target else []
    for key, value in build_args.items():
        args += ["--build-arg", f"{key}={value}"]
    if extra:
        with tempfile.TemporaryFile() as tar:
            write_context(tar, context, extra, str(dockerfile.relative_to(context)))
            tar.seek(0)
            proc = subprocess.run(
                ["docker", *args, "-"], stdin=tar, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
            )
        if proc.returncode != 0:
            raise RuntimeError(f"docker build {tag} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
    else:
        docker_cli(*args, str(context), timeout=BUILD_TIMEOUT)
    if replaced and replaced != image_id(tag):
        docker_cli("image", "rm", replaced, check=False)  # still used by a container: left for `make clean-images`
    return tag


def project_version() -> str:
    """The version pyproject.toml declares (the image's OCI version label)."""
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def git_revision() -> str:
    """HEAD's commit, or 'unknown' outside a git checkout."""
    proc = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``check`` until it returns something other than None (or raise after ``timeout``)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as exc:  # keep polling through connection errors while a server starts
            last_error, result = exc, None
        if result is not None:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


class Service:
    """A started container reached over its mapped port from the host."""

    def __init__(self, container: DockerContainer, port: int) -> None:
        self.container = container
        self.port = port

    @property
    def url(self) -> str:
        host = self.container.get_container_host_ip()
        if host == "localhost":
            host = "127.0.0.1"  # localhost may resolve to ::1 first, where docker-proxy may not listen
        return f"http://{host}:{self.container.get_exposed_port(self.port)}"

    @property
    def wrapped(self) -> Any:
        """The docker SDK's container object."""
        return self.container.get_wrapped_container()

    def inspect(self) -> dict[str, Any]:
        """``docker inspect`` of the container, fresh."""
        wrapped = self.wrapped
        wrapped.reload()
        return dict(wrapped.attrs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=kwargs.pop("timeout", 10), **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(self.url + path, timeout=kwargs.pop("timeout", 30), **kwargs)

    def exec(self, *cmd: str) -> tuple[int, str]:
        """Run a command inside the container (as the image's user)."""
        result = self.container.exec(list(cmd))
        return result.exit_code, result.output.decode(errors="replace")

    def logs(self) -> str:
        out, err = self.container.get_logs()
        return (out + err).decode(errors="replace")[-6000:]

    def stop(self) -> None:
        with contextlib.suppress(Exception):  # already gone: nothing to clean up
            self.container.stop()
