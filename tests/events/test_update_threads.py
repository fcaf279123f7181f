"""Model-change events: a burst starts at most one background check thread and costs at most two checks."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from function.app import create_app
from function.events.updates import ModelUpdater
from tests.conftest import wait_ready

EVENTS = 300


def test_a_burst_of_events_is_one_thread_and_two_checks(make_settings, published, monkeypatch):
    app = create_app(make_settings(model_uri=f"{published}/lin"))
    wait_ready(app.test_client())
    updater = ModelUpdater(app.extensions["modelfn"])
    release, started = threading.Event(), threading.Event()
    checks: list[int] = []

    def slow_check() -> str:  # the first check is still resolving the alias while the burst arrives
        checks.append(1)
        started.set()
        release.wait(30)
        return "current"

    monkeypatch.setattr(updater, "_check", slow_check)
    updater.trigger()
    assert started.wait(30)
    barrier = threading.Barrier(32)

    def burst(k: int) -> None:
        barrier.wait()
        for _ in range(EVENTS // 32 + 1):
            updater.trigger()

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(burst, range(32)))
    checkers = [t for t in threading.enumerate() if t.name == "modelfn-model-check"]
    assert len(checkers) == 1
    release.set()
    checkers[0].join(30)
    assert not checkers[0].is_alive()
    assert len(checks) == 2  # the one running, then one more for everything that came during it
    updater.trigger()  # a later event starts a fresh check
    for t in [t for t in threading.enumerate() if t.name == "modelfn-model-check"]:
        t.join(30)
    assert len(checks) == 3
