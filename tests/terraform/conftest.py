"""One session-wide, parallel batch of terraform validate/test runs over a copy of terraform/."""

from __future__ import annotations

from functools import partial

import pytest

from tests.terraform.tools import MODULES, STACKS, Result, copy_terraform, require_terraform, run_parallel, terraform

NO_COLOR = "-no-color"


@pytest.fixture(scope="session")
def tf_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """validate every root stack and module example, and `terraform test` every module."""
    require_terraform()
    root = copy_terraform(tmp_path_factory.mktemp("tf"))
    get, validate = ["get", NO_COLOR], ["validate", NO_COLOR]
    jobs = {f"validate:{s}": partial(terraform, root / s, get, validate) for s in STACKS}
    jobs |= {
        f"example:{m}": partial(terraform, root / "modules" / m / "examples" / "basic", get, validate) for m in MODULES
    }
    jobs |= {f"test:{m}": partial(terraform, root / "modules" / m, ["test", NO_COLOR]) for m in MODULES}
    return run_parallel(jobs)
