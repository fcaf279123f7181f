"""`pip install modelfn && modelfn deploy ...` from a wheel: the stacks ship in the package (issue #9, item 16)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.terraform.tools import REPO, require_terraform, tf_env

SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "function", "loader", "iac", "terraform")
IGNORE = shutil.ignore_patterns("__pycache__", ".terraform", "*.tfstate*", "terraform.tfvars.json", "*.egg-info")


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources (no build isolation: nothing is downloaded)."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=IGNORE)
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out), "."],
        src,
    )
    (built,) = out.glob("modelfn-*.whl")
    return built


def test_wheel_ships_every_stack_and_no_terraform_state(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    stacks = {n.removeprefix("iac/stacks/") for n in names if n.startswith("iac/stacks/")}
    repo = {str(p.relative_to(REPO / "terraform")) for p in (REPO / "terraform").rglob("*") if p.is_file()}
    repo = {p for p in repo if not p.endswith((".tfstate", ".tfvars.json")) and ".terraform" not in p}
    assert repo <= stacks, f"missing from the wheel: {sorted(repo - stacks)}"
    assert not [n for n in names if n.endswith((".tfstate", "terraform.tfvars.json"))]


def test_installed_modelfn_deploy_finds_the_packaged_stacks(wheel: Path, tmp_path: Path) -> None:
    require_terraform()
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        tmp_path,
    )
    # Dependencies come from the shared venv's site-packages, after the installed wheel (a plain path entry:
    # the shared venv's editable-install hooks do not run, so `iac` can only come from the wheel).
    site = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path).stdout.strip()
    )
    (site / "zz_shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in tf_env().items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = _run([str(python), "-c", "import iac.driver as d; print(d.DEFAULT_STACKS)"], tmp_path, env).stdout.strip()
    assert where.startswith(str(site)), where

    work = tmp_path / "project"
    work.mkdir()
    shutil.copy2(REPO / "iac" / "examples" / "gcp.toml", work / "deploy.toml")
    planned = _run(
        [str(venv / "bin" / "modelfn"), "deploy", "gcp", "--config", "deploy.toml", "--plan", "--no-init"], work, env
    )
    assert "Plan: " in planned.stdout and "to add" in planned.stdout, planned.stdout
    assert (work / ".modelfn" / "terraform" / "gcp" / "terraform.tfvars.json").is_file()
    assert not list(site.glob("iac/stacks/*/terraform.tfvars.json")), "the driver wrote into site-packages"


def test_cli_works_without_iac_as_in_the_serving_image(tmp_path: Path) -> None:
    """The image ships function/ and loader/ only: the CLI must load, just without `deploy`."""
    for name in ("function", "loader"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=IGNORE)
    probe = "import function.cli as c; print(sorted(c.main.commands))"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)}
    # -I would drop PYTHONPATH; -S keeps the shared venv's editable hooks (which map iac to a checkout) out.
    site = sysconfig.get_paths()["purelib"]
    code = f"import sys; sys.path.append({site!r}); {probe}"
    commands = _run([sys.executable, "-S", "-c", code], tmp_path, env).stdout
    assert "'publish'" in commands and "'deploy'" not in commands, commands
