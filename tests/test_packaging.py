"""Packaging and Makefile entry points a newcomer runs first."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("target", "words"), [("install-core", "pip install -q -e ."), ("install-dev", "'.[s3,")])
def test_install_targets_have_rules(target: str, words: str):
    # -n prints the commands without running them; -B so an existing .venv does not hide them.
    out = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert words in out.stdout, out.stdout


def test_metadata_builds_without_license_deprecation_warnings(tmp_path: Path):
    """The build requirement's setuptools reads the SPDX license string: no warning, License-Expression set."""
    import setuptools

    requirement = re.search(r'"setuptools>=([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    assert requirement and int(requirement.group(1).split(".")[0]) >= 77
    assert int(setuptools.__version__.split(".")[0]) >= 77, "the test venv's setuptools is too old to check"
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("function", "loader", "iac"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    script = "from setuptools import build_meta; print(build_meta.prepare_metadata_for_build_wheel('meta'))"
    (src / "meta").mkdir()
    out = subprocess.run([sys.executable, "-c", script], cwd=src, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "license" not in out.stderr.lower(), out.stderr
    metadata = (src / "meta" / out.stdout.strip().splitlines()[-1] / "METADATA").read_text()
    assert "License-Expression: Apache-2.0" in metadata
