"""Build hook: ship terraform/ inside the wheel as iac/stacks, so `modelfn deploy` works from an install.

Everything else is declared in pyproject.toml. The stacks stay in terraform/ in the repository (where
`terraform` and the tests use them); editable installs and source checkouts read them from there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

STACKS = Path(__file__).resolve().parent / "terraform"
# Terraform's working files and user inputs never ship (state and tfvars can hold secrets).
IGNORE = shutil.ignore_patterns(
    ".terraform", ".terraform.lock.hcl", "*.tfstate", "*.tfstate.*", "terraform.tfvars", "*.tfvars.json", "*.tfplan"
)


class BuildWithStacks(build_py):
    """build_py that also copies terraform/ to <build_lib>/iac/stacks (skipped where terraform/ is absent)."""

    def run(self) -> None:
        super().run()
        if STACKS.is_dir() and not self.editable_mode:
            target = Path(self.build_lib) / "iac" / "stacks"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(STACKS, target, ignore=IGNORE)


setup(cmdclass={"build_py": BuildWithStacks})
