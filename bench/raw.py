"""Raw onnxruntime in a process of its own: ``session.run`` latency, items/s per batch size, parts of a cold start.

python -m bench.raw MODEL.onnx --seconds 1     # JSON on stdout
python -m bench.raw MODEL.onnx --serve         # one session, one JSON command per stdin line (bench/paired.py)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
# The MLP's best batch has been 64 or 128 in the recorded runs (results/), 32 close behind; 128 tops BATCHES.
BEST_BATCHES = (32, 64, 128)


def _pss_kb() -> int:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def _calls(run: Any, seconds: float) -> list[float]:
    """Per-call seconds of ``run()`` repeated for about ``seconds`` (after a short warm-up)."""
    for _ in range(3):
        run()
    samples: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(samples) < 5:
        t = time.perf_counter()
        run()
        samples.append(time.perf_counter() - t)
    return samples


def _items_per_s(batch: int, samples: list[float]) -> float:
    return batch * len(samples) / sum(samples)


def default_session(model: Path) -> Any:
    """The session a user would write: CPU provider, no thread settings, no huge pages."""
    import onnxruntime as ort

    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])


def measure(model: Path, seconds: float, batches: tuple[int, ...] = BATCHES) -> dict[str, Any]:
    """Everything about one model, with the session's default options (as a user would write it)."""
    import numpy as np
    import onnxruntime  # noqa: F401  # imported before the PSS baseline: only the model's copy is counted

    pss_before = _pss_kb()
    t = time.perf_counter()
    session = default_session(model)
    created = time.perf_counter() - t
    spec = session.get_inputs()[0]
    width = int(spec.shape[1])
    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, width)).astype(np.float32)
    t = time.perf_counter()
    session.run(None, {spec.name: one})
    first_run = time.perf_counter() - t
    model_pss_mb = (_pss_kb() - pss_before) * 1024 / 1e6
    per_batch = {}
    for batch in batches:
        x = rng.standard_normal((batch, width)).astype(np.float32)
        samples = _calls(lambda x=x: session.run(None, {spec.name: x}), seconds)
        per_batch[str(batch)] = {
            "items_per_s": _items_per_s(batch, samples),
            "p50_ms": statistics.median(samples) * 1e3,
            "p99_ms": float(np.percentile(samples, 99)) * 1e3,
        }
    best = max(per_batch, key=lambda b: per_batch[b]["items_per_s"])
    huge = _on_huge_pages(lambda: session.run(None, {spec.name: one}), seconds)
    return {
        "session_create_s": created,
        "first_run_s": first_run,
        "model_pss_mb": model_pss_mb,  # one loaded copy: session + first run, over the imported runtime
        "batch1_p50_ms": per_batch["1"]["p50_ms"],
        "batch1_p99_ms": per_batch["1"]["p99_ms"],
        "batch1_items_per_s": per_batch["1"]["items_per_s"],
        **huge,
        "best_batch": int(best),
        "best_items_per_s": per_batch[best]["items_per_s"],
        "per_batch": per_batch,
    }


def _on_huge_pages(run: Any, seconds: float) -> dict[str, Any]:
    """Batch 1 again once the weights sit on huge pages, as modelfn puts them: the serving overhead alone."""
    from function.memory import back_with_huge_pages

    moved = back_with_huge_pages()
    if not moved.collapsed:
        return {}
    samples = _calls(run, seconds)
    return {"huge_pages_mb": moved.collapsed / 1e6, "batch1_huge_p50_ms": statistics.median(samples) * 1e3}


def session_parts(model: Path) -> dict[str, float]:
    """Session create and first one-row run, each timed alone (onnxruntime imported before)."""
    import numpy as np
    import onnxruntime  # noqa: F401  # the import is not part of session create

    t = time.perf_counter()
    session = default_session(model)
    created = time.perf_counter() - t
    spec = session.get_inputs()[0]
    x = np.zeros((1, int(spec.shape[1])), np.float32)
    t = time.perf_counter()
    session.run(None, {spec.name: x})
    return {"session_create_s": created, "first_run_s": time.perf_counter() - t}


def serve(model: Path, commands: IO[str], answers: IO[str]) -> None:
    """One session; each JSON command line of ``commands`` gets one JSON line on ``answers``, until EOF."""
    import numpy as np

    session = default_session(model)
    spec = session.get_inputs()[0]
    width, rng = int(spec.shape[1]), np.random.default_rng(0)
    inputs: dict[int, Any] = {}

    def run(batch: int) -> Callable[[], Any]:
        if batch not in inputs:  # the same numbers for a batch size in every slice
            inputs[batch] = rng.standard_normal((batch, width)).astype(np.float32)
        feed = {spec.name: inputs[batch]}
        return lambda: session.run(None, feed)

    run(1)()  # the first run allocates: done before "ready", so no slice pays for it
    _say(answers, {"ready": True, "pid": os.getpid()})
    for line in commands:
        if not line.strip():
            continue
        try:
            answer = _answer(json.loads(line), run)
        except Exception as exc:  # a bad command is answered, the session stays up for the next one
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        _say(answers, answer)


def _answer(command: dict[str, Any], run: Callable[[int], Callable[[], Any]]) -> dict[str, Any]:
    op, seconds = command.get("op"), float(command.get("seconds", 1.0))
    if op == "batch1":
        samples = _calls(run(1), seconds)
        return {"op": op, "p50_ms": statistics.median(samples) * 1e3, "calls": len(samples)}
    if op == "best":
        batches = [int(b) for b in command.get("batches", BEST_BATCHES)]
        per_batch = {}
        for batch in batches:  # the slice split evenly over the batch sizes
            samples = _calls(run(batch), seconds / len(batches))
            per_batch[str(batch)] = _items_per_s(batch, samples)
        best = max(per_batch, key=per_batch.__getitem__)
        return {"op": op, "items_per_s": per_batch, "best_batch": int(best), "best_items_per_s": per_batch[best]}
    raise ValueError(f"unknown op {op!r} (batch1, best)")


def _say(answers: IO[str], answer: dict[str, Any]) -> None:
    answers.write(json.dumps(answer) + "\n")
    answers.flush()


def main() -> None:
    """Print the measurements of one model as JSON (or, with --serve, answer commands on stdin)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("--seconds", type=float, default=1.0, help="per batch size")
    parser.add_argument("--parts", action="store_true", help="only time session create and first run")
    parser.add_argument("--serve", action="store_true", help='answer {"op": "batch1"|"best", ...} lines on stdin')
    args = parser.parse_args()
    if args.serve:
        # Answers go to a copy of stdout; fd 1 itself points at stderr, so whatever a library prints there
        # cannot break the one-line-per-answer protocol.
        answers = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        serve(args.model, sys.stdin, answers)
        return
    print(json.dumps(session_parts(args.model) if args.parts else measure(args.model, args.seconds)))


if __name__ == "__main__":
    main()
