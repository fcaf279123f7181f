"""Probes: liveness while the process runs, readiness only when the model is READY."""

from __future__ import annotations

from flask import Flask, Response, jsonify

from function.context import context
from function.errors import error_response, public_reason


def readiness() -> Response:
    """200 when READY; 503 with state, phase and a public reason otherwise (full reasons are in the logs)."""
    holder = context().holder
    model = holder.model
    if model is not None:
        runtime = model.runtime
        body: dict[str, object] = {
            "state": "READY",
            "model": model.name,
            "version": model.version,
            "device": runtime.device,
            "provider": runtime.provider,
        }
        if model.split is not None:
            split = model.split
            body["candidate"] = {"version": split.candidate.version, "mode": split.mode, "share": split.share}
        if model.artifact.offline:
            # Ready, but on the last verified resolution: the store could not be asked about the ref.
            body |= {"source": "cache", "detail": "store unreachable at load time; serving the cached resolution"}
        else:
            body["source"] = "store"
        return jsonify(body)
    holder.start()  # lazy mode: the platform's first probe counts as the first request (idempotent)
    status = holder.status()
    reason = public_reason(status)
    response = error_response(503, reason, reason=reason, state=status.state.value, phase=status.phase.value)
    if status.retry_in is not None:
        response.headers["Retry-After"] = str(max(1, round(status.retry_in)))
    return response


def init_app(app: Flask) -> None:
    """Register /healthz, /readyz and the V2 health endpoints."""

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "alive"})

    app.add_url_rule("/readyz", "readyz", readiness)
    app.add_url_rule("/v2/health/live", "v2_live", healthz)
    app.add_url_rule("/v2/health/ready", "v2_ready", readiness)
