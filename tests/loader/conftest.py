"""Fixtures shared by the loader's race tests."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.conftest import _EMULATOR_FIXTURES


# "cloud-" ids: `make test-fast` (-k "not cloud") leaves the emulator runs out.
@pytest.fixture(
    params=["file", *(pytest.param(s, marks=pytest.mark.emulator, id=f"cloud-{s}") for s in ("s3", "gs", "az"))]
)
def race_store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict]:
    """``(store URI, environment)`` for a fresh store on each backend (emulators for the clouds)."""
    if request.param == "file":
        (tmp_path / "store").mkdir()
        return (tmp_path / "store").as_uri(), {}
    emulator = request.getfixturevalue(_EMULATOR_FIXTURES[request.param])
    for name, value in emulator.env.items():
        monkeypatch.setenv(name, value)
    bucket = emulator.create_bucket(f"race-{uuid.uuid4().hex[:12]}")
    return f"{request.param}://{bucket}/models", dict(emulator.env)
