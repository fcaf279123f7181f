"""GPU benchmark: modelfn on CUDA vs a raw torch loop on the same GPU, in the same run; results are ratios.

    python bench/gpu.py [--model resnet50|mlp1g] [--requests 2000] [--out bench-gpu.json]

1. Raw torch loop (the baseline): batch-1 p50 latency and the best throughput over batch sizes.
2. modelfn (real Gunicorn, DEVICE=cuda, one worker, binary V2 requests from 64 client threads in
   8 processes): c=1 p50 and c=64 throughput; target >= 90% of the raw loop's best-batch throughput.
3. Warm-up: first-request latency with the default warm-up and with WARMUP_BATCHES=0, each over
   that server's steady p50 (target: within 2x with warm-up).
4. Cold start phases of the published model from a local file:// store (fetch, load to GPU, warm-up),
   from the server's "model ready" log line.

Needs CUDA torch plus modelfn's own dependencies (no onnxruntime-gpu); run from the repository root.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
HEADER = "Inference-Header-Content-Length"


def resnet50() -> tuple[Any, tuple[int, ...]]:
    """A ResNet-50-shaped network (bottleneck blocks 3-4-6-3, ~25.6M parameters) with random weights."""
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, width: int, stride: int) -> None:
            super().__init__()
            cout = width * 4
            self.body = nn.Sequential(
                nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout),
            )  # fmt: skip
            self.skip = (
                nn.Identity()
                if stride == 1 and cin == cout
                else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.body(x) + self.skip(x))

    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
            cin = width * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000)]
    return nn.Sequential(*layers).eval(), (3, 224, 224)


def mlp1g() -> tuple[Any, tuple[int, ...]]:
    """An MLP of ~1.07 GB of fp32 weights (8 layers of 4096x8192)."""
    from torch import nn

    dims = [4096, 8192] * 4 + [4096]
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(dims):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).eval(), (4096,)


def raw_loop(module: Any, shape: tuple[int, ...], seconds: float) -> dict[str, Any]:
    """The baseline: the same module on the GPU, host numpy in, host numpy out, per batch size."""
    import torch

    module = module.to("cuda")
    result: dict[str, Any] = {"throughput": {}}
    with torch.inference_mode():
        for bs in (1, 2, 4, 8, 16, 32, 64, 128, 256):
            x = np.random.default_rng(0).standard_normal((bs, *shape)).astype(np.float32)
            try:
                for _ in range(3):
                    module(torch.from_numpy(x).to("cuda")).cpu()
                times = []
                deadline = time.perf_counter() + seconds
                while time.perf_counter() < deadline:
                    t = time.perf_counter()
                    module(torch.from_numpy(x).to("cuda")).cpu().numpy()
                    times.append(time.perf_counter() - t)
            except torch.OutOfMemoryError:
                break
            result["throughput"][bs] = bs * len(times) / sum(times)
            if bs == 1:
                result["p50_batch1_s"] = statistics.median(times)
    best = max(result["throughput"], key=result["throughput"].get)
    result["best_batch"], result["best_throughput"] = best, result["throughput"][best]
    return result


def _request(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    tensor = {"name": "x", "datatype": "FP32", "shape": list(x.shape), "parameters": {"binary_data_size": x.nbytes}}
    head = json.dumps({"inputs": [tensor], "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()
    return head + x.tobytes(), {HEADER: str(len(head)), "Content-Type": "application/octet-stream"}


def _client(port: int, shape: tuple[int, ...], n: int, threads: int) -> list[float]:
    """``threads`` keep-alive connections sending ``n`` single-instance binary V2 requests in all."""
    body, headers = _request(np.random.default_rng(os.getpid()).standard_normal((1, *shape)).astype(np.float32))

    def worker(count: int) -> list[float]:
        conn, times = http.client.HTTPConnection("127.0.0.1", port, timeout=120), []
        for _ in range(count):
            t = time.perf_counter()
            conn.request("POST", "/v2/models/bench/infer", body, headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
            times.append(time.perf_counter() - t)
        return times

    with ThreadPoolExecutor(threads) as pool:
        return [t for ts in pool.map(worker, [n // threads] * threads) for t in ts]


def serve(store: Path, tmp: Path, **env: str) -> tuple[subprocess.Popen, int, Path]:
    """modelfn's Gunicorn on CUDA with one worker; returns once /readyz is 200."""
    from tests.emulators import free_port

    port, log = free_port(), tmp / f"server-{time.time_ns()}.log"
    full = {**os.environ, "PYTHONPATH": str(ROOT), "MODEL_URI": f"{store.as_uri()}/bench", "PORT": str(port),
            "DEVICE": "cuda", "WORKERS": "1", "THREADS": "64", "CACHE_DIR": str(tmp / "cache"), **env}  # fmt: skip
    cmd = [sys.executable, "-m", "gunicorn", "-c", "python:function.gunicorn_conf", "function.wsgi:app"]
    proc = subprocess.Popen(cmd, cwd=tmp, env=full, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc, port, log
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"server never became ready:\n{log.read_text()[-3000:]}")


def phases(log: Path) -> dict[str, float]:
    """fetch/load/warm-up seconds from the server's "model ready" JSON log line."""
    for line in log.read_text().splitlines():
        if '"model ready"' in line:
            doc = json.loads(line)
            return {k: doc[k] for k in ("fetch_seconds", "load_seconds", "warmup_seconds", "warmup_batches")}
    return {}


def first_vs_steady(store: Path, tmp: Path, shape: tuple[int, ...], **env: str) -> dict[str, float]:
    """First request's latency over the steady p50 of the same fresh server."""
    proc, port, log = serve(store, tmp, **env)
    try:
        first = _client(port, shape, 1, 1)[0]
        steady = statistics.median(_client(port, shape, 200, 1))
        return {"first_s": first, "steady_p50_s": steady, "ratio": first / steady, **phases(log)}
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["resnet50", "mlp1g"], default="resnet50")
    parser.add_argument("--requests", type=int, default=2000, help="requests of the c=64 run")
    parser.add_argument("--seconds", type=float, default=3.0, help="raw loop time per batch size")
    parser.add_argument("--out", type=Path, default=Path("bench-gpu.json"))
    args = parser.parse_args()

    import torch

    from tests.models import publish_model

    assert torch.cuda.is_available(), "this benchmark needs a CUDA device"
    module, shape = resnet50() if args.model == "resnet50" else mlp1g()
    tmp = Path(tempfile.mkdtemp(prefix="modelfn-gpu-bench-"))
    (tmp / "store").mkdir()
    torch.jit.script(module).save(str(tmp / "m.pt"))
    from loader.manifest import TensorSpec

    io = {"inputs": [TensorSpec(name="x", datatype="FP32", shape=[-1, *shape])],
          "outputs": [TensorSpec(name="y", datatype="FP32", shape=[-1, -1])]}  # fmt: skip
    publish_model((tmp / "store").as_uri(), tmp / "m.pt", name="bench", **io)
    raw = raw_loop(module, shape, args.seconds)
    torch.cuda.empty_cache()

    proc, port, log = serve(tmp / "store", tmp)
    try:
        c1 = _client(port, shape, 300, 1)
        started = time.perf_counter()
        with ProcessPoolExecutor(8) as pool:
            runs = list(pool.map(_client, [port] * 8, [shape] * 8, [args.requests // 8] * 8, [8] * 8))
        c64 = sum(len(r) for r in runs) / (time.perf_counter() - started)
        cold = phases(log)
    finally:
        proc.terminate()
        proc.wait(60)
    result = {
        "gpu": torch.cuda.get_device_name(0),
        "model": args.model,
        "raw": raw,
        "served": {"c1_p50_s": statistics.median(c1), "c64_throughput": c64},
        "served_c64_over_raw_best": c64 / raw["best_throughput"],
        "served_c1_p50_over_raw_batch1": statistics.median(c1) / raw["p50_batch1_s"],
        "cold_start_phases_s": cold,
        "first_request_warm": first_vs_steady(tmp / "store", tmp, shape),
        "first_request_no_warmup": first_vs_steady(tmp / "store", tmp, shape, WARMUP_BATCHES="0"),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
