"""Every example's README: its publish command works exactly as written and the model answers as documented."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from function.app import create_app
from function.settings import Settings
from tests.conftest import wait_ready

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.parent.name for p in (ROOT / "examples").glob("*/model.*"))


def _publish_command(readme: str) -> list[str]:
    """The first ``modelfn publish`` command of the README's sh blocks, continuation lines joined."""
    for block in re.findall(r"```sh\n(.*?)```", readme, re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            if line.strip().startswith("modelfn publish"):
                return shlex.split(line)
    raise AssertionError("the README has no `modelfn publish` command")


def _expected(readme: str) -> list[tuple[list[float], str]]:
    rows = re.findall(r"^\| `(\[[^`]*\])` \| `([^`]+)` \|$", readme, re.M)
    assert rows, "the README documents no expected predictions"
    return [(json.loads(instance), label) for instance, label in rows]


def test_every_example_has_a_readme():
    assert EXAMPLES
    for name in EXAMPLES:
        assert (ROOT / "examples" / name / "README.md").is_file(), f"examples/{name} has no README.md"


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_publishes_as_documented_and_predicts(example: str, tmp_path: Path):
    readme = (ROOT / "examples" / example / "README.md").read_text()
    argv = _publish_command(readme)
    store = (tmp_path / "store").as_uri()
    argv[argv.index("--to") + 1] = store  # the only change: where it goes
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "function.cli", *argv[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    name, version = argv[argv.index("--name") + 1], argv[argv.index("--version") + 1]
    client = create_app(Settings(model_uri=f"{store}/{name}@{version}", cache_dir=tmp_path / "cache")).test_client()
    wait_ready(client)
    expected = _expected(readme)
    r = client.post(f"/v1/models/{name}:predict", json={"instances": [i for i, _ in expected]})
    assert r.status_code == 200, r.get_json()
    assert [p[0]["label"] for p in r.get_json()["predictions"]] == [label for _, label in expected]
