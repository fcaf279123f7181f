"""Shared fixtures: settings/app/client factories, a file:// store with a model, storage emulators."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from function.app import create_app
from function.holder import close_all
from function.settings import Settings
from loader.stores import Store, open_store
from tests.emulators import Emulator, EmulatorMissing, start_emulator
from tests.models import linear_onnx, publish_model

EMULATOR_FIXTURES = {"s3_emulator", "gcs_emulator", "azure_emulator", "cloud_backend", "cloud_store", "emulator_env"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that starts a storage emulator, so `-m "not emulator"` can leave them out."""
    for item in items:
        if EMULATOR_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.emulator)


@pytest.fixture(autouse=True)
def _stop_background_loaders() -> Iterator[None]:
    """Apps built by a test stop their load-retry loops when it ends."""
    yield
    close_all()


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """An empty file:// store."""
    path = tmp_path / "store"
    path.mkdir()
    return path


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    """The tiny linear ONNX model."""
    return linear_onnx(tmp_path / "model.onnx")


@pytest.fixture
def published(store_dir: Path, onnx_file: Path) -> str:
    """Store URI holding lin@1.0.0 (alias latest), with labels and softmax post-processing."""
    uri = store_dir.as_uri()
    publish_model(uri, onnx_file, postprocess={"softmax": True, "labels": ["a", "b", "c"], "top_k": 2})
    return uri


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings factory with a private cache dir and fast retries."""

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "cache_dir": tmp_path / "cache",
            "load_retry_seconds": 0.2,
            "load_wait_seconds": 5.0,
            "fetch_retries": 1,
        }
        values.update(overrides)
        return Settings(**values)

    return factory


@pytest.fixture
def settings(make_settings: Callable[..., Settings], published: str) -> Settings:
    """Settings serving lin@latest from the file store."""
    return make_settings(model_uri=f"{published}/lin")


@pytest.fixture
def app(settings: Settings) -> Flask:
    """An app for ``settings``."""
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    """A test client whose model is already READY."""
    client = app.test_client()
    wait_ready(client)
    yield client


def wait_ready(client: FlaskClient, timeout: float = 20.0) -> None:
    """Poll /readyz until 200 (tests never assert on time; this only bounds a hang)."""
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready: {client.get('/readyz').get_json()}")
        time.sleep(0.02)


# --- storage emulators (real processes on loopback ports) ---


def _emulator(scheme: str) -> Iterator[Emulator]:
    try:
        emulator = start_emulator(scheme)
    except EmulatorMissing as exc:
        # Fail loudly: a silently skipped backend is an untested backend.
        pytest.fail(str(exc), pytrace=False)
    try:
        yield emulator
    finally:
        emulator.close()


@pytest.fixture(scope="session")
def s3_emulator() -> Iterator[Emulator]:
    """moto_server on a free loopback port."""
    yield from _emulator("s3")


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[Emulator]:
    """gcp-storage-emulator on a free loopback port."""
    yield from _emulator("gs")


@pytest.fixture(scope="session")
def azure_emulator() -> Iterator[Emulator]:
    """Azurite (blob service) on a free loopback port."""
    yield from _emulator("az")


_EMULATOR_FIXTURES = {"s3": "s3_emulator", "gs": "gcs_emulator", "az": "azure_emulator"}


@dataclass
class CloudBackend:
    """One emulated backend with its environment applied; ``open`` makes stores on a fresh bucket."""

    scheme: str
    emulator: Emulator
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        return self.emulator.env

    def open(self, prefix: str = "some/prefix") -> Store:
        """A store at ``scheme://bucket/prefix``, configured the way the service does it (Settings)."""
        uri = f"{self.scheme}://{self.bucket}/{prefix}".rstrip("/")
        return open_store(uri, Settings().store_options())


@pytest.fixture(params=["s3", "gs", "az"])
def cloud_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> CloudBackend:
    """Each cloud backend against its emulator, with the SDK environment variables set."""
    scheme: str = request.param
    emulator: Emulator = request.getfixturevalue(_EMULATOR_FIXTURES[scheme])
    for name, value in emulator.env.items():
        monkeypatch.setenv(name, value)
    bucket = emulator.create_bucket(f"t-{uuid.uuid4().hex[:16]}")
    return CloudBackend(scheme, emulator, bucket)


@pytest.fixture
def cloud_store(cloud_backend: CloudBackend) -> tuple[Store, dict[str, str]]:
    """``(store, env)`` for each backend; the store sits under a non-empty prefix."""
    return cloud_backend.open(), cloud_backend.env


@pytest.fixture(scope="session")
def emulator_env(s3_emulator: Emulator, gcs_emulator: Emulator, azure_emulator: Emulator) -> Iterator[None]:
    """All three emulators' variables for a whole session (for callers that need session scope)."""
    with pytest.MonkeyPatch.context() as patch:
        for emulator in (s3_emulator, gcs_emulator, azure_emulator):
            for name, value in emulator.env.items():
                patch.setenv(name, value)
        yield
