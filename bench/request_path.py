"""Per-request cost of the request path (decode, validate, encode) through the Flask test client.

``PYTHONPATH=<checkout> python -m bench.request_path`` prints the median microseconds per request for each case;
run it on two checkouts in the same session to compare (the model is the 4->3 linear test model, so the cost is
the web stack and the JSON work, not inference).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from function.app import create_app
from function.settings import Settings
from tests.models import linear_onnx, publish_model

V1 = "/v1/models/lin:predict"
V2 = "/v2/models/lin/infer"


def cases(rng: np.random.Generator) -> dict[str, tuple[str, bytes, dict[str, str], int]]:
    """name -> (path, body, headers, repetitions)."""
    one = rng.standard_normal((1, 4)).astype(np.float32)
    big = rng.standard_normal((65536, 4)).astype(np.float32)
    rows = rng.standard_normal((10000, 4)).astype(np.float32)
    json_ct = {"Content-Type": "application/json"}

    def v2(x: np.ndarray) -> bytes:
        tensor = {"name": "features", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
        return json.dumps({"inputs": [tensor]}).encode()

    header = json.dumps(
        {"inputs": [{"name": "features", "shape": [65536, 4], "datatype": "FP32",
                     "parameters": {"binary_data_size": big.nbytes}}],
         "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}
    ).encode()  # fmt: skip
    binary_headers = {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}
    return {
        "v1 1 row": (V1, json.dumps({"instances": one.tolist()}).encode(), json_ct, 2000),
        "v2 json 1 row": (V2, v2(one), json_ct, 2000),
        "v1 10k rows": (V1, json.dumps({"instances": rows.tolist()}).encode(), json_ct, 20),
        "v2 json 65536x4": (V2, v2(big), json_ct, 10),
        "v2 binary 65536x4": (V2, header + big.tobytes(), binary_headers, 100),
    }


def measure(call: Callable[[], int], repetitions: int) -> tuple[float, float]:
    """Median (wall, this thread's CPU) seconds of ``call`` after a warm-up, asserting every answer is a 200.

    CPU time is the steadier figure on a shared machine: it leaves out the time other processes held the cores.
    """
    for _ in range(3):
        assert call() == 200
    wall, cpu = [], []
    for _ in range(repetitions):
        started, started_cpu = time.perf_counter(), time.thread_time()
        status = call()
        cpu.append(time.thread_time() - started_cpu)
        wall.append(time.perf_counter() - started)
        assert status == 200
    return statistics.median(wall), statistics.median(cpu)


def _post(client: Any, path: str, body: bytes, headers: dict[str, str]) -> int:
    response = client.post(path, data=body, headers=headers)
    assert response.data  # read the whole body, as a real client does
    return int(response.status_code)


def main() -> None:
    """Publish the linear model to a temporary store, then time each case."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        store.mkdir()
        publish_model(store.as_uri(), linear_onnx(Path(tmp) / "m.onnx"), postprocess={"softmax": True, "top_k": 2})
        app = create_app(Settings(model_uri=f"{store.as_uri()}/lin", cache_dir=Path(tmp) / "cache"))
        client = app.test_client()
        while client.get("/readyz").status_code != 200:
            time.sleep(0.05)
        for name, (path, body, headers, reps) in cases(np.random.default_rng(0)).items():
            wall, cpu = measure(lambda p=path, b=body, h=headers: _post(client, p, b, h), reps)
            print(f"{name:20s} {wall * 1e6:10.0f} us wall {cpu * 1e6:10.0f} us CPU per request", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
