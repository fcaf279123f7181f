"""Real storage emulators (moto, gcp-storage-emulator, Azurite) run as subprocesses on loopback ports.

Each emulator knows the environment variables a client needs (``env``), can create a bucket or
container, and can be stopped and restarted on the same port to simulate storage outages.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

READY_TIMEOUT = 60.0
STOP_GRACE = 3.0

AZURITE_VERSION = "3.35.0"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft; not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class EmulatorMissing(RuntimeError):
    """An emulator binary is not installed; the message says how to install it."""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _venv_binary(name: str, install: str) -> list[str]:
    """A console script next to the running interpreter (the venv), else on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise EmulatorMissing(f"{name} not found; install it with: {install}")
    return [found]


class Emulator:
    """One emulator subprocess bound to a fixed loopback port for its whole life."""

    name = "emulator"

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"modelfn-{self.name}-"))
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self.workdir / "emulator.log"
        self.buckets: list[str] = []

    @property
    def env(self) -> dict[str, str]:
        """Environment variables the SDK needs to talk to this emulator."""
        raise NotImplementedError

    def command(self) -> list[str]:
        """The argv that starts the emulator."""
        raise NotImplementedError

    def _create(self, bucket: str) -> None:
        raise NotImplementedError

    def create_bucket(self, bucket: str) -> str:
        """Create a bucket/container (remembered so a restart can recreate it) and return its name."""
        self._create(bucket)
        self.buckets.append(bucket)
        return bucket

    @property
    def running(self) -> bool:
        """True while the subprocess is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the subprocess and wait until it answers HTTP on its port."""
        if self.running:
            return
        argv = self.command()
        with self._log.open("ab") as log:
            # Own session so stop() can signal the whole group (npx/node spawn children).
            self._proc = subprocess.Popen(
                argv, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            if self._answers_http():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} not ready on port {self.port} after {READY_TIMEOUT}s:\n{self.log_tail()}")

    def _answers_http(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + "/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP status means the server is up
        except (OSError, ValueError):
            return False

    def stop(self) -> None:
        """Stop the subprocess (its whole process group) and wait until the port is closed."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            # Short grace: Azurite's graceful close waits for clients' idle keep-alive connections.
            proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def restart(self) -> None:
        """Start again on the same port; buckets made with create_bucket exist again afterwards."""
        self.stop()
        self.start()
        for bucket in self.buckets:
            self._create(bucket)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the emulator printed (for error messages)."""
        if not self._log.exists():
            return ""
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        """Stop and remove the working directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class MotoEmulator(Emulator):
    """S3 via ``moto_server``; state is in memory, so objects do not survive a restart."""

    name = "moto"

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def command(self) -> list[str]:
        binary = _venv_binary("moto_server", "pip install 'moto[server]==5.2.1'")
        return [*binary, "-H", "127.0.0.1", "-p", str(self.port)]

    def _create(self, bucket: str) -> None:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)


class GCSEmulator(Emulator):
    """GCS via ``gcp-storage-emulator``, storing on disk in its workdir so restarts keep objects."""

    name = "gcs"

    @property
    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.endpoint, "GOOGLE_CLOUD_PROJECT": "test"}

    def command(self) -> list[str]:
        binary = _venv_binary("gcp-storage-emulator", "pip install gcp-storage-emulator==2026.7.19")
        return [*binary, "start", "--host", "127.0.0.1", "--port", str(self.port), "--quiet"]

    def _create(self, bucket: str) -> None:
        from google.api_core.exceptions import Conflict
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
        )
        with contextlib.suppress(Conflict):
            client.create_bucket(bucket)


class AzuriteEmulator(Emulator):
    """Azure Blob via Azurite (npm), persisting to its workdir; blobs written just before stop may be lost."""

    name = "azurite"

    @property
    def connection_string(self) -> str:
        """Azurite's well-known development-account connection string for this port."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.endpoint}/{AZURITE_ACCOUNT};"
        )

    @property
    def env(self) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}

    def command(self) -> list[str]:
        local = Path(__file__).resolve().parent.parent / ".tools/node/node_modules/.bin/azurite-blob"
        binary = str(local) if local.exists() else shutil.which("azurite-blob")
        if binary:
            argv = [binary]
        elif shutil.which("npx") and _npx_has_azurite():
            argv = ["npx", "--no-install", "azurite-blob"]
        else:
            raise EmulatorMissing(
                f"azurite-blob not found; install it with `make emulators` "
                f"(or: npm install -g azurite@{AZURITE_VERSION})"
            )
        location = self.workdir / "data"
        return [
            *argv,
            *("--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", str(location)),
            *("--skipApiVersionCheck", "--loose", "--silent"),
        ]

    def _create(self, bucket: str) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(self.connection_string)
        with contextlib.suppress(ResourceExistsError):
            service.create_container(bucket)


def _npx_has_azurite() -> bool:
    probe = subprocess.run(
        ["npx", "--no-install", "azurite-blob", "--version"], capture_output=True, timeout=60, check=False
    )
    return probe.returncode == 0


EMULATORS: dict[str, type[Emulator]] = {"s3": MotoEmulator, "gs": GCSEmulator, "az": AzuriteEmulator}


def start_emulator(scheme: str) -> Emulator:
    """Start the emulator for a store scheme (``s3``, ``gs``, ``az``); the caller must ``close()`` it."""
    emulator = EMULATORS[scheme]()
    try:
        emulator.start()
    except BaseException:
        emulator.close()
        raise
    return emulator
