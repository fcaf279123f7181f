"""Typed errors raised by the loader; the HTTP layer maps them to status codes in one table."""

from __future__ import annotations

from pydantic import ValidationError


class ModelfnError(Exception):
    """Base class: the message is safe to show to a client (never echoes request data)."""

    retryable = False


class InvalidArgument(ModelfnError):
    """A bad command-line argument or input file (evaluation set, gate, drift reference)."""


class InvalidURI(ModelfnError):
    """A model or store URI that cannot be parsed."""


class StoreConfigError(ModelfnError):
    """A backend is missing its SDK or a required setting."""


class ArtifactNotFound(ModelfnError):
    """A manifest, file, version or alias does not exist in the store."""


class AlreadyExists(ModelfnError):
    """A conditional write found the object already present (versions are immutable)."""


class AliasStateError(ModelfnError):
    """The alias is not in the state a move needs (no candidate to finish, nothing to roll back)."""


class DigestMismatch(ModelfnError):
    """Downloaded bytes do not match the manifest's sha256 or size."""


class ManifestInvalid(ModelfnError):
    """A manifest that does not parse or violates the schema."""


class StoreUnavailable(ModelfnError):
    """A transient storage error (network, throttling, 5xx): worth retrying."""

    retryable = True


class ObjectChanged(ModelfnError):
    """A read pinned to one object version (generation / ETag) found another one, or none (Azure)."""


class DeviceUnavailable(ModelfnError):
    """The requested device (e.g. cuda) is not available in this process."""


class RuntimeLoadError(ModelfnError):
    """The runtime could not load the model files."""


class InferenceInputError(ModelfnError):
    """Inputs that do not match the model signature (name, shape, datatype)."""


class ModelExecutionError(ModelfnError):
    """The model itself failed on inputs that matched its signature (a server-side fault)."""


class UnsupportedDatatype(ModelExecutionError):
    """A tensor dtype the V2 protocol has no name for (a model output: the server's fault, not the client's)."""


def first_problem(exc: ValidationError, root: str) -> str:
    """``where: what`` for the first error of a pydantic validation (the location, never the value)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or root
    return f"{where}: {first['msg']}"
