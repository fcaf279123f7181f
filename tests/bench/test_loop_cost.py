"""The in-process loop-cost bench: real fast-lane answers checked, children per checkout, paired ratios."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench import loop_child, loop_cost

ROOT = Path(__file__).resolve().parents[2]


def _binary_reply(values: np.ndarray, status: str = "200 OK") -> bytes:
    head = json.dumps({"outputs": [{"name": "y", "shape": [1, values.size], "parameters": {}}]}).encode()
    lines = f"HTTP/1.1 {status}\r\nInference-Header-Content-Length: {len(head)}"
    return lines.encode() + b"\r\n\r\n" + head + values.astype("<f4").tobytes()


def test_an_answer_is_checked_for_its_status_and_its_values() -> None:
    x = loop_child.row()
    loop_child.check_reply("v2-binary", _binary_reply(np.maximum(x, 0).ravel()), x)
    with pytest.raises(RuntimeError, match="not a 200"):
        loop_child.check_reply("v2-binary", _binary_reply(np.maximum(x, 0).ravel(), "400 Bad Request"), x)
    with pytest.raises(RuntimeError, match="not the Relu"):
        loop_child.check_reply("v2-binary", _binary_reply(x.ravel()), x)  # the row itself, negatives and all
    body = json.dumps({"outputs": [{"name": "y", "data": np.maximum(x, 0).ravel().tolist()}]}).encode()
    loop_child.check_reply("v2-json", b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + body, x)


def test_two_children_of_one_checkout_time_every_scenario_through_the_fast_lane() -> None:
    result = loop_cost.compare({"a": ROOT, "b": ROOT}, repeats=2, requests=64)
    names = [loop_child.scenario_name(kind, connections) for kind, connections in loop_child.SCENARIOS]
    for checkout in ("a", "b"):
        assert list(result["samples"][checkout]) == names
        assert all(len(result["samples"][checkout][s]) == 2 for s in names)
        assert all(result["median"][checkout][s]["cpu_us"] > 0 for s in names)
    assert set(result["cpu_ratio"]) == set(names)
    assert all(math.isfinite(r) and r > 0 for r in result["cpu_ratio"].values())
    assert "| v2-json c=32 |" in loop_cost.table(result)


def test_a_child_that_fails_is_an_error_with_its_stderr(tmp_path: Path) -> None:
    (tmp_path / "function").mkdir()
    (tmp_path / "function" / "__init__.py").write_text("raise ImportError('a broken checkout')\n")
    with pytest.raises(RuntimeError, match=r"(?s)exited with 1.*a broken checkout"):
        loop_cost.Child(tmp_path)


def test_a_child_that_imports_another_checkouts_code_is_refused(tmp_path: Path) -> None:
    # No function package here: the child finds the installed one, which is not the checkout asked for.
    with pytest.raises(RuntimeError, match="imported function from"):
        loop_cost.Child(tmp_path)


def test_a_baseline_without_the_event_loop_worker_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        loop_cost.main(["--baseline-root", str(tmp_path)])
    assert stop.value.code == 2
    assert "not a modelfn checkout" in capsys.readouterr().err


def test_every_scenario_is_timed_again_with_memory_read_before_each_turn() -> None:
    result = loop_cost.compare({"a": ROOT}, repeats=2, requests=8, sweeps=(0, 4))
    names = [loop_child.scenario_name(kind, connections) for kind, connections in loop_child.SCENARIOS]
    rows = [row for name in names for row in (name, loop_cost.swept_name(name, 4))]
    assert list(result["samples"]["a"]) == rows and result["sweeps_mb"] == [0, 4]
    assert all(sample["cpu_us"] > 0 for row in rows for sample in result["samples"]["a"][row])
    assert "| v2-binary c=1, 4 MB read before each turn |" in loop_cost.table(result)


def test_a_swept_timing_checks_its_answer_and_keeps_its_buffer_for_the_next(tmp_path: Path) -> None:
    bench = loop_child.Bench(tmp_path)
    swept = bench.time("v2-binary c=1", 4, sweep_mb=2)
    assert bench.sweep.nbytes == 2 * 2**20 and swept["cpu_us"] > 0 and swept["wall_us"] > 0
    bench.time("v2-binary c=1", 4)  # a timing without a sweep leaves the buffer for the next one
    assert bench.sweep.nbytes == 2 * 2**20


def test_a_negative_sweep_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        loop_cost.main(["--sweep-mb", "-1"])
    assert stop.value.code == 2
    assert "--sweep-mb" in capsys.readouterr().err
