"""The storage work a deployed function does, end to end, against a real backend: the IAM tests' workload.

Layout as in the root stacks' examples: the model at <bucket>/models/iris, inputs/ and outputs/ beside it.
An admin (or the documented publisher) publishes; the app runs with the service identity's credentials.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from flask.testing import FlaskClient

from function.events.scope import SECRET_HEADER
from function.settings import Settings

MODEL_STORE = "models"
NAME = "iris"
INPUTS = "inputs"
OUTPUTS = "outputs"
SECRET = "0123456789abcdef0123"  # test value, not a credential
ROWS = [[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.0, 0.0]]


class Backend(Protocol):
    """One bucket on an emulator, with an admin that writes objects and publishes models."""

    scheme: str
    bucket: str

    def put(self, key: str, data: bytes) -> str:
        """Write an object as the admin; return the version its storage event carries."""
        ...

    def read(self, key: str) -> bytes:
        """Read an object as the admin."""
        ...

    def version(self, key: str) -> str:
        """The current version (generation, etag, sequencer) of an object, as its event would carry it."""
        ...

    def event(self, key: str, version: str) -> tuple[dict[str, str], bytes]:
        """The request the cloud's event system POSTs for this object version."""
        ...

    def publish(self, version: str, model_file: Path) -> None:
        """Publish NAME@version and point the prod alias at it, as the admin."""
        ...


@dataclass
class Flow:
    """Drives the app through serving and events; every step asserts what a user would see."""

    backend: Backend
    client: FlaskClient

    @property
    def base(self) -> str:
        return f"{self.backend.scheme}://{self.backend.bucket}"

    def deliver(self, key: str, version: str) -> Any:
        headers, body = self.backend.event(key, version)
        return self.client.post("/events", data=body, headers={**headers, SECRET_HEADER: SECRET})

    def wait_for_version(self, version: str, timeout: float = 30.0) -> None:
        """Poll /readyz until the served version is ``version`` (bounds a hang; no timing assertion)."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.client.get("/readyz").get_json() or {}
            if body.get("version") == version:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"never served {version}: {body}")
            time.sleep(0.05)


def settings(backend: Backend, cache_dir: Path) -> Settings:
    """The settings the root stacks give the service: @prod, events on the same bucket, a secret."""
    base = f"{backend.scheme}://{backend.bucket}"
    return Settings(
        model_uri=f"{base}/{MODEL_STORE}/{NAME}@prod",
        cache_dir=cache_dir,
        events_input_uri=f"{base}/{INPUTS}",
        events_output_uri=f"{base}/{OUTPUTS}",
        events_secret=SECRET,
        load_retry_seconds=0.2,
        load_wait_seconds=10.0,
        fetch_retries=0,
    )


def jsonl(*rows: list[float]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def run(backend: Backend, make_client: Callable[[], FlaskClient], model_file: Path) -> None:
    """Load @prod, run batch jobs (markers, duplicates, a new version, a bad input), then hot-swap."""
    flow = Flow(backend, make_client())
    flow.wait_for_version("1.0.0")
    predicted = flow.client.post(f"/v1/models/{NAME}:predict", json={"instances": ROWS})
    assert predicted.status_code == 200, predicted.get_json()

    key = f"{INPUTS}/job-{uuid.uuid4().hex[:8]}.jsonl"
    version = backend.put(key, jsonl(*ROWS))
    first = flow.deliver(key, version)
    assert first.status_code == 200 and first.get_json()["results"][0]["status"] == "processed", first.get_json()
    output_key = f"{OUTPUTS}/{key.removeprefix(INPUTS + '/')}"
    written = backend.read(output_key)
    again = flow.deliver(key, version)  # a duplicate delivery reads the marker back
    assert again.status_code == 200 and again.get_json()["results"][0]["status"] == "duplicate", again.get_json()
    assert backend.read(output_key) == written

    newer = backend.put(key, jsonl(ROWS[0]))  # a new version replaces the marker and the output
    replaced = flow.deliver(key, newer)
    assert replaced.status_code == 200 and replaced.get_json()["results"][0]["status"] == "processed"
    assert backend.read(output_key) != written

    bad = f"{INPUTS}/bad-{uuid.uuid4().hex[:8]}.jsonl"
    reported = flow.deliver(bad, backend.put(bad, b'{"not json\n'))
    assert reported.status_code == 200 and reported.get_json()["results"][0]["status"] == "error-report"

    backend.publish("1.1.0", model_file)
    alias = f"{MODEL_STORE}/{NAME}/aliases/prod.json"
    swapped = flow.deliver(alias, backend.version(alias))
    assert swapped.status_code == 202, swapped.get_json()
    flow.wait_for_version("1.1.0")
