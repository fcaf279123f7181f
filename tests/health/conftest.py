"""Fixtures for validation gates and model health: evaluation sets and reference samples made here."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest

from tests.models import expected_logits

ROWS = 200


@pytest.fixture
def eval_set(tmp_path: Path) -> tuple[Path, float]:
    """An .npz for the linear model whose labels are right for exactly 3 rows in 4 (returns the accuracy)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(ROWS, 4)).astype(np.float32)
    labels = expected_logits(x).argmax(axis=1)
    wrong = np.arange(ROWS) % 4 == 0
    labels[wrong] = (labels[wrong] + 1) % 3
    path = tmp_path / "eval.npz"
    np.savez(path, features=x, labels=labels)
    return path, float(np.mean(labels == expected_logits(x).argmax(axis=1)))


@pytest.fixture
def labels_file(tmp_path: Path) -> Path:
    """a, b, c: the linear model's classes."""
    path = tmp_path / "labels.txt"
    path.write_text("a\nb\nc\n")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    """Prometheus' promtool (Debian package ``prometheus``); the rule tests skip, saying why, without it."""
    path = shutil.which("promtool")
    if path is None:
        missing("promtool is not installed (Debian: apt-get install -y prometheus)")
    return path


def missing(reason: str) -> NoReturn:
    """Skip for lack of a tool; a failure where CI installs it (MODELFN_REQUIRE_TOOLS=1, set by .ci/run)."""
    if os.environ.get("MODELFN_REQUIRE_TOOLS") == "1":
        pytest.fail(f"MODELFN_REQUIRE_TOOLS=1 but {reason}", pytrace=False)
    pytest.skip(reason)
