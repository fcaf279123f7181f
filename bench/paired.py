"""Raw onnxruntime measured interleaved with a server's load runs, slice by slice, so both see the same machine.

On a shared machine raw onnxruntime's best batch moved by 30% within an hour; a ratio of two figures taken
minutes apart is mostly that drift. Here one raw session (``python -m bench.raw MODEL --serve``, its own
process) and ``wrk`` take turns: raw slice, load slice, raw slice, ... and each pair gives a gap or a ratio.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from bench.procs import ROOT
from bench.raw import BEST_BATCHES

PAIRS = 5
# wrk's -d takes whole seconds only, so 1 s is the shortest load slice; 5 pairs x (c=1, c=32) x 2 slices
# is about 22 s per model and request kind (12 s without c=32). With 3 pairs one slow second of the machine
# moved the median (V2 JSON c=32 slices of one round: 907, 1,364, 1,014 req/s).
SLICE_SECONDS = 1.0
KINDS = ("v2-binary", "v2-json")  # the request kinds the issue-8 raw targets are about
CANDIDATE = "modelfn"  # the server under test (not modelfn-base, not the peers)
RATIO_MODELS = ("mlp",)  # the c=32 / raw best-batch targets are about the MLP; the demo's would mean nothing

Load = Callable[[int, float], dict[str, Any]]  # (connections, seconds) -> one wrk.run result


class Raw(Protocol):
    """What the pairing needs from a raw session (RawProcess, or a fake in tests)."""

    def batch1(self, seconds: float) -> dict[str, Any]: ...

    def best(self, seconds: float, batches: tuple[int, ...] = BEST_BATCHES) -> dict[str, Any]: ...


class RawProcess:
    """``python -m bench.raw MODEL --serve`` as a context manager: one session, commands over a pipe."""

    def __init__(self, model: Path, start_timeout: float = 120.0, margin: float = 60.0) -> None:
        self.model, self.start_timeout, self.margin = model, start_timeout, margin
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  # closed in stop(); read back for errors
        self._buffer = b""

    def __enter__(self) -> RawProcess:
        try:
            self.start()
        except BaseException:  # __exit__ is not called then: reap the child and close its stderr file here
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> dict[str, Any]:
        """Start the child and wait until its session is created and has run once."""
        argv = [sys.executable, "-m", "bench.raw", str(self.model), "--serve"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
        )
        return self._answer(self.start_timeout)

    def batch1(self, seconds: float) -> dict[str, Any]:
        """Batch-1 ``session.run`` p50 (ms) over a slice of about ``seconds``."""
        return self.send({"op": "batch1", "seconds": seconds}, seconds)

    def best(self, seconds: float, batches: tuple[int, ...] = BEST_BATCHES) -> dict[str, Any]:
        """Items/s per batch size (the slice split evenly) and the best of them."""
        return self.send({"op": "best", "seconds": seconds, "batches": list(batches)}, seconds)

    def send(self, command: dict[str, Any], seconds: float) -> dict[str, Any]:
        """One command, its answer; a child that died, hung or refused the command raises RuntimeError."""
        assert self.proc is not None and self.proc.stdin is not None, "start() first"
        try:
            self.proc.stdin.write(json.dumps(command).encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self._died() from None
        answer = self._answer(seconds * 3 + self.margin)
        if "error" in answer:
            raise RuntimeError(f"raw session refused {command}: {answer['error']}")
        return answer

    def stop(self) -> None:
        """EOF on its stdin ends it cleanly; one that does not exit within 10 s is killed."""
        if self.proc is not None:
            if self.proc.stdin is not None and not self.proc.stdin.closed:
                with contextlib.suppress(BrokenPipeError):  # it died already: _died() said why
                    self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        self._stderr.close()

    def _answer(self, timeout: float) -> dict[str, Any]:
        """The next line on the child's stdout as JSON (raw reads and select, so a hung child times out)."""
        assert self.proc is not None and self.proc.stdout is not None
        fd, deadline = self.proc.stdout.fileno(), time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.proc.kill()
                raise RuntimeError(f"raw session gave no answer within {timeout:.0f}s:\n{self._stderr_tail()}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise self._died()
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return dict(json.loads(line))

    def _died(self) -> RuntimeError:
        assert self.proc is not None
        try:
            code: int | str = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # closed its stdout but lives on: as good as dead here
            self.proc.kill()
            code = "killed after closing its stdout"
        return RuntimeError(f"raw session ({self.model.name}) exited with {code}:\n{self._stderr_tail()}")

    def _stderr_tail(self, chars: int = 1500) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()[-chars:]


def pair(raw: Raw, load: Load, pairs: int = PAIRS, seconds: float = SLICE_SECONDS, c32: bool = True) -> dict[str, Any]:
    """``pairs`` x (raw slice, load slice) at c=1, then (``c32``) at c=32; each pair's gap or ratio, and medians."""
    c1, c32_pairs = [], []
    for _ in range(pairs):
        raw_p50 = raw.batch1(seconds)["p50_ms"]
        server = figure(load(1, seconds), "p50_ms")
        c1.append({"raw_p50_ms": raw_p50, "server_p50_ms": server, "gap_ms": server - raw_p50})
    for _ in range(pairs if c32 else 0):
        best = raw.best(seconds)
        server = figure(load(32, seconds), "req_per_s")
        c32_pairs.append(
            {
                "raw_best_items_per_s": best["best_items_per_s"],
                "raw_best_batch": best["best_batch"],
                "server_req_per_s": server,
                "ratio": server / best["best_items_per_s"],
            }
        )
    # The less favourable middle value when ``pairs`` is even, as the report does over rounds.
    return {
        "pairs": pairs,
        "seconds": seconds,
        "c1": c1,
        "c32": c32_pairs,
        "c1_gap_ms": statistics.median_high(p["gap_ms"] for p in c1),
        "c32_ratio": statistics.median_low(p["ratio"] for p in c32_pairs) if c32_pairs else None,
    }


def figure(result: dict[str, Any], field: str) -> float:
    """One figure of a ``wrk.run`` result; a slice that finished no request is an error, not a zero."""
    if not result.get("requests") or field not in result:
        raise RuntimeError(f"load slice at c={result.get('connections')} finished no request: {result}")
    return float(result[field])


def wanted(server: str, kind: str, pairs: int) -> bool:
    """Only the candidate server's V2 kinds are paired: the targets judged against raw onnxruntime."""
    return pairs > 0 and server == CANDIDATE and kind in KINDS
