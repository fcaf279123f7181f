"""``modelfn publish``: build a manifest from a model file and upload it with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from function.alias_cli import actor
from loader.errors import ManifestInvalid, first_problem
from loader.introspect import framework_for, signature
from loader.manifest import Framework, Manifest, PostProcessing, Precision, PreProcessing, Provenance, TensorSpec
from loader.prepost import check_preprocessing
from loader.publish import file_entry, publish
from loader.stores import open_store


def build_manifest(
    model_file: Path,
    name: str,
    version: str,
    framework: str | None,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    extra_files: list[Path],
    preprocess: dict[str, Any],
    postprocess: dict[str, Any],
    metadata: dict[str, str],
    precision: str = "fp32",
) -> tuple[Manifest, dict[str, Path]]:
    """Digest the files and read the signature from the model unless given explicitly."""
    kind = Framework(framework) if framework else framework_for(model_file)
    if not (inputs and outputs):
        found_in, found_out = signature(model_file, kind)
        inputs, outputs = inputs or found_in, outputs or found_out
    sources = {model_file.name: model_file}
    for extra in extra_files:
        if extra.name in sources:
            raise ManifestInvalid(f"two files are named {extra.name!r}")
        sources[extra.name] = extra
    try:
        manifest = Manifest(
            name=name,
            version=version,
            framework=kind,
            precision=Precision(precision),
            model_file=model_file.name,
            files=[file_entry(path, rel) for rel, path in sources.items()],
            inputs=inputs,
            outputs=outputs,
            preprocess=PreProcessing(**preprocess),
            postprocess=PostProcessing(**postprocess),
            provenance=Provenance(metadata=metadata),
            layout="by-digest",
        )
    except ValidationError as exc:
        raise ManifestInvalid(f"invalid manifest: {first_problem(exc, 'manifest')}") from None
    check_preprocessing(manifest.preprocess, manifest.inputs[0])
    return manifest, sources


def upload(
    store_uri: str,
    manifest: Manifest,
    sources: dict[str, Path],
    aliases: list[str],
    options: dict[str, str | None],
) -> None:
    """Publish with one progress bar per file (on stderr)."""
    bars: list[tqdm] = []

    def progress(path: str, size: int) -> Any:
        bar = tqdm(total=size, desc=path, unit="B", unit_scale=True, leave=False)
        bars.append(bar)
        return bar.update

    try:
        publish(open_store(store_uri, options), manifest, sources, aliases, progress, by=actor(None))
    finally:
        for bar in bars:
            bar.close()
