"""Loading a whole release (the alias's primary and its candidate) at start and when the alias moves."""

from __future__ import annotations

import logging
from collections.abc import Callable

from function.holder import LoadedModel, Phase
from function.metrics import Metrics
from function.release import assemble, members, quiet, target_of
from function.serving import loader_for
from function.settings import Settings
from loader.artifacts import read_alias
from loader.errors import ModelfnError
from loader.manifest import AliasRecord
from loader.stores import open_store
from loader.uri import ModelURI

log = logging.getLogger("modelfn.model")


def pinned(uri: ModelURI, version: str) -> ModelURI:
    """The same model at one immutable version."""
    return ModelURI(uri.store, uri.name, version)


def read_record(uri: ModelURI, settings: Settings) -> AliasRecord:
    """The alias record ``uri`` names (its primary and candidate), with the fetch retries."""
    store = open_store(uri.store, settings.store_options())
    return read_alias(store, uri.name, uri.ref, settings.fetch_retries, settings.fetch_retry_budget_seconds)


def release_loader(
    uri: ModelURI, settings: Settings, metrics: Metrics
) -> Callable[[Callable[[Phase], None]], LoadedModel]:
    """The holder's loader: the primary (with the offline fallback of ``loader_for``), then its candidate.

    A candidate that fails to load leaves the primary serving alone; the next alias check tries again.
    """
    load_primary = loader_for(uri, settings, metrics)

    def load(set_phase: Callable[[Phase], None]) -> LoadedModel:
        primary = load_primary(set_phase)
        if primary.version == uri.ref or primary.artifact.offline:
            return primary  # a pinned version, or no store to ask about a candidate
        try:
            record = read_record(uri, settings)
            if record.version != primary.version or record.candidate is None:
                return primary  # moved since the primary resolved: the next check catches up
            model, _ = assemble(record, [primary], _loader(uri, settings, metrics))
        except Exception as exc:  # the primary is good; a bad candidate must not keep it from serving
            _not_loaded(uri, primary, exc)
            return primary
        return model

    return load


def check(uri: ModelURI, current: LoadedModel, settings: Settings, metrics: Metrics) -> LoadedModel | None:
    """The release the alias names now, or None when it is what ``current`` serves; loads what is missing.

    Raises when the store cannot be read or a version does not load (the caller keeps ``current``).
    """
    record = read_record(uri, settings)
    if record.target() == target_of(current):
        return None
    model, fresh = assemble(record, members(current), _loader(uri, settings, metrics))
    if fresh:
        log.info("release versions loaded", extra={"fields": {"model": str(uri), "versions": fresh}})
    return model


def _loader(uri: ModelURI, settings: Settings, metrics: Metrics) -> Callable[[str, bool], LoadedModel]:
    """Load one pinned version of ``uri``, as a primary or as a candidate, beside the serving release."""
    return lambda version, candidate: loader_for(pinned(uri, version), settings, metrics, candidate)(quiet)


def describe(model: LoadedModel) -> str:
    """``1.0.0`` or ``1.0.0 + canary 1.1.0 (10%)``, for logs."""
    split = model.split
    if split is None:
        return model.version
    return f"{model.version} + {split.mode} {split.candidate.version} ({split.share:g}%)"


def _not_loaded(uri: ModelURI, primary: LoadedModel, exc: Exception) -> None:
    error = str(exc) if isinstance(exc, ModelfnError) else f"{type(exc).__name__}: {exc}"
    log.error(
        "candidate version not loaded; the primary serves alone",
        extra={"fields": {"model": str(uri), "serving": primary.version, "error": error}},
    )
