"""``modelfn batch run`` and ``modelfn batch status``; everything heavy is imported inside the commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import click


def register(main: click.Group) -> None:
    """Add the ``batch`` command group to the CLI."""
    main.add_command(batch)


@click.group()
def batch() -> None:
    """Batch inference at any size: sharded jobs on a cloud's job engine, or local processes."""


def _shard_option(_: click.Context, __: click.Parameter, value: str | None) -> Any:
    from function.jobs.shards import parse_shard

    if value is None:
        return None
    try:
        return parse_shard(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@batch.command("run")
@click.option("--input", "input_uri", required=True, help="Input object (s3://b/in/x.jsonl) or prefix.")
@click.option("--output", "output_uri", required=True, help="Output prefix for parts, status and _SUCCESS.")
@click.option("--shard", callback=_shard_option, help="I/N: run shard I of N (default: the job engine's task).")
@click.option("--local", type=click.IntRange(1, 64), help="Run all N shards as local processes.")
def run_cmd(input_uri: str, output_uri: str, shard: Any, local: int | None) -> None:
    """Process one shard of INPUT into OUTPUT/part-I-of-N (or all N locally with --local N)."""
    from function.cli import EXIT_USAGE, fail

    if local is not None:
        if shard is not None:
            fail("give --shard or --local, not both", EXIT_USAGE)
        sys.exit(_run_local(input_uri, output_uri, local))
    settings = _settings()
    from function.jobs.runner import run_shard
    from function.jobs.shards import Shard

    if shard is None:
        index, count = settings.cloud_run_task_index, settings.cloud_run_task_count
        shard = Shard(index or 0, count or 1)
    result = run_shard(settings, input_uri, output_uri, shard)
    click.echo(json.dumps({"part": result["part"], "records": result["records"]}))


def _run_local(input_uri: str, output_uri: str, count: int) -> int:
    """N shard processes at once (the embedded default, no cloud); non-zero if any failed."""
    base = [sys.executable, "-m", "function.cli", "batch", "run", "--input", input_uri, "--output", output_uri]
    env = {k: v for k, v in os.environ.items() if k not in ("CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT")}
    procs = [subprocess.Popen([*base, "--shard", f"{i}/{count}"], env=env) for i in range(count)]
    codes = [p.wait() for p in procs]
    failed = [i for i, c in enumerate(codes) if c != 0]
    if failed:
        click.echo(f"error: shard(s) {failed} of {count} failed; rerun them with --shard I/{count}", err=True)
        return 1
    click.echo(f"{count} shards done; see {output_uri.rstrip('/')}/_SUCCESS")
    return 0


@batch.command("status")
@click.argument("output_uri")
@click.option("--watch", is_flag=True, help="Show a progress bar until every part is done or failed.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between polls while watching.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_cmd(output_uri: str, watch: bool, interval: float, as_json: bool) -> None:
    """Parts done/failed, records and throughput of the batch job writing to OUTPUT_URI."""
    from function.cli import EXIT_NOT_FOUND, fail
    from function.jobs.status import read_statuses, summary
    from loader.stores import open_store

    store = open_store(output_uri, _settings().store_options())
    info = summary(read_statuses(store))
    if not info["count"]:
        fail(f"no batch job status under {output_uri}", EXIT_NOT_FOUND)
    if watch:
        info = _watch(store, info, interval)
    if as_json:
        click.echo(json.dumps(info))
    else:
        _print(info)
    sys.exit(1 if info["failed"] else 0)


def _watch(store: Any, info: dict[str, Any], interval: float) -> dict[str, Any]:
    from tqdm import tqdm

    from function.jobs.status import read_statuses, summary

    with tqdm(total=info["count"], unit="part", file=sys.stderr) as bar:
        while True:
            bar.n = info["done"] + len(info["failed"])
            bar.set_postfix(records=info["records"], failed=len(info["failed"]))
            bar.refresh()
            if info["done"] + len(info["failed"]) >= info["count"]:
                return info
            time.sleep(interval)
            info = summary(read_statuses(store))


def _print(info: dict[str, Any]) -> None:
    rate = info["records_per_second"]
    click.echo(
        f"parts: {info['done']}/{info['count']} done, {len(info['failed'])} failed, "
        f"{info['running']} running, {info['pending']} not started"
    )
    click.echo(f"records: {info['records']}" + (f" ({rate:.1f} records/s)" if rate else ""))
    for part, error in info["errors"].items():
        click.echo(f"failed {part}: {error} (report: {part}.error.json)")


def _settings() -> Any:
    from function.cli import cli_settings

    return cli_settings()
