"""The ``modelfn`` command line: publish, promote, list, verify, serve, predict (and deploy)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from function.alias_cli import register as register_aliases
from function.exit_codes import (
    EXIT_CONFIG,
    EXIT_CONFLICT,
    EXIT_FAILED,
    EXIT_INTEGRITY,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    exit_code_for,
)
from function.jobs.cli import register as register_batch
from loader import errors as le

__all__ = [
    "EXIT_CONFIG",
    "EXIT_CONFLICT",
    "EXIT_FAILED",
    "EXIT_INTEGRITY",
    "EXIT_NOT_FOUND",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "main",
]


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``error: message`` to stderr and exit non-zero."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class Group(click.Group):
    """Turns typed errors into one-line messages instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except le.ModelfnError as exc:
            fail(str(exc), exit_code_for(exc))


@click.group(cls=Group)
@click.version_option(package_name="modelfn")
def main() -> None:
    """modelfn: versioned model artifacts served as a serverless container function."""


def cli_settings() -> Any:
    """The environment's settings; an invalid one is a one-line usage error naming the variable, not a traceback."""
    from pydantic import ValidationError

    from function.settings import load_settings

    try:
        return load_settings()
    except ValidationError as exc:
        # Model-level checks (e.g. events without a secret) have no field: their message names the variables.
        where, _, what = le.first_problem(exc, "").partition(": ")
        fail(f"invalid configuration: {where.upper() + ': ' if where else ''}{what}", EXIT_USAGE)


def _store_options() -> dict[str, str | None]:
    return dict(cli_settings().store_options())


def _tensor_option(value: str) -> Any:
    from loader.manifest import TensorSpec

    try:
        name, datatype, dims = value.split(":")
        shape = [int(d) for d in dims.split(",")] if dims else []
        return TensorSpec(name=name, datatype=datatype, shape=shape)
    except ValueError as exc:
        raise click.BadParameter(f"expected NAME:DATATYPE:DIM,DIM,... (e.g. x:FP32:-1,4): {exc}") from None


def _tensors(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> list[Any]:
    return [_tensor_option(v) for v in values]


def _meta(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}")
        pairs[key] = val
    return pairs


def _floats(value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter("expected comma-separated numbers") from None


@main.command()
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Model name ([a-z0-9][a-z0-9._-]*).")
@click.option("--version", "version_", required=True, help="Version to create (immutable).")
@click.option("--to", "store_uri", required=True, help="Store URI, e.g. s3://bucket/models.")
@click.option("--alias", "aliases", multiple=True, help="Alias to point at this version (repeatable).")
@click.option("--no-latest", is_flag=True, help="Do not move the 'latest' alias.")
@click.option("--framework", type=click.Choice(["onnx", "torchscript", "torch_export"]), help="Default: from suffix.")
@click.option("--input", "inputs", multiple=True, callback=_tensors, help="NAME:DATATYPE:DIMS (overrides the model).")
@click.option("--output", "outputs", multiple=True, callback=_tensors, help="NAME:DATATYPE:DIMS.")
@click.option(
    "--extra-file",
    "extra_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Another file the model needs (e.g. ONNX external data).",
)
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Text file with one class label per line.",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16", "bf16"]),
    default="fp32",
    show_default=True,
    help="torch models: the dtype weights are cast to at load (fp16 is served on CUDA only).",
)
@click.option("--softmax", is_flag=True, help="Apply softmax to the first output.")
@click.option("--top-k", type=click.IntRange(min=1), help="Return the k best classes.")
@click.option("--scale", type=float, help="Pre-processing: multiply inputs by this.")
@click.option("--mean", help="Pre-processing: comma-separated means to subtract.")
@click.option("--std", help="Pre-processing: comma-separated standard deviations to divide by.")
@click.option("--meta", multiple=True, callback=_meta, help="Provenance KEY=VALUE (git sha, dataset...).")
@click.option(
    "--eval", "eval_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Evaluation .npz."
)
@click.option("--gate", "gates", multiple=True, help="METRIC OP NUMBER the evaluation must meet (repeatable).")
@click.option("--eval-batch", default=1, show_default=True, type=click.IntRange(min=1), help="Rows per timed call.")
@click.option(
    "--reference",
    "reference_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Drift reference sample (.npy, .jsonl or .parquet).",
)
def publish(
    model_file: Path,
    name: str,
    version_: str,
    store_uri: str,
    aliases: tuple[str, ...],
    no_latest: bool,
    framework: str | None,
    inputs: list[Any],
    outputs: list[Any],
    extra_files: tuple[Path, ...],
    labels_file: Path | None,
    precision: str,
    softmax: bool,
    top_k: int | None,
    scale: float | None,
    mean: str | None,
    std: str | None,
    meta: dict[str, str],
    eval_path: Path | None,
    gates: tuple[str, ...],
    eval_batch: int,
    reference_path: Path | None,
) -> None:
    """Publish MODEL_FILE as NAME@VERSION (digests, signature, manifest) to a store."""
    from function import gating
    from function.publishing import build_manifest, upload

    labels = [ln.strip() for ln in labels_file.read_text().splitlines() if ln.strip()] if labels_file else None
    try:
        manifest, sources = build_manifest(
            model_file,
            name,
            version_,
            framework,
            inputs,
            outputs,
            list(extra_files),
            preprocess={"scale": scale, "mean": _floats(mean), "std": _floats(std)},
            postprocess={"softmax": softmax, "labels": labels, "top_k": top_k},
            metadata=meta,
            precision=precision,
        )
    except le.ManifestInvalid as exc:  # built from the arguments, so it is a usage error, not a bad store
        fail(str(exc), EXIT_USAGE)
    all_aliases = list(dict.fromkeys([*aliases, *([] if no_latest else ["latest"])]))
    settings = cli_settings()
    try:
        manifest = gating.evaluate_and_gate(
            manifest, sources, eval_path, gates, reference_path, eval_batch, settings.device.value
        )
        gating.check_publish_aliases(manifest, all_aliases, settings.protected_aliases)
    except gating.GateFailed as exc:
        fail(str(exc), gating.EXIT_GATE_FAILED)
    upload(store_uri, manifest, sources, all_aliases, _store_options())
    click.echo(
        f"published {name}@{version_} to {store_uri}" + (f" (aliases: {', '.join(all_aliases)})" if all_aliases else "")
    )


@main.command("list")
@click.argument("store_uri")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(store_uri: str, as_json: bool) -> None:
    """List models, versions and aliases in a store."""
    from loader.publish import list_models
    from loader.stores import open_store

    listings = list_models(open_store(store_uri, _store_options()))
    if as_json:
        click.echo(json.dumps([{"name": m.name, "versions": m.versions, "aliases": m.aliases} for m in listings]))
        return
    if not listings:
        click.echo(f"no models in {store_uri}")
    for m in listings:
        aliases = ", ".join(f"{a} -> {v}" for a, v in m.aliases.items()) or "none"
        click.echo(f"{m.name}\n  versions: {', '.join(m.versions) or 'none'}\n  aliases:  {aliases}")


@main.command()
@click.argument("ref")
@click.option("--store", "store_uri", required=True, help="Store URI, e.g. gs://bucket/models.")
def verify(ref: str, store_uri: str) -> None:
    """Download NAME@REF into a scratch cache and check every digest (full reasons, for operators)."""
    import tempfile

    from loader.artifacts import fetch
    from loader.cache import ArtifactCache
    from loader.stores import open_store
    from loader.uri import parse_model_uri

    uri = parse_model_uri(f"{store_uri.rstrip('/')}/{ref}")
    with tempfile.TemporaryDirectory(prefix="modelfn-verify-") as scratch:
        artifact = fetch(open_store(uri.store, _store_options()), uri, ArtifactCache(Path(scratch)))
    manifest = artifact.manifest
    total = sum(f.size for f in manifest.files)
    click.echo(f"verified {manifest.name}@{manifest.version}: {len(manifest.files)} file(s), {total} bytes")


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), help="Overrides PORT (default 8080).")
@click.option("--model-uri", help="Overrides MODEL_URI (default: the bundled demo model).")
@click.option("--threads", type=click.IntRange(min=1), help="Overrides THREADS (HTTP concurrency of the one worker).")
def serve(port: int | None, model_uri: str | None, threads: int | None) -> None:
    """Run the function locally under Gunicorn (the same server as the image)."""

    for key, value in (("PORT", port), ("MODEL_URI", model_uri), ("THREADS", threads)):
        if value is not None:
            os.environ[key] = str(value)
    cli_settings()  # fail here, with a message, rather than in every Gunicorn worker
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", "python:function.gunicorn_conf", "function.wsgi:app"]
    os.execv(gunicorn[0], gunicorn)  # noqa: S606 - replace this process so signals reach Gunicorn


@main.command()
@click.argument("instances_json", required=False)
@click.option("--url", default="http://127.0.0.1:8080", show_default=True, help="Service base URL.")
@click.option("--model", "model_name", default="iris", show_default=True, help="Model name.")
@click.option("--file", "file_", type=click.File("r"), help="Read the JSON instances from a file ('-': stdin).")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the response.")
def predict(instances_json: str | None, url: str, model_name: str, file_: Any, timeout: float) -> None:
    """Send INSTANCES_JSON (e.g. '[[5.1,3.5,1.4,0.2]]') to /v1/models/<model>:predict."""
    from urllib.parse import urlsplit

    from function.client import post_predict

    if urlsplit(url).scheme not in ("http", "https"):
        fail("--url must start with http:// or https://", EXIT_USAGE)
    text = file_.read() if file_ else instances_json
    if text is None:
        fail("give INSTANCES_JSON or --file", EXIT_USAGE)
    try:
        instances = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"instances are not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", EXIT_USAGE)
    if isinstance(instances, dict) and "instances" in instances:
        instances = instances["instances"]
    if not isinstance(instances, list):
        fail("instances must be a JSON list", EXIT_USAGE)
    status, body = post_predict(url, model_name, instances, timeout)
    click.echo(json.dumps(body, indent=2))
    if status >= 400:
        sys.exit(EXIT_UNAVAILABLE if status in (429, 503) else EXIT_FAILED)


def _register_deploy() -> None:
    # Imported lazily: the deploy driver is only needed by `modelfn deploy`, not by the server, and the
    # serving image ships without iac/ (deployments run from a workstation or CI with the wheel).
    try:
        from iac.cli import deploy
    except ModuleNotFoundError as exc:
        if exc.name != "iac":
            raise
        return

    main.add_command(deploy)


_register_deploy()
register_batch(main)
register_aliases(main, _store_options, cli_settings)

if __name__ == "__main__":
    main()
