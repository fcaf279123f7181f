"""A local HTTP server standing in for a cloud's job API: records each request, answers like the API."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Captured:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


# The Container Apps job's containers the stand-in reports (what terraform's azurerm_container_app_job makes).
JOB_CONTAINERS = [
    {
        "name": "modelfn",
        "image": "registry.example/modelfn:1",
        "command": ["python", "-m", "function.cli", "batch", "run"],
        "env": [{"name": "MODEL_URI", "value": "az://models/iris@prod"}],
        "resources": {"cpu": 2.0, "memory": "4Gi"},
    }
]


class StandIn(ThreadingHTTPServer):
    """Answers Cloud Run ``jobs:run``, ECS ``RunTask`` and Container Apps ``jobs/start`` requests."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[Captured] = []
        self.fail_next: list[int] = []  # HTTP statuses for the next requests (299: ECS placement failure)
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: StandIn

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        """Container Apps ``jobs.get``: the job's template, as ARM returns it."""
        with self.server.lock:
            self.server.requests.append(Captured("GET", self.path, dict(self.headers), None))
        if "/providers/Microsoft.App/jobs/" not in self.path:
            self._send(404, {"error": "unknown route"})
            return
        self._send(
            200,
            {
                "id": self.path.split("?")[0],
                "name": self.path.split("?")[0].rsplit("/", 1)[-1],
                "location": "westeurope",
                "properties": {"template": {"containers": JOB_CONTAINERS}},
            },
        )

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.loads(raw) if raw else None
        with self.server.lock:
            self.server.requests.append(Captured("POST", self.path, dict(self.headers), body))
            number = len(self.server.requests)
            status = self.server.fail_next.pop(0) if self.server.fail_next else 200
        if status == 299:  # ECS answers 200 with failures when it cannot place a task
            self._send(200, {"tasks": [], "failures": [{"arn": "x", "reason": "RESOURCE:ENI"}]})
        elif status != 200:
            self._send(status, {"error": {"code": status, "message": "unavailable", "status": "UNAVAILABLE"}})
        elif ":run" in self.path:
            job = re.match(r"^/v2/(.+):run", self.path)[1]  # type: ignore[index]
            kind = "type.googleapis.com/google.cloud.run.v2.Execution"
            execution = {"@type": kind, "name": f"{job}/executions/e{number}"}
            self._send(200, {"name": f"operations/op{number}", "metadata": execution})
        elif self.headers.get("X-Amz-Target", "").endswith(".RunTask"):
            arn = f"arn:aws:ecs:eu-west-1:123456789012:task/batch/{number:032x}"
            self._send(200, {"tasks": [{"taskArn": arn, "lastStatus": "PROVISIONING"}], "failures": []})
        elif self.path.split("?")[0].endswith("/start"):
            name = f"job-exec-{number}"
            self._send(200, {"id": self.path.split("?")[0].replace("/start", f"/executions/{name}"), "name": name})
        else:
            self._send(404, {"error": "unknown route"})

    def _send(self, status: int, doc: Any) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
