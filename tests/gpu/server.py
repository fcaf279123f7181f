"""A real Gunicorn server for the GPU suite, and a V2 binary-extension client with no dependencies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.emulators import free_port

ROOT = Path(__file__).resolve().parents[2]
HEADER = "Inference-Header-Content-Length"


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log: Path

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def post_json(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        req = urllib.request.Request(self.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def infer_binary(self, model: str, name: str, x: np.ndarray, output: str) -> np.ndarray:
        """One V2 request with the input and the output as raw little-endian bytes."""
        doc = {
            "inputs": [
                {"name": name, "datatype": "FP32", "shape": list(x.shape), "parameters": {"binary_data_size": x.nbytes}}
            ],
            "outputs": [{"name": output, "parameters": {"binary_data": True}}],
        }
        head = json.dumps(doc).encode()
        req = urllib.request.Request(
            f"{self.url}/v2/models/{model}/infer", head + x.astype("<f4").tobytes(), {HEADER: str(len(head))}
        )
        with urllib.request.urlopen(req, timeout=120) as r:
            raw, length = r.read(), int(r.headers[HEADER])
        meta = json.loads(raw[:length])["outputs"][0]
        return np.frombuffer(raw[length:], dtype="<f4").reshape(meta["shape"])

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)
        return self.log.read_text()


def start(tmp_path: Path, model_uri: str, **env: str) -> Server:
    """The image's CMD with the working tree on PYTHONPATH; returns once /readyz answers 200."""
    port = free_port()
    log = tmp_path / "server.log"
    full_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MODEL_URI": model_uri,
        "PORT": str(port),
        "CACHE_DIR": str(tmp_path / "cache"),
        "WORKERS": "1",
        **env,
    }
    cmd = [sys.executable, "-m", "gunicorn", "-c", "python:function.gunicorn_conf", "function.wsgi:app"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=full_env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 180  # bounds a hang only (CUDA context + warm-up)
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if server.get("/readyz")[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"server not ready:\n{server.stop()[-4000:]}")
