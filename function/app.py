"""The Flask application factory."""

from __future__ import annotations

import os
import time
from pathlib import Path

from flask import Flask
from prometheus_client import CollectorRegistry
from werkzeug.exceptions import ClientDisconnected

from function import errors, events, health, metrics, monitoring, openapi, request_log, request_path, v1, v2, worker
from function.context import Context
from function.holder import ModelHolder
from function.rollout import release_loader
from function.serving import run
from function.settings import LoadMode, Settings, load_settings
from function.shadow import ShadowRunner
from loader.uri import parse_model_uri


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app for one model; loading starts now (eager) or on the first request (lazy)."""
    settings = settings or load_settings()
    request_log.configure_logging(settings.log_level)
    app = Flask("modelfn", static_folder=None)  # no /static route serving files from the working directory
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    request_path.init_app(app, settings)  # orjson JSON provider, body limits

    uri = parse_model_uri(settings.model_uri)
    m = metrics.create_metrics(CollectorRegistry(auto_describe=True))
    started = process_start_time()
    holder = ModelHolder(release_loader(uri, settings, m), settings.load_retry_seconds, on_ready=m.ready_hook(started))
    app.extensions["modelfn"] = Context(settings, uri, holder, m, ShadowRunner(m.release, run))

    errors.init_app(app)
    for stalled in (TimeoutError, ClientDisconnected):  # the worker's bounded socket reads
        app.register_error_handler(stalled, worker.body_timeout)
    request_log.init_app(app, m)
    metrics.init_app(app, m, str(settings.prometheus_multiproc_dir) if settings.prometheus_multiproc_dir else None)
    monitoring.init_app(app, m, settings)
    health.init_app(app)
    v1.init_app(app)
    v2.init_app(app)
    events.init_app(app)
    openapi.init_app(app)

    if settings.load_mode is LoadMode.EAGER:
        holder.start()
    return app


def process_start_time() -> float:
    """When this process started (epoch seconds), from /proc where available."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()
