"""Load from a separate process: ``wrk`` (C, epoll) with a generated Lua script that POSTs one body."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA = """\
local f = assert(io.open({body!r}, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
{headers}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


@dataclass
class Request:
    """One benchmark request: where it goes and what it carries."""

    path: str
    body: bytes
    headers: dict[str, str]


def available() -> bool:
    """True when the wrk binary is installed (Debian: ``apt-get install -y wrk``)."""
    return shutil.which("wrk") is not None


def run(url: str, request: Request, workdir: Path, connections: int, seconds: float) -> dict[str, float]:
    """Drive ``url + request.path`` with ``connections`` keep-alive connections for ``seconds``."""
    workdir.mkdir(parents=True, exist_ok=True)
    body = workdir / "body.bin"
    body.write_bytes(request.body)
    headers = "\n".join(f"wrk.headers[{k!r}] = {v!r}" for k, v in request.headers.items())
    script = workdir / "post.lua"
    script.write_text(LUA.format(body=str(body), headers=headers))
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url + request.path,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {(done.stdout + done.stderr).strip()[-500:]}")
    raw = json.loads(line.removeprefix("BENCHJSON "))
    seconds_run = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    if raw["requests"] == 0:  # nothing finished in time: no latency to report, rather than wrk's zeros
        return {"connections": connections, "requests": 0, "errors": errors, "req_per_s": 0.0}
    return {
        "connections": connections,
        "requests": raw["requests"],
        "errors": errors,
        "req_per_s": (raw["requests"] - errors) / seconds_run,
        "p50_ms": raw["p50_us"] / 1e3,
        "p90_ms": raw["p90_us"] / 1e3,
        "p99_ms": raw["p99_us"] / 1e3,
        "max_ms": raw["max_us"] / 1e3,
        "mean_ms": raw["mean_us"] / 1e3,
    }
