"""The S3 emulator (moto, as the tests start it) and publishing the bench models with the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.procs import ROOT

BUCKET = "bench"
STORE_URI = f"s3://{BUCKET}/models"
DEMO_ONNX = ROOT / "function/demo/store/iris/1.0.0/model.onnx"
# The demo's own pre/post-processing (function/demo/store/iris/1.0.0/manifest.json), so modelfn does its usual work.
DEMO_ARGS = [
    "--mean",
    "5.8433,3.0573,3.758,1.1993",
    "--std",
    "0.8253,0.4344,1.7594,0.7597",
    "--softmax",
    "--top-k",
    "1",
]


def start_moto() -> Any:
    """A started ``tests.emulators.MotoEmulator`` (the caller closes it) with the bench bucket."""
    sys.path.insert(0, str(ROOT))
    from tests.emulators import start_emulator

    emulator = start_emulator("s3")
    emulator.create_bucket(BUCKET)
    return emulator


def modelfn_cli() -> list[str]:
    """The ``modelfn`` console script of this venv (imports the checkout via PYTHONPATH)."""
    script = Path(sys.executable).parent / "modelfn"
    return [str(script)] if script.exists() else [sys.executable, "-m", "function.cli"]


def publish(
    env: dict[str, str],
    model: Path,
    name: str,
    extra: list[str],
    labels: Path | None = None,
    root: Path = ROOT,
    store_uri: str | None = None,
) -> str:
    """``modelfn publish`` (of checkout ``root``) MODEL as NAME version 1 with alias prod; returns its MODEL_URI.

    ``store_uri`` defaults to the emulator's bucket (a prefix of its own for another checkout's CLI).
    """
    store_uri = store_uri or (STORE_URI if root == ROOT else f"s3://{BUCKET}/base-models")
    argv = [*modelfn_cli(), "publish", str(model), "--name", name, "--version", "1", "--to", store_uri]
    argv += ["--alias", "prod", *extra]
    if labels is not None:
        argv += ["--labels", str(labels)]
    env = {**env, "PYTHONPATH": str(root)}
    done = subprocess.run(argv, env=env, cwd=root, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"modelfn publish {name} failed: {done.stderr.strip()[-2000:]}")
    return f"{store_uri}/{name}@prod"


def object_key(env: dict[str, str], name: str, filename: str) -> str:
    """The S3 key of FILENAME in the published version of NAME (for timing a bare download)."""
    from loader.keys import object_key as key_in_store
    from loader.manifest import Manifest

    raw = s3_client(env).get_object(Bucket=BUCKET, Key=f"models/{name}/1/manifest.json")["Body"].read()
    manifest = Manifest.from_json(raw)
    entry = next((e for e in manifest.files if e.path == filename), None)
    if entry is None:
        raise RuntimeError(f"{filename} of {name} not in its manifest")
    return f"models/{key_in_store(manifest, entry)}"  # content-addressed since the layout change


def s3_client(env: dict[str, str]) -> Any:
    """A boto3 S3 client for the emulator described by ``env``."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
