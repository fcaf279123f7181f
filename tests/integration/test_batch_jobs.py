"""Batch jobs in the real image: N shard containers at once against each emulator, a killed shard, memory.

Per store (s3 / gcs / azure): three containers of the function image run ``batch run --shard I/3``
at the same time against the emulator; their merged parts equal a one-shard run from the host. A
shard killed mid-way and rerun writes the same bytes. A shard of a 2 GiB generated input runs in a
container limited to 256 MiB.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.docker_env import DockerContainer, Network, wait_for
from tests.integration.stores import BUCKET, Emulator, run_cli

pytestmark = [pytest.mark.emulator, pytest.mark.timeout(1800)]
ROWS = [[5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 4.2, 1.5], [6.9, 3.1, 5.4, 2.1]]
JOB_ENV = {"EVENTS_BATCH_SIZE": "4", "BATCH_PROGRESS_SECONDS": "0.05", "LOG_LEVEL": "warning"}


def part(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}.jsonl"


@pytest.fixture(scope="module")
def job_input(emulator: Emulator) -> Iterator[Emulator]:
    """The demo model published, and a 90,000-line JSONL input (CRLF on every third line) in the bucket."""
    emulator.publish("1.0.0")
    lines = [json.dumps(ROWS[i % 3]) + ("\r\n" if i % 3 == 0 else "\n") for i in range(90_000)]
    emulator.put("batch/in/data.jsonl", "".join(lines).encode())
    yield emulator


def shard_container(image: str, network: Network, emulator: Emulator, out: str, shard: str) -> DockerContainer:
    """A function-image container running one shard (the image's own Python, another command)."""
    uri = f"{emulator.scheme}://{BUCKET}/batch"
    command = ["python", "-m", "function.cli", "batch", "run", "--input", f"{uri}/in/data.jsonl"]
    container = DockerContainer(image).with_network(network)
    container = container.with_command([*command, "--output", f"{uri}/{out}", "--shard", shard])
    env = {**emulator.container_env(), **JOB_ENV, "MODEL_URI": emulator.model_uri("1.0.0")}
    for key, value in env.items():
        container = container.with_env(key, value)
    return container


def exit_code(container: DockerContainer) -> int:
    result = container.get_wrapped_container().wait(timeout=600)
    return int(result["StatusCode"])


def records(emulator: Emulator, key: str) -> list[dict]:
    return [json.loads(line) for line in emulator.get(key).decode().splitlines()]


def test_parallel_shard_containers_equal_one_shard(job_input, function_image, network, tmp_path):
    host = {**job_input.host_env(), **JOB_ENV, "CACHE_DIR": str(tmp_path / "cache")}
    host["MODEL_URI"] = job_input.model_uri("1.0.0")
    uri = f"{job_input.scheme}://{BUCKET}/batch"
    run_cli(host, "batch", "run", "--input", f"{uri}/in/data.jsonl", "--output", f"{uri}/ref", "--shard", "0/1")
    reference = records(job_input, f"batch/ref/{part(0, 1)}")
    containers = [shard_container(function_image, network, job_input, "out", f"{i}/3") for i in range(3)]
    for container in containers:
        container.start()  # all three at once
    try:
        codes = [exit_code(c) for c in containers]
        logs = [c.get_logs() for c in containers]
    finally:
        for container in containers:
            container.stop()
    assert codes == [0, 0, 0], logs
    merged = [r for i in range(3) for r in records(job_input, f"batch/out/{part(i, 3)}")]
    assert merged == reference and len(merged) == 90_000
    success = json.loads(job_input.get("batch/out/_SUCCESS"))
    assert success["count"] == 3 and success["records"] == 90_000 and success["model_version"] == "1.0.0"
    assert [p["records"] for p in success["parts"]] == [
        len(records(job_input, f"batch/out/{part(i, 3)}")) for i in range(3)
    ]


def test_a_killed_shard_container_rerun_writes_identical_bytes(job_input, function_image, network):
    expected = job_input.get(f"batch/out/{part(1, 3)}")  # from the parallel run above
    victim = shard_container(function_image, network, job_input, "killed", "1/3")
    victim.start()
    try:

        def running() -> bool | None:
            try:
                status = json.loads(job_input.get(f"batch/killed/_status/{part(1, 3)[:-6]}.json"))
            except Exception:
                return None
            return True if status["state"] == "running" and status["records"] > 0 else None

        wait_for(running, 120, "the shard to report progress")
        victim.get_wrapped_container().kill()
    finally:
        victim.stop()
    with pytest.raises(Exception):  # each SDK raises its own not-found error
        job_input.get(f"batch/killed/{part(1, 3)}")
    rerun = shard_container(function_image, network, job_input, "killed", "1/3")
    rerun.start()
    try:
        assert exit_code(rerun) == 0, rerun.get_logs()
    finally:
        rerun.stop()
    assert job_input.get(f"batch/killed/{part(1, 3)}") == expected


def test_a_shard_of_a_2_gib_input_runs_in_256_mib(function_image, tmp_path: Path):
    line = json.dumps(ROWS[0]).encode().ljust(64 * 1024 - 1) + b"\n"  # 64 KiB lines: trailing blanks are JSON
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    out.chmod(0o777)  # the image runs as uid 10001
    with (data / "big.jsonl").open("wb") as handle:
        for _ in range(2 * 1024**3 // len(line)):
            handle.write(line)
    command = ["python", "-m", "function.cli", "batch", "run", "--input", "file:///data/big.jsonl"]
    container = DockerContainer(image=function_image).with_command(
        [*command, "--output", "file:///out", "--shard", "1/4"]
    )
    container = container.with_volume_mapping(str(data), "/data", "ro").with_volume_mapping(str(out), "/out", "rw")
    container = container.with_kwargs(mem_limit="256m", memswap_limit="256m").with_env("LOG_LEVEL", "warning")
    container.start()
    try:
        code = exit_code(container)
        container.get_wrapped_container().reload()
        state = container.get_wrapped_container().attrs["State"]
        logs = container.get_logs()
    finally:
        container.stop()
    assert code == 0 and not state["OOMKilled"], logs
    lines = (out / part(1, 4)).read_text().splitlines()
    assert len(lines) == 2 * 1024**3 // len(line) // 4
    assert json.loads(lines[0])["offset"] == 2 * 1024**3 // 4  # the shard starts exactly on a line start
