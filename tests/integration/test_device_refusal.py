"""The built image refuses DEVICE=cuda on a machine without a GPU: non-zero exit, a clear message, no worker."""

from __future__ import annotations

import pytest

from tests.integration.docker_env import docker_cli


@pytest.mark.parametrize("image_fixture", ["function_image", "torch_image"])
def test_device_cuda_without_a_gpu_exits_with_a_clear_message(image_fixture: str, request: pytest.FixtureRequest):
    image = request.getfixturevalue(image_fixture)
    run = docker_cli("run", "--rm", "-e", "DEVICE=cuda", image, timeout=180, check=False)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert "modelfn: DEVICE=cuda but no NVIDIA driver is visible in this container" in output
    assert "Booting worker" not in output and "Traceback" not in output
