"""``modelfn batch run/status`` through the real CLI, in real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from function.jobs.shards import Shard
from tests.jobs.conftest import merged, run_all
from tests.jobs.test_sharding import jsonl_bytes


@pytest.fixture
def cli_env(published: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUD_RUN_", "BATCH_", "EVENTS_"))}
    env.update(
        MODEL_URI=f"{published}/lin",
        CACHE_DIR=str(tmp_path / "cli-cache"),
        EVENTS_BATCH_SIZE="4",
        BATCH_PROGRESS_SECONDS="0.01",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    return env


def modelfn(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "function.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_local_shards_equal_one_shard_and_status_reports_them(tmp_path, cli_env, job_settings):
    source = tmp_path / "in.jsonl"
    source.write_bytes((jsonl_bytes() + b"\n") * 5)
    reference = run_all(job_settings(events_batch_size=4), source.as_uri(), tmp_path / "ref", 1)
    out = tmp_path / "out"
    result = modelfn(cli_env, "batch", "run", "--input", source.as_uri(), "--output", out.as_uri(), "--local", "3")
    assert result.returncode == 0, result.stderr
    assert merged(out, 3) == reference and len(reference) == 100
    assert json.loads((out / "_SUCCESS").read_text())["records"] == 100
    status = modelfn(cli_env, "batch", "status", out.as_uri())
    assert status.returncode == 0, status.stderr
    assert "parts: 3/3 done, 0 failed" in status.stdout and "records: 100" in status.stdout
    watched = modelfn(cli_env, "batch", "status", out.as_uri(), "--watch", "--json")
    assert watched.returncode == 0 and "3/3" in watched.stderr  # the progress bar
    assert json.loads(watched.stdout)["done"] == 3


def test_a_failed_shard_leaves_an_error_report_and_no_success(tmp_path, cli_env):
    source = tmp_path / "in.jsonl"
    source.write_bytes(jsonl_bytes() + b"\n" + b"[1, 2, 3, 4]\n" * 50 + b"{not json\n")
    out = tmp_path / "out"
    result = modelfn(cli_env, "batch", "run", "--input", source.as_uri(), "--output", out.as_uri(), "--local", "2")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "shard(s) [1] of 2 failed" in result.stderr
    report = json.loads((out / f"{Shard(1, 2).name}.error.json").read_text())
    assert report["kind"] == "InferenceInputError" and "not valid JSON" in report["error"]
    assert not (out / "_SUCCESS").exists() and (out / f"{Shard(0, 2).name}.jsonl").exists()
    status = modelfn(cli_env, "batch", "status", out.as_uri())
    assert status.returncode == 1
    assert "1/2 done, 1 failed" in status.stdout and f"failed {Shard(1, 2).name}" in status.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--shard", "4/4"], "need 0 <= I < N"),
        (["--shard", "0/2", "--local", "2"], "not both"),
        (["--local", "0"], "--local"),
    ],
)
def test_bad_run_arguments_exit_2(args, words, tmp_path, cli_env):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"[1,2,3,4]\n")
    result = modelfn(cli_env, "batch", "run", "--input", source.as_uri(), "--output", (tmp_path / "o").as_uri(), *args)
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr


def test_status_of_an_output_without_a_job_exits_not_found(tmp_path, cli_env):
    result = modelfn(cli_env, "batch", "status", tmp_path.as_uri())
    assert result.returncode == 3 and "no batch job status" in result.stderr


def test_an_input_that_does_not_exist_is_a_clear_error(tmp_path, cli_env):
    args = ["--input", (tmp_path / "missing.jsonl").as_uri(), "--output", (tmp_path / "o").as_uri()]
    result = modelfn(cli_env, "batch", "run", *args, "--shard", "0/1")
    assert result.returncode != 0 and "not found" in result.stderr and "Traceback" not in result.stderr


def test_a_killed_shard_rerun_writes_identical_output(tmp_path, cli_env):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"[5.1, 3.5, 1.4, 0.2]\n[1, 2, 3, 4]\n" * 30_000)
    args = ["batch", "run", "--input", source.as_uri(), "--shard", "1/2"]
    clean = modelfn(cli_env, *args, "--output", (tmp_path / "clean").as_uri())
    assert clean.returncode == 0, clean.stderr
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "function.cli", *args, "--output", out.as_uri()]
    proc = subprocess.Popen(cmd, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status = out / "_status" / f"{Shard(1, 2).name}.json"
    deadline = time.monotonic() + 60
    while not (status.exists() and json.loads(status.read_text() or "{}").get("records", 0) > 0):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    part = f"{Shard(1, 2).name}.jsonl"
    assert not (out / part).exists()  # a dead shard leaves no partial part
    assert json.loads(status.read_text())["state"] == "running"
    rerun = modelfn(cli_env, *args, "--output", out.as_uri())
    assert rerun.returncode == 0, rerun.stderr
    assert (out / part).read_bytes() == (tmp_path / "clean" / part).read_bytes()
    assert json.loads(status.read_text())["state"] == "done"


def test_watching_a_running_job_follows_it_to_the_end(tmp_path, cli_env):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"[5.1, 3.5, 1.4, 0.2]\n" * 150_000)  # long enough to be watched running
    out = tmp_path / "out"
    args = ["batch", "run", "--input", source.as_uri(), "--output", out.as_uri(), "--local", "2"]
    job = subprocess.Popen([sys.executable, "-m", "function.cli", *args], env=cli_env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (out / "_status").is_dir() or not list((out / "_status").iterdir()):
            assert job.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        watched = modelfn(cli_env, "batch", "status", out.as_uri(), "--watch", "--interval", "0.05", "--json")
    finally:
        job.wait(120)
    assert job.returncode == 0
    assert watched.returncode == 0, watched.stderr
    assert json.loads(watched.stdout)["done"] == 2 and json.loads(watched.stdout)["records"] == 150_000
    assert "2/2" in watched.stderr and "0/2" in watched.stderr.replace("\r", "\n")  # the bar moved while watching


def test_batch_jobs_use_the_primary_while_the_alias_runs_a_canary(tmp_path, cli_env, published):
    import numpy as np

    from loader import aliases
    from loader.stores import open_store
    from tests.models import B, expected_logits, linear_onnx, publish_model

    bias = B + np.array([0.0, 0.0, 100.0], dtype=np.float32)  # 2.0.0 would give "c" a score of 1.0
    publish_model(published, linear_onnx(tmp_path / "v2.onnx", bias), version="2.0.0", aliases=())
    store = open_store(published, {})
    aliases.start_candidate(store, "lin", "latest", "2.0.0", 100, "canary", by="test")  # every request: 2.0.0
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"[1, 2, 3, 4]\n" * 10)
    out = tmp_path / "out"
    result = modelfn(cli_env, "batch", "run", "--input", source.as_uri(), "--output", out.as_uri(), "--local", "2")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "_SUCCESS").read_text())["model_version"] == "1.0.0"
    records = merged(out, 2)
    assert len(records) == 10
    logits = expected_logits(np.array([[1, 2, 3, 4]], dtype=np.float32))[0]
    scores = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    top = float(np.sort(scores)[-1])
    assert all(r["prediction"][0]["score"] == pytest.approx(top, rel=1e-5) for r in records)  # 1.0.0's answers
