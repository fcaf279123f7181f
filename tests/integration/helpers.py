"""Starting the function image and reading its probes, predictions and metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.docker_env import DockerContainer, Network, Service, wait_for

# Canonical Iris rows, one per class.
SAMPLES: list[tuple[list[float], str]] = [
    ([5.1, 3.5, 1.4, 0.2], "setosa"),
    ([5.9, 3.0, 4.2, 1.5], "versicolor"),
    ([6.9, 3.1, 5.4, 2.1], "virginica"),
]
BASE_ENV = {
    "THREADS": "8",
    "GRACEFUL_TIMEOUT": "15",
    "LOAD_RETRY_SECONDS": "1",
    "LOAD_WAIT_SECONDS": "60",
    "LOG_LEVEL": "info",
}


def start_function(
    image: str,
    env: dict[str, str],
    network: Network | None = None,
    port: int = 8080,
    volumes: dict[str, str] | None = None,
) -> Service:
    """Start the function image (as users run it: its own CMD, env only) and wait for /healthz."""
    container = DockerContainer(image).with_exposed_ports(port)
    if network is not None:
        container = container.with_network(network)
    for key, value in {**BASE_ENV, **env}.items():
        container = container.with_env(key, value)
    for host_path, container_path in (volumes or {}).items():
        container = container.with_volume_mapping(host_path, container_path, "ro")
    container.start()
    service = Service(container, port)
    try:
        wait_for(lambda: service.get("/healthz", timeout=2).status_code == 200 or None, 90, "/healthz 200")
    except AssertionError as exc:
        logs = service.logs()
        service.stop()
        raise AssertionError(f"{exc}\n--- container logs ---\n{logs}") from None
    return service


def readyz(service: Service) -> tuple[int, dict[str, Any]]:
    response = service.get("/readyz", timeout=5)
    return response.status_code, response.json()


def reason(body: dict[str, Any]) -> str:
    """The failure reason of a 503 readiness body."""
    return str(body.get("reason") or body.get("error") or "")


def wait_ready(service: Service, timeout: float = 120) -> dict[str, Any]:
    """Poll /readyz until 200; the body."""

    def check() -> dict[str, Any] | None:
        status, body = readyz(service)
        return body if status == 200 else None

    try:
        return wait_for(check, timeout, "/readyz 200")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nlast /readyz: {readyz(service)}\n{service.logs()}") from None


def wait_failed(service: Service, timeout: float = 90) -> dict[str, Any]:
    """Poll /readyz until it reports 503 with phase 'failed'; the body."""

    def check() -> dict[str, Any] | None:
        status, body = readyz(service)
        assert status in (200, 503), status
        return body if status == 503 and body.get("phase") == "failed" else None

    return wait_for(check, timeout, "/readyz 503 phase=failed")


def predict_labels(service: Service, rows: list[list[float]], timeout: float = 30) -> list[str]:
    """Top-1 labels from ``POST /v1/models/iris:predict``."""
    response = service.post("/v1/models/iris:predict", json={"instances": rows}, timeout=timeout)
    assert response.status_code == 200, response.text
    return [prediction[0]["label"] for prediction in response.json()["predictions"]]


def metric_samples(service: Service) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` as {(sample name, sorted labels): value}."""
    response = service.get("/metrics")
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def metric(service: Service, metric_name: str, /, **labels: str) -> float | None:
    """One sample's value (labels given must match; others are ignored), summed over matches."""
    values = [
        value
        for (sample, sample_labels), value in metric_samples(service).items()
        if sample == metric_name and all((k, v) in sample_labels for k, v in labels.items())
    ]
    return sum(values) if values else None


def process_uids(service: Service) -> set[str]:
    """The real uid of every process in the container (read from /proc inside it)."""
    code, out = service.exec(
        "python",
        "-c",
        "import glob\n"
        "for p in glob.glob('/proc/[0-9]*/status'):\n"
        "    try: print([l.split()[1] for l in open(p) if l.startswith('Uid:')][0])\n"
        "    except OSError: pass",
    )
    assert code == 0, out
    return set(out.split())
