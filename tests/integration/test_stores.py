"""The real image against each store's emulator: publish with the CLI, serve, fail, recover, stop.

Per store (s3 / gcs / azure): the demo model is published twice (1.0.0 with alias prod, then 2.0.0,
which moves latest) from the host through the emulator's mapped port; the function container reads
it over the Docker network with MODEL_URI=...iris@prod.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.docker_env import UID, Network, Service, wait_for
from tests.integration.helpers import (
    BASE_ENV,
    SAMPLES,
    metric,
    predict_labels,
    process_uids,
    readyz,
    reason,
    start_function,
    wait_failed,
    wait_ready,
)
from tests.integration.stores import Emulator

pytestmark = [pytest.mark.emulator, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def published(emulator: Emulator) -> Emulator:
    """The emulator with iris 1.0.0 (alias prod) and 2.0.0 (alias latest) published by the CLI."""
    emulator.publish("1.0.0", "--alias", "prod")
    emulator.publish("2.0.0")
    return emulator


@dataclass
class Served:
    service: Service
    first_readyz: tuple[int, dict[str, Any]]
    ready_body: dict[str, Any]


@pytest.fixture(scope="module")
def served(published: Emulator, function_image: str, network: Network) -> Iterator[Served]:
    """One function container per store, started while the store hangs so readiness starts at 503."""
    published.pause()
    try:
        service = start_function(
            function_image, {**published.container_env(), "MODEL_URI": published.model_uri("prod")}, network
        )
        first = readyz(service)
    finally:
        published.unpause()
    body = wait_ready(service)
    yield Served(service, first, body)
    service.stop()


def test_readiness_goes_from_503_to_200(served: Served) -> None:
    status, body = served.first_readyz
    assert status == 503, body
    assert body["phase"] in ("fetching", "loading"), body
    assert body["state"] == "LOADING", body
    assert served.ready_body["version"] == "1.0.0"  # alias prod, not latest (2.0.0)


def test_predictions_are_correct(served: Served) -> None:
    rows, labels = zip(*SAMPLES, strict=True)
    assert predict_labels(served.service, list(rows)) == list(labels)
    response = served.service.post("/v1/models/iris:predict", json={"instances": [[1.0, 2.0]]})
    assert response.status_code == 400, response.text  # wrong width: a clear client error


def test_metrics_show_exactly_one_artifact_download(served: Served) -> None:
    service = served.service
    # The container's one worker loads the model once (docs/serving.md: one model copy per container).
    wait_for(lambda: (metric(service, "modelfn_model_load_seconds_count") or 0) >= 1 or None, 60, "the model load")
    predict_labels(service, [SAMPLES[0][0]])
    assert metric(service, "modelfn_artifact_downloads_total") == 1
    info = metric(service, "modelfn_model_info", name="iris", version="1.0.0", device="cpu")
    assert info is not None and info >= 1
    ok = metric(service, "modelfn_http_requests_total", method="POST", status="200")
    assert ok is not None and ok >= 1


def test_runs_as_non_root(served: Served) -> None:
    assert process_uids(served.service) == {UID}
    code, out = served.service.exec("cat", "/proc/1/cmdline")
    assert code == 0 and "gunicorn" in out  # PID 1 is Gunicorn itself (exec-form CMD), so it gets SIGTERM


def test_sigterm_lets_the_in_flight_request_finish(published: Emulator, function_image: str, network: Network) -> None:
    graceful = int(BASE_ENV["GRACEFUL_TIMEOUT"])
    result: dict[str, Any] = {}
    published.pause()  # the request below waits for a model whose store hangs: slow, deterministically
    try:
        service = start_function(
            function_image,
            {**published.container_env(), "MODEL_URI": published.model_uri("prod"), "WORKERS": "1"},
            network,
        )
    except BaseException:
        published.unpause()
        raise

    def call() -> None:
        try:
            result["labels"] = predict_labels(service, [SAMPLES[2][0]], timeout=120)
        except BaseException as exc:
            result["error"] = exc

    client = threading.Thread(target=call)
    try:
        client.start()
        time.sleep(1.5)  # let the worker accept it; it then waits on the loading model
        assert client.is_alive(), result
        service.wrapped.kill(signal="SIGTERM")
        time.sleep(1.0)  # Gunicorn is draining while the request is still in flight
        assert client.is_alive(), result
        published.unpause()
        client.join(120)
        assert result.get("labels") == [SAMPLES[2][1]], f"{result}\n{service.logs()}"
        exit_status = service.wrapped.wait(timeout=graceful + 5)  # within the graceful timeout
        assert exit_status["StatusCode"] == 0, service.logs()
    finally:
        published.unpause()
        service.stop()


def _same_process(before: dict[str, Any], after: dict[str, Any]) -> bool:
    keys = ("StartedAt", "Pid", "Running")
    return all(before["State"][k] == after["State"][k] for k in keys) and after["RestartCount"] == 0


def test_missing_version_recovers_without_restart(published: Emulator, function_image: str, network: Network) -> None:
    service = start_function(
        function_image,
        {**published.container_env(), "MODEL_URI": published.model_uri("7.7.7"), "WORKERS": "1"},
        network,
    )
    try:
        body = wait_failed(service)
        assert "7.7.7" in reason(body) or "not found" in reason(body).lower(), body
        assert service.get("/healthz").status_code == 200
        assert service.post("/v1/models/iris:predict", json={"instances": [SAMPLES[0][0]]}).status_code == 503
        before = service.inspect()
        published.publish("7.7.7", "--no-latest")
        assert wait_ready(service)["version"] == "7.7.7"
        assert _same_process(before, service.inspect())
        assert predict_labels(service, [SAMPLES[0][0]]) == [SAMPLES[0][1]]
    finally:
        service.stop()


def test_wrong_digest_is_reported_and_recovers(published: Emulator, function_image: str, network: Network) -> None:
    published.publish("3.0.0", "--no-latest")
    manifest = json.loads(published.get(published.key("iris", "3.0.0", "manifest.json")))
    [entry] = [f for f in manifest["files"] if f["path"] == manifest["model_file"]]
    # Content-addressed layout (loader.keys.object_key): the file lives under its sha256.
    model_key = published.key("iris", "_blobs", "sha256", entry["sha256"])
    good = published.get(model_key)
    published.put(model_key, bytes(reversed(good)))  # same size, other bytes
    service: Service | None = None
    try:
        service = start_function(
            function_image,
            {**published.container_env(), "MODEL_URI": published.model_uri("3.0.0"), "WORKERS": "1"},
            network,
        )
        body = wait_failed(service)
        assert "sha256" in reason(body).lower() or "digest" in reason(body).lower(), body
        assert service.get("/healthz").status_code == 200
        before = service.inspect()
    finally:
        published.put(model_key, good)
    try:
        assert wait_ready(service)["version"] == "3.0.0"
        assert _same_process(before, service.inspect())
        assert predict_labels(service, [SAMPLES[1][0]]) == [SAMPLES[1][1]]
    finally:
        service.stop()
