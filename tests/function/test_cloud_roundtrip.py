"""publish (CLI) -> serve -> predict against each real storage emulator, and storage outages."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from click.testing import CliRunner

from function.app import create_app
from function.cli import main
from tests.conftest import wait_ready
from tests.models import expected_logits

X = [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 1.0]]


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_publish_serve_predict(cloud_backend, onnx_file, tmp_path, make_settings):
    store = f"{cloud_backend.scheme}://{cloud_backend.bucket}/models"
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    cli(
        "publish",
        str(onnx_file),
        "--name",
        "lin",
        "--version",
        "1.0.0",
        "--to",
        store,
        "--labels",
        str(labels),
        "--softmax",
        "--top-k",
        "1",
        "--meta",
        "git=abc123",
    )
    cli("publish", str(onnx_file), "--name", "lin", "--version", "1.1.0", "--to", store, "--no-latest")
    cli("promote", "lin@1.1.0", "--alias", "prod", "--store", store)
    # Background loaders of other tests' apps may log to the captured stdout too: take the JSON line.
    listing = json.loads(next(line for line in cli("list", store, "--json").splitlines() if line.startswith("[")))
    assert listing == [{"name": "lin", "versions": ["1.0.0", "1.1.0"], "aliases": {"latest": "1.0.0", "prod": "1.1.0"}}]

    settings = make_settings(model_uri=f"{store}/lin", **_azure_settings(cloud_backend))
    client = create_app(settings).test_client()
    wait_ready(client)
    body = client.post("/v1/models/lin:predict", json={"instances": X}).get_json()
    best = np.argmax(expected_logits(np.array(X)), axis=1)
    assert [p[0]["label"] for p in body["predictions"]] == [["a", "b", "c"][i] for i in best]

    prod = create_app(make_settings(model_uri=f"{store}/lin@prod", **_azure_settings(cloud_backend))).test_client()
    wait_ready(prod)
    r = prod.post(
        "/v2/models/lin/versions/1.1.0/infer",
        json={"inputs": [{"name": "features", "shape": [2, 4], "datatype": "FP32", "data": X}]},
    )
    assert r.status_code == 200
    np.testing.assert_allclose(r.get_json()["outputs"][0]["data"], expected_logits(np.array(X)).ravel(), rtol=1e-6)


def _azure_settings(backend) -> dict:
    # The service reads the connection string through Settings, like AZURE_STORAGE_ACCOUNT_URL.
    if backend.scheme == "az":
        return {"azure_storage_connection_string": backend.env["AZURE_STORAGE_CONNECTION_STRING"]}
    return {}


def test_publish_refuses_an_existing_version(cloud_backend, onnx_file):
    store = f"{cloud_backend.scheme}://{cloud_backend.bucket}/models"
    cli("publish", str(onnx_file), "--name", "lin", "--version", "1.0.0", "--to", store)
    result = CliRunner().invoke(main, ["publish", str(onnx_file), "--name", "lin", "--version", "1.0.0", "--to", store])
    assert result.exit_code != 0 and "immutable" in result.output


def test_storage_down_at_cold_start_then_back(azure_emulator, onnx_file, make_settings, monkeypatch):
    for name, value in azure_emulator.env.items():
        monkeypatch.setenv(name, value)
    bucket = azure_emulator.create_bucket("outage")
    store = f"az://{bucket}/models"
    cli("publish", str(onnx_file), "--name", "lin", "--version", "1.0.0", "--to", store)
    azure_emulator.stop()
    try:
        settings = make_settings(
            model_uri=f"{store}/lin",
            load_retry_seconds=0.3,
            **{"azure_storage_connection_string": azure_emulator.env["AZURE_STORAGE_CONNECTION_STRING"]},
        )
        client = create_app(settings).test_client()
        for _ in range(600):
            r = client.get("/readyz")
            if r.get_json().get("phase") == "failed":
                break
            time.sleep(0.02)
        assert r.status_code == 503 and "unreachable" in r.get_json()["error"].lower()
        assert client.get("/healthz").status_code == 200
    finally:
        azure_emulator.restart()  # Azurite keeps its data on disk
    wait_ready(client)
    assert client.post("/v1/models/lin:predict", json={"instances": X}).status_code == 200


@pytest.mark.parametrize("scheme", ["s3", "gs", "az"])
def test_serving_one_cloud_imports_no_other_sdk(scheme, tmp_path):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from loader.stores import open_store\n"
        f"open_store('{scheme}://bucket/models', {{'azure_connection_string': "
        "'DefaultEndpointsProtocol=http;AccountName=a;AccountKey=YQ==;BlobEndpoint=http://127.0.0.1:1/a'})\n"
        "tops = {m.split('.')[0] for m in sys.modules} & {'boto3', 'botocore', 'azure'}\n"
        "print(sorted(tops | {m for m in sys.modules if m == 'google.cloud.storage'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "AWS_DEFAULT_REGION": "us-east-1",
            "STORAGE_EMULATOR_HOST": "http://127.0.0.1:1",
        },
    )
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout.replace("'", '"')))
    expected = {"s3": {"boto3", "botocore"}, "gs": {"google.cloud.storage"}, "az": {"azure"}}[scheme]
    assert loaded == expected
