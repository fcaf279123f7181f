"""How many CPUs this container may really use (cgroup quota and affinity, not the host's count)."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota in cores from cgroup v2 ``cpu.max`` or v1 ``cfs_quota/cfs_period``; None if unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def available_cpus(root: Path = Path("/sys/fs/cgroup")) -> int:
    """Whole CPUs available: the smaller of the affinity mask and the cgroup quota (at least 1)."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit(root)
    if limit is None:
        return max(1, affinity)
    return max(1, min(affinity, math.ceil(limit)))


def runtime_threads(override: int | None = None, root: Path | None = None) -> int:
    """Threads for the runtime's intra-op pool: ``RUNTIME_THREADS`` if set, else the CPUs available."""
    # One pool of this size is all the container runs: one worker process, one predict() at a time.
    return override if override is not None else available_cpus(root or CGROUP_ROOT)
