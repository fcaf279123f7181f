"""The production image itself: metadata, what it leaves out, size, the bundled demo, torch-cpu."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.docker_env import UID, docker_cli, git_revision, project_version
from tests.integration.helpers import SAMPLES, predict_labels, process_uids, start_function, wait_ready

pytestmark = pytest.mark.timeout(1800)

CMD = ["gunicorn", "-c", "python:function.gunicorn_conf", "function.wsgi:app"]
# The cpu variant's layers over its base: onnxruntime, the store SDKs, and since sharded batch jobs
# pyarrow (163 MB: Parquet/CSV shards) and the job-launch SDKs (grpcio); measured 419 MB.
MAX_OWN_LAYERS_BYTES = 450_000_000


def inspect_image(tag: str) -> dict:
    return json.loads(docker_cli("image", "inspect", tag).stdout)[0]


def own_bytes(image: str, base: str) -> int:
    """Bytes the image adds over its base."""
    return int(inspect_image(image)["Size"]) - int(inspect_image(base)["Size"])


def run_sh(image: str, script: str) -> tuple[int, str]:
    """Run a shell script in a throwaway container of ``image`` (entrypoint overridden)."""
    proc = docker_cli("run", "--rm", "--entrypoint", "sh", image, "-c", script, check=False, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_image_metadata(function_image: str) -> None:
    config = inspect_image(function_image)["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Cmd"] == CMD and not config.get("Entrypoint")
    assert config["StopSignal"] == "SIGTERM"
    assert "8080/tcp" in config["ExposedPorts"]
    check = config["Healthcheck"]["Test"]
    assert check[0] == "CMD" and check[1] == "python" and "/healthz" in check[-1]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == project_version()
    assert labels["org.opencontainers.image.revision"] == git_revision()
    assert labels["org.opencontainers.image.source"]


def test_runtime_has_no_compilers_caches_pip_or_tests(function_image: str) -> None:
    code, out = run_sh(
        function_image,
        "for tool in gcc cc c++ make curl wget pip pip3; do command -v $tool && echo FOUND $tool; done;"
        "python -m pip --version >/dev/null 2>&1 && echo FOUND pip-module;"
        "for path in /opt/build-tools /src /root/.cache /tmp/modelfn-cache /wheelhouse; do"
        "  [ -e $path ] && echo FOUND $path; done;"
        "sp=$(python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])');"
        "for path in $sp/tests $sp/function/tests $sp/loader/tests; do"
        "  [ -e $path ] && echo FOUND $path; done;"
        "python -c 'import function.wsgi' >/dev/null 2>&1 || echo IMPORT-FAILED; true",
    )
    assert code == 0, out
    assert "FOUND" not in out and "IMPORT-FAILED" not in out, out


def test_cpu_variant_layers_are_small(function_image: str, base_image: str) -> None:
    size = own_bytes(function_image, base_image)
    print(f"cpu image: {size / 1e6:.0f} MB over {base_image}")
    assert 0 < size < MAX_OWN_LAYERS_BYTES


def test_bundled_demo_model_on_custom_port(function_image: str) -> None:
    """No MODEL_URI: the demo store inside the image; PORT moves the listener; the healthcheck passes."""
    service = start_function(function_image, {"PORT": "9090", "WORKERS": "1"}, port=9090)
    try:
        assert wait_ready(service)["model"] == "iris"
        rows, labels = zip(*SAMPLES, strict=True)
        assert predict_labels(service, list(rows)) == list(labels)
        healthcheck = inspect_image(function_image)["Config"]["Healthcheck"]["Test"][1:]
        code, out = service.exec(*healthcheck)
        assert code == 0, out
        assert process_uids(service) == {UID}
    finally:
        service.stop()


TINY_TORCHSCRIPT = """
import torch
model = torch.nn.Linear(4, 2)
with torch.no_grad():
    model.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, -1.0]]))
    model.bias.copy_(torch.tensor([0.5, 0.0]))
torch.jit.script(model).save("/tmp/tiny.pt")
"""


def test_torch_cpu_variant_serves_a_torchscript_model(torch_image: str, base_image: str, tmp_path: Path) -> None:
    """torch-cpu: torch 2.13.0 CPU build, and a TorchScript model made and published with the image's own CLI."""
    print(f"torch-cpu image: {own_bytes(torch_image, base_image) / 1e6:.0f} MB over {base_image}")
    assert inspect_image(torch_image)["Config"]["Labels"]["io.modelfn.variant"] == "torch-cpu"
    store = tmp_path / "store"
    store.mkdir()
    store.chmod(0o777)  # written by the image's non-root user
    publish = (
        'python -c "$0" && modelfn publish /tmp/tiny.pt --name tiny --version 1.0.0 --to file:///store '
        "--input x:FP32:-1,4 --output y:FP32:-1,2"
    )
    proc = docker_cli(
        "run",
        "--rm",
        "-v",
        f"{store}:/store",
        "--entrypoint",
        "sh",
        torch_image,
        "-c",
        publish,
        TINY_TORCHSCRIPT,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    service = start_function(
        torch_image, {"MODEL_URI": "file:///store/tiny@1.0.0", "WORKERS": "1"}, volumes={str(store): "/store"}
    )
    try:
        assert wait_ready(service)["device"] == "cpu"
        response = service.post("/v1/models/tiny:predict", json={"instances": [[1.0, 1.0, 1.0, 1.0]]})
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == [[10.5, -1.0]]
        code, out = service.exec("python", "-c", "import torch; print(torch.__version__, torch.cuda.is_available())")
        assert code == 0, out
        assert out.split() == ["2.13.0+cpu", "False"]
    finally:
        service.stop()
