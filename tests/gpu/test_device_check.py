"""DEVICE=cuda without a GPU: the image's entry point (Gunicorn with the project's config) refuses to start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.emulators import free_port
from tests.gpu.conftest import cuda_available

pytestmark = pytest.mark.skipif(cuda_available(), reason="checks the refusal on a machine without a GPU")
ROOT = Path(__file__).resolve().parents[2]


def _gunicorn(tmp_path: Path, device: str, port: int = 0) -> subprocess.Popen:
    """The image's CMD, run from a scratch directory as in the image (WORKDIR /tmp)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DEVICE": device,
        "PORT": str(port or free_port()),
        "WORKERS": "1",
        "CACHE_DIR": str(tmp_path / "cache"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    cmd = [sys.executable, "-m", "gunicorn", "-c", "python:function.gunicorn_conf", "function.wsgi:app"]
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_device_cuda_without_a_gpu_exits_non_zero_with_a_clear_message(tmp_path):
    proc = _gunicorn(tmp_path, "cuda")
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, output
    assert "modelfn: DEVICE=cuda but no NVIDIA driver is visible in this container" in output
    assert "--gpus all" in output and "DEVICE=auto" in output
    assert "Booting worker" not in output  # refused in the master, before any worker loads a model
    assert "Traceback" not in output


def test_device_auto_on_the_same_machine_serves(tmp_path):
    port = free_port()
    proc = _gunicorn(tmp_path, "auto", port)
    try:
        deadline = time.monotonic() + 60  # bounds a hang only
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not come up"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    assert r.status == 200
                    break
            except OSError:
                time.sleep(0.1)
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=60)
    assert "DEVICE=cuda" not in output
