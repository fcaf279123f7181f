"""Gunicorn configuration: ``gunicorn -c python:function.gunicorn_conf function.wsgi:app``."""

from __future__ import annotations

import os
from typing import Any

from function.settings import load_settings

_settings = load_settings()

# One worker serves the container, so its in-process registry is the container's metrics: no
# multiprocess files (their mmap'd values doubled the cost of each metric update on the hot path).
# A PROMETHEUS_MULTIPROC_DIR set by the operator is still honoured.
if _settings.prometheus_multiproc_dir is not None:
    _settings.prometheus_multiproc_dir.mkdir(parents=True, exist_ok=True)

from function import holder, memory, worker  # noqa: E402

# Before the worker forks and loads the model: freed weight-sized blocks go back to the system.
memory.tune_malloc(dict(os.environ))

# The master never loads the model or starts background threads (they would not survive the fork,
# and with --preload a model loaded here would be a second copy): workers start them in post_fork.
holder.defer_background_work()
worker.READ_TIMEOUT = _settings.request_read_timeout
worker.MAX_BODY, worker.DRAIN = _settings.max_body_bytes, _settings.body_drain_bytes
worker.EVENT_LOOP = _settings.event_loop.value

bind = f"0.0.0.0:{_settings.port}"
# One process holds the one model copy; HTTP concurrency comes from threads (the runtimes release the
# GIL and the batching engine runs one predict() at a time). See docs/serving.md.
workers = _settings.workers
worker_class = "function.worker.ModelfnWorker"
threads = _settings.threads
worker_connections = max(1000, 4 * _settings.threads)
timeout = _settings.timeout
graceful_timeout = _settings.graceful_timeout
keepalive = _settings.keepalive_seconds
accesslog = None  # the app logs one JSON line per request itself
errorlog = "-"
loglevel = _settings.log_level
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
forwarded_allow_ips = _settings.forwarded_allow_ips


def on_starting(server: Any) -> None:
    """Refuse to start with more than one worker, or with DEVICE=cuda and no usable GPU."""
    from function.device_check import require_device

    if server.cfg.workers != 1:
        server.log.error(
            "refusing to start: %d Gunicorn workers would load %d copies of the model; modelfn serves one"
            " model per container with one worker and THREADS threads (docs/serving.md)",
            server.cfg.workers,
            server.cfg.workers,
        )
        raise SystemExit(2)
    require_device(_settings)


def post_fork(server: Any, worker: Any) -> None:
    """In the worker: start what the master deferred (the eager load, alias polling) under --preload."""
    holder.start_deferred()


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the aggregated metrics (multiprocess mode only)."""
    if _settings.prometheus_multiproc_dir is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(_settings.prometheus_multiproc_dir))


def worker_exit(server: Any, worker: Any) -> None:
    """Stop background load retries so the worker exits promptly."""
    from function.holder import close_all

    close_all()
