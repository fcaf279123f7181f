"""Bounded metric labels under hostile traffic, and Cloud Logging trace correlation in the access log."""

from __future__ import annotations

import json
import random
import string

import pytest

from function.app import create_app
from function.settings import Settings
from tests.conftest import wait_ready

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def series(client) -> int:
    """Distinct HTTP series (name + labels) the registry holds."""
    registry = client.application.extensions["modelfn"].metrics.registry
    return sum(
        1 for family in registry.collect() if family.name.startswith("modelfn_http") for sample in family.samples
    )


def http_labels(client, label: str) -> set[str]:
    registry = client.application.extensions["modelfn"].metrics.registry
    return {
        s.labels[label]
        for f in registry.collect()
        if f.name == "modelfn_http_requests"
        for s in f.samples
        if label in s.labels
    }


def test_random_methods_and_paths_do_not_grow_the_series(client):
    rng = random.Random(7)
    before = series(client)
    paths = ["/v1/models/{}:predict", "/v2/models/{}/infer", "/{}", "/v2/models/{}", "/static/{}", "/events/{}"]
    for _ in range(3000):
        word = "".join(rng.choices(string.ascii_letters, k=rng.randint(1, 12)))
        method = rng.choice(["GET", "POST", "DELETE", word.upper(), word])
        path = rng.choice(paths).format(word)
        client.open(path, method=method, json={"instances": [[1, 2, 3, 4]]})
    after = series(client)
    # routes x {7 methods + other} x the statuses a request can end in, with histogram buckets: a few
    # hundred at most, however many distinct methods and paths the clients sent (3,000 here).
    assert after - before < 600, (before, after)
    assert "other" in http_labels(client, "method")
    assert http_labels(client, "method") <= {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "other"}
    assert all(route.startswith("/") or route == "unmatched" for route in http_labels(client, "route"))
    assert len(http_labels(client, "route")) < 20


def access_entry(capsys, route: str) -> dict:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [entry] = [e for e in lines if e.get("route") == route and e.get("logger") == "modelfn.access"]
    return entry


@pytest.fixture
def traced(make_settings, published):
    client = create_app(make_settings(model_uri=f"{published}/lin", google_cloud_project="my-proj")).test_client()
    wait_ready(client)
    return client


@pytest.mark.parametrize(
    ("headers", "span", "sampled"),
    [
        ({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}, "00f067aa0ba902b7", True),
        ({"X-Cloud-Trace-Context": f"{TRACE.upper()}/1;o=1"}, "0000000000000001", True),
        ({"X-Cloud-Trace-Context": f"{TRACE}/18446744073709551615;o=0"}, "ffffffffffffffff", False),
        ({"X-Cloud-Trace-Context": TRACE}, None, None),
    ],
    ids=["traceparent", "cloud-trace", "cloud-trace-max-span", "cloud-trace-no-span"],
)
def test_cloud_logging_trace_fields_when_the_project_is_known(traced, capsys, headers, span, sampled):
    capsys.readouterr()
    assert traced.get("/v2", headers=headers).status_code == 200
    entry = access_entry(capsys, "/v2")
    assert entry["trace_id"] == TRACE  # kept for other log backends
    assert entry["logging.googleapis.com/trace"] == f"projects/my-proj/traces/{TRACE}"
    assert entry.get("logging.googleapis.com/spanId") == span
    assert entry.get("logging.googleapis.com/trace_sampled") == sampled


def test_no_project_no_cloud_fields_and_xray_ids_are_not_cloud_traces(client, traced, capsys):
    capsys.readouterr()
    client.get("/v2", headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})
    entry = access_entry(capsys, "/v2")
    assert entry["trace_id"] == TRACE and not [k for k in entry if k.startswith("logging.googleapis.com")]
    traced.get("/v2", headers={"X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"})
    entry = access_entry(capsys, "/v2")
    assert entry["trace_id"].startswith("1-") and "logging.googleapis.com/trace" not in entry


def test_the_project_comes_from_google_cloud_project(monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-proj-1")
    assert Settings().google_cloud_project == "env-proj-1"
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "bad project/../x")
    with pytest.raises(ValueError, match="GOOGLE_CLOUD_PROJECT"):
        Settings()
