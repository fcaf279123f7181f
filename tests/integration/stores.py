"""The three storage emulators as containers: how the host and the function container reach each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tests.integration.docker_env import ROOT, DockerContainer, Network, Service, wait_for

BUCKET = "models"
# Azurite's well-known development account (public, documented by Microsoft; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
IRIS = ROOT / "examples" / "iris"
DEMO_STORE = ROOT / "function" / "demo" / "store"


@dataclass
class Emulator:
    """One emulator container, on the test network under ``alias``, with a mapped port for the host."""

    kind: ClassVar[str]
    scheme: ClassVar[str]
    port: ClassVar[int]
    service: Service
    alias: str
    client: Any = field(default=None, repr=False)

    @property
    def root_uri(self) -> str:
        """Store URI the CLI publishes to and MODEL_URI points into."""
        return f"{self.scheme}://{BUCKET}/registry"

    def model_uri(self, ref: str) -> str:
        return f"{self.root_uri}/iris@{ref}"

    def key(self, *parts: str) -> str:
        return "/".join(("registry", *parts))

    @property
    def inner_url(self) -> str:
        """The endpoint as the function container sees it, over the Docker network."""
        return f"http://{self.alias}:{self.port}"

    def host_env(self) -> dict[str, str]:
        raise NotImplementedError

    def container_env(self) -> dict[str, str]:
        raise NotImplementedError

    def connect(self) -> None:
        """Create the SDK client and the bucket (retrying while the emulator starts)."""
        raise NotImplementedError

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def pause(self) -> None:
        """Freeze the emulator: connections open but nothing answers (a store that hangs)."""
        self.service.wrapped.pause()

    def unpause(self) -> None:
        """Thaw it (no-op when it is not paused)."""
        wrapped = self.service.wrapped
        wrapped.reload()
        if wrapped.status == "paused":
            wrapped.unpause()

    def publish(self, version: str, *extra: str) -> None:
        """``modelfn publish`` the demo Iris model from the host, through the mapped port."""
        # fmt: off
        run_cli(
            self.host_env(),
            "publish", str(IRIS / "model.onnx"), "--name", "iris", "--version", version, "--to", self.root_uri,
            "--labels", str(IRIS / "labels.txt"), "--softmax", "--top-k", "1", *iris_preprocessing(), *extra,
        )
        # fmt: on


class S3(Emulator):
    kind, scheme, port = "s3", "s3", 5000
    creds: ClassVar[dict[str, str]] = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    def host_env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.service.url, **self.creds}

    def container_env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.inner_url, **self.creds}

    def connect(self) -> None:
        import boto3

        self.client = boto3.client(
            "s3",
            endpoint_url=self.service.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        wait_for(lambda: self.client.create_bucket(Bucket=BUCKET), 60, "moto to create the bucket")

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=data)

    def get(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read())


class GCS(Emulator):
    kind, scheme, port = "gcs", "gs", 9023

    def host_env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.service.url, "GOOGLE_CLOUD_PROJECT": "test"}

    def container_env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.inner_url, "GOOGLE_CLOUD_PROJECT": "test"}

    def connect(self) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.service.url},
        )
        wait_for(lambda: client.create_bucket(BUCKET), 60, "the GCS emulator to create the bucket")
        self.client = client.bucket(BUCKET)

    def put(self, key: str, data: bytes) -> None:
        self.client.blob(key).upload_from_string(data)

    def get(self, key: str) -> bytes:
        return bytes(self.client.blob(key).download_as_bytes())


class Azure(Emulator):
    kind, scheme, port = "azure", "az", 10000

    def _connection_string(self, endpoint: str) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};"
        )

    def host_env(self) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self._connection_string(self.service.url)}

    def container_env(self) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self._connection_string(self.inner_url)}

    def connect(self) -> None:
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(self._connection_string(self.service.url))
        wait_for(lambda: service.create_container(BUCKET), 60, "Azurite to create the container")
        self.client = service.get_container_client(BUCKET)

    def put(self, key: str, data: bytes) -> None:
        self.client.upload_blob(key, data, overwrite=True)

    def get(self, key: str) -> bytes:
        return bytes(self.client.download_blob(key).readall())


EMULATORS: dict[str, type[Emulator]] = {cls.kind: cls for cls in (S3, GCS, Azure)}


def start_emulator(kind: str, image: str, network: Network) -> Emulator:
    """Start the emulator container on ``network`` and create its bucket from the host."""
    cls = EMULATORS[kind]
    alias = f"{kind}-emulator"
    container = DockerContainer(image).with_exposed_ports(cls.port).with_network(network).with_network_aliases(alias)
    container.start()
    emulator = cls(service=Service(container, cls.port), alias=alias)
    try:
        emulator.connect()
    except Exception:
        print(emulator.service.logs(), file=sys.stderr)
        emulator.service.stop()
        raise
    return emulator


def iris_preprocessing() -> list[str]:
    """The demo model takes standardised features: the bundled demo manifest's mean/std as CLI options."""
    manifest = json.loads((DEMO_STORE / "iris" / "1.0.0" / "manifest.json").read_text())
    options = []
    for key in ("mean", "std"):
        if values := manifest["preprocess"].get(key):
            options += [f"--{key}", ",".join(str(v) for v in values)]
    return options


def cli_command() -> list[str]:
    """The ``modelfn`` console script next to this interpreter (or the module, if not installed)."""
    script = Path(sys.executable).parent / "modelfn"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from function.cli import main; main()"]


def run_cli(env: dict[str, str], *args: str) -> str:
    """Run the CLI with ``env`` on top of ours; fail the test with its output on a non-zero exit."""
    proc = subprocess.run(
        [*cli_command(), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"modelfn {' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
    return proc.stdout
