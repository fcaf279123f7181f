"""Processes the bench starts: free ports, process groups killed at the end, first-200 timing, PSS of a tree."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Probe:
    """One HTTP request whose 200 means "serving": the cold-start end point and the smoke check."""

    url: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, timeout: float = 5.0) -> tuple[int, bytes, dict[str, str]]:
        """Status, body and headers (connection errors raise OSError)."""
        req = urllib.request.Request(self.url, data=self.body, headers=self.headers)  # noqa: S310  # loopback
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310  # loopback URL built here
                return int(resp.status), resp.read(), dict(resp.headers.items())
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read(), dict(exc.headers.items())


class Server:
    """A server process in its own session, so ``stop()`` ends every child it spawned."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.name, self.argv, self.env, self.cwd, self.log = name, argv, env, cwd, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> None:
        """Exec the server; ``started`` is the moment just before exec."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_first_200(self, probe: Probe, timeout: float) -> float:
        """Seconds from exec to the first 200 answer to ``probe``."""
        assert self.proc is not None
        while time.perf_counter() - self.started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                status, _, _ = probe.send(timeout=max(1.0, timeout - (time.perf_counter() - self.started)))
                if status == 200:
                    return time.perf_counter() - self.started
            time.sleep(0.005)
        raise RuntimeError(f"{self.name} gave no 200 within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the server printed (its log is in the run's temporary directory)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def pss_mb(self) -> float:
        """PSS of the server and all its descendants, in MB (10^6 bytes)."""
        assert self.proc is not None
        return tree_pss_kb(self.proc.pid) * 1024 / 1e6

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after a grace period."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        # Children that outlived the leader (same group) must not keep the port or the CPU.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the comm field may contain spaces
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_pss_kb(root: int) -> int:
    """Sum of ``Pss`` in /proc/<pid>/smaps_rollup over ``root`` and its descendants."""
    tree, todo, total = _children(), [root], 0
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
    return total


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of ``root`` and its live descendants (from /proc/<pid>/stat)."""
    tree, todo, total = _children(), [root], 0.0
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total
