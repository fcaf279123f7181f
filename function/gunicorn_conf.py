"""Gunicorn configuration: ``gunicorn -c python:function.gunicorn_conf function.wsgi:app``."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from function.cpus import available_cpus
from function.settings import load_settings

_settings = load_settings()

# Workers inherit this before they import prometheus_client, so every metric lands in shared files
# and /metrics from any worker reports the whole container.
_owned_metrics_dir: str | None = None
if _settings.prometheus_multiproc_dir is None:
    _owned_metrics_dir = tempfile.mkdtemp(prefix="modelfn-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _owned_metrics_dir
else:
    _settings.prometheus_multiproc_dir.mkdir(parents=True, exist_ok=True)

bind = f"0.0.0.0:{_settings.port}"
# One process per available CPU: inference is CPU-bound and each worker holds its own model copy.
workers = _settings.workers or available_cpus()
worker_class = "gthread"
threads = _settings.threads
timeout = _settings.timeout
graceful_timeout = _settings.graceful_timeout
keepalive = _settings.keepalive_seconds
accesslog = None  # the app logs one JSON line per request itself
errorlog = "-"
loglevel = _settings.log_level
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
forwarded_allow_ips = "*"  # behind the platform's load balancer


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the aggregated metrics."""
    # Imported here: the master must not load prometheus_client before the env var above is set.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server: Any, worker: Any) -> None:
    """Stop background load retries so the worker exits promptly."""
    from function.holder import close_all

    close_all()


def on_exit(server: Any) -> None:
    """Remove the metrics directory this config created."""
    if _owned_metrics_dir:
        shutil.rmtree(_owned_metrics_dir, ignore_errors=True)
