"""``modelfn publish --eval/--gate/--reference`` and protected aliases for ``modelfn promote``."""

from __future__ import annotations

from pathlib import Path

from function.exit_codes import EXIT_REFUSED as EXIT_GATE_FAILED  # README: a gate refused publish or promote
from loader.artifacts import manifest_key
from loader.errors import ArtifactNotFound, InvalidArgument
from loader.evaluate import run_locally
from loader.gates import GateFailed, check_gates, failure_message, parse_gate, protected, require_passed
from loader.manifest import Manifest
from loader.stores.base import Store

__all__ = ["EXIT_GATE_FAILED", "GateFailed", "check_promote", "check_publish_aliases", "evaluate_and_gate"]


def evaluate_and_gate(
    manifest: Manifest,
    sources: dict[str, Path],
    eval_path: Path | None,
    gate_texts: tuple[str, ...],
    reference_path: Path | None,
    batch: int,
    device: str,
) -> Manifest:
    """Run the model on the evaluation set / reference, record the results, raise GateFailed if a gate fails."""
    gates = [parse_gate(text) for text in gate_texts]
    if gates and eval_path is None:
        raise InvalidArgument("--gate needs an evaluation set (--eval data.npz)")
    if eval_path is None and reference_path is None:
        return manifest
    run = run_locally(manifest, sources, eval_path, reference_path, batch, device)
    data = manifest.model_dump(mode="json")
    evaluation = None
    if eval_path is not None and run.dataset_sha256 is not None:
        evaluation = check_gates(gates, run.metrics, run.dataset_sha256, run.examples)
        data["provenance"]["evaluation"] = evaluation.model_dump(mode="json")
    if run.reference is not None:
        data["reference"] = run.reference.model_dump(mode="json")
    updated = Manifest.model_validate(data)
    if evaluation is not None and gates and not evaluation.passed:
        raise GateFailed(failure_message(updated, evaluation))
    return updated


def check_publish_aliases(manifest: Manifest, aliases: list[str], configured: str) -> None:
    """Refuse, before anything is uploaded, to point a protected alias at an ungated version."""
    for alias in aliases:
        if protected(alias, configured, flag=False):
            require_passed(manifest, alias)


def check_promote(store: Store, name: str, version: str, alias: str, configured: str, flag: bool) -> None:
    """Refuse to move a protected alias to a version whose recorded gates failed or are missing."""
    if not protected(alias, configured, flag):
        return
    try:
        raw = store.read_bytes(manifest_key(name, version))
    except ArtifactNotFound:
        return  # set_alias reports the missing version with its usual message
    require_passed(Manifest.from_json(raw), alias)
