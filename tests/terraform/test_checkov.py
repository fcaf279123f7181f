"""checkov over terraform/: zero failed checks, and every skip states its reason."""

from __future__ import annotations

import json
import re
import subprocess

from tests.terraform.tools import REPO, TERRAFORM_DIR, require_checkov

SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def test_every_checkov_skip_has_a_reason() -> None:
    skips = [(path, m) for path in TERRAFORM_DIR.rglob("*.tf") for m in SKIP.finditer(path.read_text())]
    assert skips, "expected inline checkov skips with reasons"
    missing = [f"{p.relative_to(REPO)}: {m.group(1)}" for p, m in skips if not (m.group(2) or "").strip()]
    assert not missing, f"checkov skips without a reason: {missing}"


def test_checkov_terraform_has_no_failed_checks() -> None:
    checkov = require_checkov()
    proc = subprocess.run(
        [
            str(checkov),
            "-d",
            str(TERRAFORM_DIR),
            "--framework",
            "terraform",
            "--skip-download",
            "--quiet",
            "--compact",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    summary = [r["summary"] for r in reports]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})" for r in reports for c in r["results"]["failed_checks"]
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert proc.returncode == 0, proc.stderr
    assert sum(s["passed"] for s in summary) > 100, summary
