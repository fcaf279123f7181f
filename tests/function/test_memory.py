"""glibc's malloc thresholds: weight-sized blocks freed during a model load go back to the system."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from function import memory

ROOT = Path(__file__).resolve().parents[2]
# A 16 MB block freed raises glibc's dynamic mmap threshold to 16 MB; the 8 MB blocks allocated after it then
# come from the heap, which keeps them once freed (as a model load's initializers and their prepacked copies).
PROBE = """
import sys, numpy as np
def rss_mb():
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')) // 1024
if sys.argv[1] == 'tuned':
    from function import memory
    assert memory.tune_malloc({})
elif sys.argv[1] == 'gunicorn':
    import function.gunicorn_conf  # what the image's command loads before the worker forks
a = np.ones(2 * 1024 * 1024); del a
base = rss_mb()
blocks = [np.ones(1024 * 1024) for _ in range(3)]
del blocks
print(rss_mb() - base)
"""


def _retained_mb(mode: str, env: dict[str, str] | None = None) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_freed_weight_sized_blocks_are_returned_only_with_the_tuning():
    assert _retained_mb("plain") >= 16  # glibc's dynamic threshold keeps them: the probe shows the problem
    assert _retained_mb("tuned") <= 2
    assert _retained_mb("gunicorn") <= 2  # the Gunicorn configuration applies it before the fork


def test_an_operators_glibc_setting_is_left_to_glibc():
    assert memory.tune_malloc({"MALLOC_TRIM_THRESHOLD_": "131072"}) is False
    assert memory.tune_malloc({"MALLOC_MMAP_THRESHOLD_": "1048576"}) is False
    # Set by the operator (here: keep everything below 64 MB in a heap that never shrinks), glibc applies it at
    # start-up and the Gunicorn configuration changes nothing.
    keep = {"MALLOC_MMAP_THRESHOLD_": str(64 * 1024 * 1024), "MALLOC_TRIM_THRESHOLD_": str(1024**3)}
    assert _retained_mb("gunicorn", keep) >= 6  # the tuned process keeps <= 2
