"""Canary -> finish -> rollback -> rollback through a real Gunicorn server under c=16 load: no request fails."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

import numpy as np

from function.cli import main
from loader import aliases
from loader.stores import open_store
from tests.function.test_process_model import Reply, load, stop, wait_ready
from tests.function.test_server import start_server
from tests.models import B, expected_logits, publish_linear_versions

X = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
BIAS = {"1.0.0": B, "1.1.0": B + 10}
CLIENTS = 16


def test_canary_finish_and_rollbacks_under_load_fail_no_request(tmp_path: Path, store_dir: Path) -> None:
    from click.testing import CliRunner

    uri = store_dir.as_uri()
    publish_linear_versions(uri, tmp_path, BIAS)
    store = open_store(uri, {})
    aliases.promote(store, "lin", "prod", "1.0.0", by="test")
    server = start_server(tmp_path, f"{uri}/lin@prod", MODEL_POLL_SECONDS="0.2")
    order, lock, until = itertools.count(), threading.Lock(), threading.Event()
    results: list[list[Reply]] = [[] for _ in range(CLIENTS)]
    threads = [threading.Thread(target=load, args=(server, order, lock, until, results[k])) for k in range(CLIENTS)]
    # Per move: (position in one global order when it started, once /readyz showed it, the versions allowed).
    marks: list[tuple[int, int, set[str]]] = []

    def move(args: list[str], ready: dict, allowed: set[str]) -> None:
        with lock:
            began = next(order)
        got = CliRunner().invoke(main, [*args, "--alias", "prod", "--store", uri])
        assert got.exit_code == 0, got.output
        deadline = time.monotonic() + 60  # bounds a hang only
        while {k: json.loads(server.get("/readyz")[1]).get(k) for k in ("version", "candidate")} != ready:
            assert time.monotonic() < deadline, (args, server.get("/readyz"))
            time.sleep(0.05)
        with lock:
            marks.append((began, next(order), allowed))
        time.sleep(0.5)  # keep serving the new target under load

    try:
        wait_ready(server)
        for t in threads:
            t.start()
        time.sleep(0.3)
        canary = {"version": "1.0.0", "candidate": {"version": "1.1.0", "mode": "canary", "share": 50.0}}
        move(["promote", "lin@1.1.0", "--canary", "50"], canary, {"1.0.0", "1.1.0"})
        move(["promote", "lin", "--finish"], {"version": "1.1.0", "candidate": None}, {"1.1.0"})
        move(["rollback", "lin"], canary, {"1.0.0", "1.1.0"})  # undoes the finish: the split is back
        move(["rollback", "lin"], {"version": "1.0.0", "candidate": None}, {"1.0.0"})  # undoes the canary
    finally:
        until.set()
        for t in threads:
            t.join(60)
        stop(server)
    replies = [r for rs in results for r in rs]
    assert replies and all(r.status == 200 for r in replies), [r.status for r in replies if r.status != 200][:5]
    for r in replies:  # each answer computed by the version it names
        np.testing.assert_allclose(r.logits, expected_logits(X) - B + BIAS[r.version], rtol=1e-5)
    ends = [m[0] for m in marks[1:]] + [next(order)]
    for (_, shown, allowed), end in zip(marks, ends, strict=True):
        # Between a move showing on /readyz and the next move starting, only its versions answer.
        window = [r.version for r in replies if r.started > shown and r.ended < end]
        assert window and set(window) <= allowed, (allowed, set(window))
        if len(allowed) == 2:
            assert set(window) == allowed  # a 50% canary really shares the traffic
