"""Benchmarks, each against a baseline measured in the same run; results are ratios.

    python -m bench.run [--repeat N]

1. Cold start: ``modelfn serve`` process start -> first 200 from /v1 predict on the demo model,
   with an empty cache and with a warm cache; baseline: a bare Flask app under the same Gunicorn.
2. Request overhead: /v1 and /v2 through the WSGI app vs a bare ``InferenceSession.run``.
3. Verified fetch: streaming sha256-verified cache fill vs a plain ``shutil.copyfile``.
4. A large V2 request with the binary tensor extension vs the same request as JSON tensors.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BARE_APP = "from flask import Flask\napp = Flask('bare')\napp.add_url_rule('/', 'i', lambda: 'ok')\n"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _time_to_first_200(argv: list[str], env: dict[str, str], url: str, body: bytes | None) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        while True:
            try:
                headers = {"Content-Type": "application/json"}
                req = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310  # loopback URL
                with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310  # loopback URL built here
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                pass
            if time.perf_counter() - start > 120:
                raise RuntimeError(f"{argv} never answered 200")
            time.sleep(0.005)
    finally:
        proc.terminate()
        proc.wait(30)


def cold_start(repeat: int) -> dict[str, float]:
    """Median seconds from process start to first 200."""
    body = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
    results: dict[str, list[float]] = {"bare_flask": [], "demo_cold_cache": [], "demo_warm_cache": []}
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare_app.py"
        bare.write_text(BARE_APP)
        for i in range(repeat):
            port = _free_port()
            env = {
                **os.environ,
                "PORT": str(port),
                "WORKERS": "1",
                "CACHE_DIR": f"{tmp}/cache{i}",
                "PYTHONPATH": f"{tmp}:{ROOT}",
            }
            gunicorn = [sys.executable, "-m", "gunicorn", "-c", "python:function.gunicorn_conf"]
            url = f"http://127.0.0.1:{port}"
            results["bare_flask"].append(_time_to_first_200([*gunicorn, "bare_app:app"], env, url + "/", None))
            serve = [sys.executable, "-m", "function.cli", "serve"]
            predict = f"{url}/v1/models/iris:predict"
            results["demo_cold_cache"].append(_time_to_first_200(serve, env, predict, body))
            results["demo_warm_cache"].append(_time_to_first_200(serve, env, predict, body))
    return {k: statistics.median(v) for k, v in results.items()}


def request_overhead(n: int) -> dict[str, float]:
    """Median microseconds per request through the app vs the bare runtime."""
    import onnxruntime as ort

    from function.app import create_app
    from function.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(cache_dir=Path(tmp), log_level="warning"))
        client = app.test_client()
        while client.get("/readyz").status_code != 200:
            time.sleep(0.01)
        model = ROOT / "function/demo/store/iris/1.0.0/model.onnx"
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        x = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
        v1 = {"instances": x.tolist()}
        v2 = {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": x.ravel().tolist()}]}
        timings = {
            "bare_session_run": _per_call(lambda: session.run(None, {"features": x}), n),
            "v2_infer": _per_call(lambda: client.post("/v2/models/iris/infer", json=v2), n),
            "v1_predict": _per_call(lambda: client.post("/v1/models/iris:predict", json=v1), n),
        }
    return {k: v * 1e6 for k, v in timings.items()}


def binary_vs_json(rows: int, n: int) -> dict[str, float]:
    """Median milliseconds per /v2 infer of a [rows, 4] FP32 batch: binary extension vs JSON tensors."""
    from function.app import create_app
    from function.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(cache_dir=Path(tmp), log_level="warning", max_body_bytes=256 * 1024 * 1024))
        client = app.test_client()
        while client.get("/readyz").status_code != 200:
            time.sleep(0.01)
        x = np.random.default_rng(0).normal(size=(rows, 4)).astype(np.float32)
        tensor = {"name": "features", "shape": [rows, 4], "datatype": "FP32"}
        as_json = json.dumps({"inputs": [{**tensor, "data": x.ravel().tolist()}]}).encode()
        head = json.dumps(
            {
                "inputs": [{**tensor, "parameters": {"binary_data_size": x.nbytes}}],
                "parameters": {"binary_data_output": True},
            }
        ).encode()
        headers = {"Inference-Header-Content-Length": str(len(head))}
        url = "/v2/models/iris/infer"
        timings = {
            "json": _per_call(lambda: client.post(url, data=as_json, content_type="application/json"), n),
            "binary": _per_call(lambda: client.post(url, data=head + x.tobytes(), headers=headers), n),
        }
    return {k: v * 1e3 for k, v in timings.items()}


def _per_call(fn: Callable[[], object], n: int) -> float:
    for _ in range(min(50, n)):
        fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def verified_fetch(size_mb: int) -> dict[str, float]:
    """Seconds to bring a file into the cache (sha256-verified) vs a plain copy."""
    from loader.cache import ArtifactCache, FetchStats
    from loader.publish import file_entry
    from loader.stores import open_store

    with tempfile.TemporaryDirectory() as tmp:
        src_dir = Path(tmp) / "store" / "m" / "1"
        src_dir.mkdir(parents=True)
        src = src_dir / "weights.bin"
        src.write_bytes(os.urandom(size_mb * 1024 * 1024))
        entry = file_entry(src, "weights.bin")
        store = open_store((Path(tmp) / "store").as_uri())
        t = time.perf_counter()
        shutil.copyfile(src, Path(tmp) / "plain-copy")
        plain = time.perf_counter() - t
        t = time.perf_counter()
        ArtifactCache(Path(tmp) / "cache").ensure_blob(store, "m/1/weights.bin", entry, FetchStats())
        verified = time.perf_counter() - t
    return {"plain_copy": plain, "verified_fetch": verified}


def main() -> None:
    """Run all benchmarks and print a Markdown table of results and ratios."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--fetch-mb", type=int, default=256)
    parser.add_argument("--batch-rows", type=int, default=65536)
    args = parser.parse_args()
    cs = cold_start(args.repeat)
    ro = request_overhead(args.requests)
    vf = verified_fetch(args.fetch_mb)
    bj = binary_vs_json(args.batch_rows, max(5, args.requests // 50))
    rows = [
        ("cold start, demo, empty cache (s)", cs["demo_cold_cache"], "bare Flask+Gunicorn", cs["bare_flask"]),
        ("cold start, demo, warm cache (s)", cs["demo_warm_cache"], "bare Flask+Gunicorn", cs["bare_flask"]),
        ("/v2 infer per request (us)", ro["v2_infer"], "bare session.run", ro["bare_session_run"]),
        ("/v1 predict per request (us)", ro["v1_predict"], "bare session.run", ro["bare_session_run"]),
        (f"verified fetch {args.fetch_mb} MiB (s)", vf["verified_fetch"], "plain copy", vf["plain_copy"]),
        (f"/v2 infer [{args.batch_rows},4] FP32, binary (ms)", bj["binary"], "same request as JSON", bj["json"]),
    ]
    print("| measurement | modelfn | baseline | baseline value | ratio |")
    print("|---|---:|---|---:|---:|")
    for name, ours, base_name, base in rows:
        print(f"| {name} | {ours:.4g} | {base_name} | {base:.4g} | {ours / base:.3g}x |")


if __name__ == "__main__":
    main()
