"""Fixtures for the events tests: a call-recording store registry and an events-enabled app factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

import loader.stores
from function.app import create_app
from tests.conftest import wait_ready
from tests.events import recording


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Every store opened during the test records its calls in ``recording.CALLS``."""
    for scheme in ("s3", "gs", "az"):
        monkeypatch.setitem(loader.stores._REGISTRY, scheme, f"tests.events.recording:{scheme}")
    recording.CALLS.clear()
    recording.FAULTS.clear()
    yield recording
    recording.CALLS.clear()
    recording.FAULTS.clear()


@pytest.fixture
def events_client(make_settings: Callable[..., Any], published: str) -> Callable[..., FlaskClient]:
    """``factory(input_uri, output_uri, **settings)`` -> a READY test client serving lin@latest."""

    def factory(
        input_uri: str | None = "s3://in-bucket/inputs",
        output_uri: str | None = "s3://in-bucket/outputs",
        **overrides: Any,
    ) -> FlaskClient:
        values = {"model_uri": f"{published}/lin", "events_input_uri": input_uri, "events_output_uri": output_uri}
        if "events_secret" not in overrides:
            values["events_auth"] = "platform"  # as on private Cloud Run; the auth tests set a secret
        values.update(overrides)
        client = create_app(make_settings(**values)).test_client()
        wait_ready(client)
        recording.CALLS.clear()  # only what events do counts
        return client

    return factory
