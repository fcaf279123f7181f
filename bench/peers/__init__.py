"""Peer servers measured beside modelfn, each in its own bench-only venv pinned by ``<peer>.lock``."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = HERE.parent


def venv_bin(peer: str, log: Path) -> Path:
    """``bench/.venv-<peer>/bin``, created or refreshed from ``<peer>.lock`` when the lock changed."""
    lock = HERE / f"{peer}.lock"
    venv = VENVS / f".venv-{peer}"
    stamp = venv / ".bench-lock-sha256"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return venv / "bin"
    base = getattr(sys, "_base_executable", sys.executable)  # the interpreter, not this venv's
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        for argv in (
            [base, "-m", "venv", "--clear", str(venv)],
            [str(venv / "bin/pip"), "install", "-q", "-r", str(lock)],
        ):
            subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=900)
    stamp.write_text(digest)
    return venv / "bin"
