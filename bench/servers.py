"""What each server is: its production command, its environment, and the requests it understands."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.peers import HERE as PEERS_DIR
from bench.peers import venv_bin
from bench.procs import ROOT, Probe, Server, free_port
from bench.wrk import Request


@dataclass
class Model:
    """A bench model: its local ONNX file (peers, raw ORT) and its published MODEL_URI (modelfn)."""

    name: str
    onnx: Path
    model_uri: str
    input: str
    width: int
    base_uri: str | None = None  # published by the --baseline-root checkout's own CLI
    expected: np.ndarray | None = None  # onnxruntime's answer to row(), where no pre/post-processing applies

    def row(self) -> np.ndarray:
        """The one-row request every server gets (fixed seed, so every run sends the same numbers)."""
        return np.random.default_rng(1).standard_normal((1, self.width)).astype(np.float32)


def _json(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def v2_requests(model: Model, binary: bool) -> dict[str, Request]:
    """Open Inference Protocol V2 bodies: JSON tensors and (``binary``) the binary tensor extension."""
    x = model.row()
    tensor = {"name": model.input, "shape": list(x.shape), "datatype": "FP32"}
    path = f"/v2/models/{model.name}/infer"
    out = {"v2-json": Request(path, _json({"inputs": [{**tensor, "data": x.ravel().tolist()}]}), _CT_JSON)}
    if binary:
        head = _json(
            {
                "inputs": [{**tensor, "parameters": {"binary_data_size": x.nbytes}}],
                "parameters": {"binary_data_output": True},
            }
        )
        headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}
        out["v2-binary"] = Request(path, head + x.astype("<f4").tobytes(), headers)
    return out


_CT_JSON = {"Content-Type": "application/json"}


@dataclass
class Spec:
    """A server ready to start for one model, with the requests to load it with."""

    name: str
    server: Server
    requests: dict[str, Request]
    port: int
    notes: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Base URL on loopback."""
        return f"http://127.0.0.1:{self.port}"

    def probe(self) -> Probe:
        """The first request kind, as the cold-start end point."""
        first = next(iter(self.requests.values()))
        return Probe(self.url + first.path, first.body, first.headers)


def _clean_env() -> dict[str, str]:
    """The bench's environment without anything that points Python at this checkout or another venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def image_cmd(dockerfile: Path = ROOT / "Dockerfile") -> list[str]:
    """The image's CMD (exec form, the last top-level one), run with this venv's interpreter and scripts."""
    argv = ["gunicorn", "-c", "python:function.gunicorn_conf", "function.wsgi:app"]
    with contextlib.suppress(OSError, ValueError):
        cmds = [line[4:] for line in dockerfile.read_text().splitlines() if line.startswith("CMD [")]
        if cmds:
            argv = json.loads(cmds[-1])
    if argv[0] in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    if argv[0] == "gunicorn":
        return [sys.executable, "-m", "gunicorn", *argv[1:]]
    return [str(Path(sys.executable).parent / argv[0]), *argv[1:]]


def modelfn(
    name: str, model: Model, work: Path, store_env: dict[str, str], extra_env: dict[str, str], root: Path = ROOT
) -> Spec:
    """modelfn from the checkout ``root`` as its image runs it (its Dockerfile CMD), serving what its CLI published."""
    port = free_port()
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)  # every start is a cold start with an empty cache
    env = {**_clean_env(), **store_env, "PYTHONPATH": str(root), "PORT": str(port), "CACHE_DIR": str(cache)}
    env |= {"MODEL_URI": model.base_uri if root != ROOT and model.base_uri else model.model_uri, **extra_env}
    argv = image_cmd(root / "Dockerfile")
    requests = v2_requests(model, binary=True)
    requests["v1-json"] = Request(
        f"/v1/models/{model.name}:predict", _json({"instances": model.row().tolist()}), _CT_JSON
    )
    notes = [f"{k}={v}" for k, v in extra_env.items()]
    return Spec(name, Server(name, argv, env, root, work / "server.log"), requests, port, notes)


def bentoml(name: str, model: Model, work: Path, log: Path) -> Spec:
    """BentoML 1.4 ``bentoml serve`` (production mode) of the adaptive-batching service in peers/."""
    bin_dir = venv_bin("bentoml", log)
    port = free_port()
    svc = work / "svc"
    svc.mkdir(parents=True, exist_ok=True)
    shutil.copy(PEERS_DIR / "bento_service.py", svc / "bento_service.py")
    env = {**_clean_env(), "BENCH_MODEL_PATH": str(model.onnx), "BENTOML_HOME": str(work / "home")}
    env |= {"BENTOML_DO_NOT_TRACK": "True", "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    argv = [str(bin_dir / "bentoml"), "serve", "bento_service:OnnxModel", "--host", "127.0.0.1", "--port", str(port)]
    body = _json({"x": model.row().tolist()})
    requests = {"native-json": Request("/predict", body, _CT_JSON)}
    notes = ["batchable=True, max_batch_size=128, model from local disk"]
    return Spec(name, Server(name, argv, env, svc, work / "server.log"), requests, port, notes)


def mlserver(name: str, model: Model, work: Path, log: Path) -> Spec:
    """MLServer 1.7 ``mlserver start`` with the custom onnxruntime runtime in peers/ (its defaults otherwise)."""
    bin_dir = venv_bin("mlserver", log)
    port = free_port()
    root = work / "models"
    (root / model.name).mkdir(parents=True, exist_ok=True)
    shutil.copy(PEERS_DIR / "ort_runtime.py", root / model.name / "ort_runtime.py")
    settings = {"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "host": "127.0.0.1"}
    (root / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": model.name,
        "implementation": "ort_runtime.OrtRuntime",
        "parameters": {"uri": str(model.onnx)},
    }
    (root / model.name / "model-settings.json").write_text(json.dumps(model_settings))
    env = {**_clean_env(), "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    argv = [str(bin_dir / "mlserver"), "start", str(root)]
    requests = {"v2-json": v2_requests(model, binary=False)["v2-json"]}
    notes = ["default parallel_workers, model from local disk"]
    return Spec(name, Server(name, argv, env, root, work / "server.log"), requests, port, notes)
