"""Worker sizing from cgroup quotas, and trace ids taken from the clouds' headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from function.cpus import available_cpus, cgroup_cpu_limit
from function.request_log import trace_id


def _cgroup(tmp_path: Path, v2: str | None = None, v1: tuple[int, int] | None = None) -> Path:
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2 + "\n")
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(f"{v1[0]}\n")
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(f"{v1[1]}\n")
    return tmp_path


@pytest.mark.parametrize(
    ("v2", "v1", "limit"),
    [
        ("200000 100000", None, 2.0),
        ("150000 100000", None, 1.5),
        ("max 100000", None, None),
        (None, (50000, 100000), 0.5),
        (None, (-1, 100000), None),
        (None, None, None),
    ],
)
def test_cgroup_limit(tmp_path, v2, v1, limit):
    assert cgroup_cpu_limit(_cgroup(tmp_path, v2, v1)) == limit


def test_workers_follow_the_quota_not_the_host(tmp_path, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda _: set(range(64)))
    assert available_cpus(_cgroup(tmp_path, "150000 100000")) == 2  # 1.5 CPUs -> 2 workers
    quarter = tmp_path / "q"
    quarter.mkdir()
    assert available_cpus(_cgroup(quarter, "25000 100000")) == 1
    unlimited = tmp_path / "u"
    unlimited.mkdir()
    assert available_cpus(_cgroup(unlimited, "max 100000")) == 64


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        ({"X-Cloud-Trace-Context": "105445AA7843BC8BF206B12000100000/1;o=1"}, "105445aa7843bc8bf206b12000100000"),
        (
            {"X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"},
            "1-5759e988-bd862e3fe1be46a994272793",
        ),
        ({"traceparent": 'garbage\n{"severity":"CRITICAL"}'}, None),
        ({}, None),
    ],
)
def test_trace_ids(headers, expected):
    assert trace_id(headers) == expected
