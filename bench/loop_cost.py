"""The event loop's CPU per request on the fast lane, in-process: V2 binary and JSON, at c=1 and 32 at once.

    python -m bench.loop_cost                                  # this checkout
    python -m bench.loop_cost --baseline-root /tmp/before      # and another one, interleaved, as ratios
    python -m bench.loop_cost --sweep-mb 100 --requests 128    # and each scenario with cold caches

On a shared 2-CPU machine ``wrk``'s req/s moves 5-10% between rounds (more between hours), so a change worth a
few percent of the loop's work cannot be seen through it. This drives the worker's own code (``function.http11``
connections, the fast lane, the batching engine) through in-memory transports: no sockets, no load generator, no
scheduling between processes, and it times the loop thread's CPU (``time.thread_time``) per request. The model is
a 2,048-wide Relu, so ``predict()`` costs a few µs and the figure is the stack's, with the bench's request shapes
(one row of 2,048 floats). A turn of 32 feeds one request to each of 32 connections before the loop runs, as a
c=32 cycle does, so the 32 share one batch. Every answer is checked (status 200, the Relu of the row).

Each checkout runs in a child process of its own (``bench/loop_child.py``, run by path, so the other checkout needs
no copy of it) with its own ``function`` package on ``PYTHONPATH``. Both stay up, and each scenario is timed in one,
then the other, in alternating order: the machine's speed drifts by 2x within minutes here, even in CPU time, and a
pair timed back to back sees the same machine. The CPU ratio is the median over the pairs.

With ``--sweep-mb N`` every scenario is timed a second time with N MB of memory read (untimed) before each turn,
as a 100 MB model's ``predict()`` reads its weights between one request and the next: the same code, run with
the caches that pass leaves behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CHILD = Path(__file__).resolve().parent / "loop_child.py"
ROOT = CHILD.parent.parent


class Child:
    """One checkout's child process, driven over its stdin and stdout."""

    def __init__(self, root: Path, timeout: float = 300.0) -> None:
        argv = [sys.executable, str(CHILD)]
        env = {**os.environ, "PYTHONPATH": str(root)}
        self.root, self.timeout = root, timeout
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115  # closed in close()
        self.proc = subprocess.Popen(
            argv, cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True
        )
        try:
            ready = self._answer()
        except BaseException:  # it died starting: its pipes and stderr file go with it
            self.close()
            raise
        if Path(ready["function"]) != root.resolve() / "function":  # an installed modelfn, not this checkout's
            self.close()
            raise RuntimeError(f"the child on {root} imported function from {ready['function']}")
        self.scenarios = ready["ready"]

    def time(self, scenario: str, requests: int, sweep_mb: int = 0) -> dict[str, float]:
        """One timing of ``scenario`` in this child (``sweep_mb``: memory read before every turn, untimed)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"scenario": scenario, "requests": requests, "sweep_mb": sweep_mb}) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the child answers within seconds, or dies (EOF)
        if not line:
            self.proc.wait(self.timeout)
            self.stderr.seek(0)
            tail = self.stderr.read().decode(errors="replace").strip()[-2000:]
            raise RuntimeError(f"loop_cost child on {self.root} exited with {self.proc.returncode}: {tail}")
        return dict(json.loads(line))

    def close(self) -> None:
        """EOF on its stdin ends it (one that does not exit within the timeout is killed)."""
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()
        try:
            self.proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def swept_name(scenario: str, sweep_mb: int) -> str:
    """A scenario's row: its name, and the memory read before each of its turns, if any."""
    return scenario if not sweep_mb else f"{scenario}, {sweep_mb} MB read before each turn"


def compare(checkouts: dict[str, Path], repeats: int, requests: int, sweeps: tuple[int, ...] = (0,)) -> dict[str, Any]:
    """Every checkout's child kept up; each scenario timed in turn in each child, ``repeats`` times, the order
    alternating, so that a drift of the machine's speed (2x within minutes on a shared host) hits both alike.
    Each scenario runs once per entry of ``sweeps``: MB of memory read before every turn (0: none)."""
    children: dict[str, Child] = {}
    try:
        for name, root in checkouts.items():  # one at a time: a child that fails to start stops the others
            children[name] = Child(root)
        names = list(children)
        samples: dict[str, dict[str, list[dict[str, float]]]] = {n: {} for n in names}
        for index in range(repeats):
            for scenario in children[names[0]].scenarios:
                for sweep in sweeps:
                    key = swept_name(scenario, sweep)
                    for name in names if index % 2 == 0 else names[::-1]:
                        samples[name].setdefault(key, []).append(children[name].time(scenario, requests, sweep))
    finally:
        for child_process in children.values():
            child_process.close()
    medians = {
        n: {s: {f: statistics.median(x[f] for x in xs) for f in ("cpu_us", "wall_us")} for s, xs in per.items()}
        for n, per in samples.items()
    }
    result: dict[str, Any] = {"samples": samples, "median": medians, "requests": requests, "repeats": repeats}
    result["sweeps_mb"] = list(sweeps)
    if len(names) == 2:
        first, second = (samples[n] for n in names)
        result["cpu_ratio"] = {  # pair by pair: each pair ran back to back
            s: statistics.median(a["cpu_us"] / b["cpu_us"] for a, b in zip(first[s], second[s], strict=True))
            for s in first
        }
    return result


def table(result: dict[str, Any]) -> str:
    """The medians (and ratios) as a Markdown table."""
    names = list(result["median"])
    head = "| scenario | " + " | ".join(f"{n} CPU µs/request" for n in names)
    head += " | CPU ratio |" if "cpu_ratio" in result else " |"
    lines = [head, "|---" * (len(names) + 1 + ("cpu_ratio" in result)) + "|"]
    for scenario in result["median"][names[0]]:
        cells = [f"{result['median'][n][scenario]['cpu_us']:.1f}" for n in names]
        if "cpu_ratio" in result:
            cells.append(f"{result['cpu_ratio'][scenario]:.3f}")
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure this checkout (and ``--baseline-root``); print the table, write ``--out`` as JSON."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline-root", type=Path, help="another modelfn checkout, measured in the same run")
    p.add_argument("--requests", type=int, default=1024, help="requests per timing of a scenario")
    p.add_argument("--repeats", type=int, default=25, help="timings of each scenario in each checkout")
    p.add_argument(
        "--sweep-mb",
        type=int,
        default=0,
        help="also time every scenario with this many MB read before each turn (100: the MLP's weight pass)",
    )
    p.add_argument("--out", type=Path, help="write the results here as JSON")
    args = p.parse_args(argv)
    if args.sweep_mb < 0:
        p.error("--sweep-mb: MB to read before each turn, 0 or more")
    checkouts = {"this": ROOT}
    if args.baseline_root is not None:
        if not (args.baseline_root / "function" / "http11.py").exists():
            p.error(f"--baseline-root {args.baseline_root}: not a modelfn checkout with the event-loop worker")
        checkouts["baseline"] = args.baseline_root.resolve()
    result = compare(checkouts, args.repeats, args.requests, (0, args.sweep_mb) if args.sweep_mb else (0,))
    print(table(result))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
