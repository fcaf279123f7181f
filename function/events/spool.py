"""Local temp files for batch outputs, in a per-process folder that a later process sweeps if this one dies.

A job streams its output into a temp file before one atomic upload. ``finally`` removes it, but not
when the worker is SIGKILLed (out of memory, the platform's timeout): on Cloud Run ``/tmp`` is memory,
so orphans would eat the instance's RAM for as long as it lives. Each process writes under
``$TMPDIR/modelfn-batch/<pid>-<start ticks>/``; every worker start and every job removes the folders
of processes that no longer exist (the start time tells a reused pid from the original owner).
``$TMPDIR`` must belong to one container (one pid namespace), as ``/tmp`` does on every platform.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

log = logging.getLogger("modelfn.events")
SPOOL_DIR = "modelfn-batch"


def spool_root() -> Path:
    """``$TMPDIR/modelfn-batch``."""
    return Path(tempfile.gettempdir()) / SPOOL_DIR


def _start_ticks(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks); None when the process is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None if Path("/proc/self/stat").exists() else _alive_without_proc(pid)
    return None if fields[0] in ("Z", "X") else fields[19]


def _alive_without_proc(pid: int) -> str | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # someone else's process: alive
    return "0"


def owner_name(pid: int | None = None) -> str:
    """The folder name for a process: ``<pid>-<start ticks>``."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}-{_start_ticks(pid) or '0'}"


def _is_live(name: str) -> bool:
    pid, _, ticks = name.partition("-")
    if not pid.isdigit():
        return True  # not ours to judge: leave it
    current = _start_ticks(int(pid))
    return current is not None and (ticks in ("0", current) or current == "0")


def sweep(root: Path | None = None) -> int:
    """Remove the folders of dead processes; the number removed (never raises)."""
    root = root or spool_root()
    removed = 0
    try:
        children = list(root.iterdir())
    except OSError:
        return 0
    for child in children:
        if child.is_dir() and not _is_live(child.name):
            shutil.rmtree(child, ignore_errors=True)
            removed += 1
    if removed:
        log.warning("removed batch temp files of dead processes", extra={"fields": {"folders": removed}})
    return removed


@contextmanager
def spooled_output(root: Path | None = None) -> Iterator[tuple[IO[str], Path]]:
    """A temp file in this process's folder; removed on exit, or by a later sweep if the process dies."""
    folder = (root or spool_root()) / owner_name()
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="output-", suffix=".jsonl", dir=folder)
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle, path
    finally:
        path.unlink(missing_ok=True)
