"""Exit codes of the ``modelfn`` CLI, one per kind of failure (README "CLI exit codes")."""

from __future__ import annotations

from loader import errors as le

# Scripts and CI branch on these, so they never change meaning.
EXIT_FAILED = 1  # anything else, e.g. the service answered a prediction with an error
EXIT_USAGE = 2  # bad arguments or input (click uses 2 for its own usage errors too)
EXIT_NOT_FOUND = 3  # no such model, version, alias, file or bucket
EXIT_CONFLICT = 4  # the version (or a ref of that name) already exists; the alias cannot make that move
EXIT_INTEGRITY = 5  # stored bytes or manifests that fail verification
EXIT_UNAVAILABLE = 6  # the store or service is unreachable or overloaded: worth retrying
EXIT_CONFIG = 7  # missing SDK, credentials or setting; access denied
EXIT_REFUSED = 8  # a validation gate failed, or a protected alias refused the version

# Most specific first.
EXIT_BY_ERROR: list[tuple[type[Exception], int]] = [
    (le.StoreUnavailable, EXIT_UNAVAILABLE),
    (le.ArtifactNotFound, EXIT_NOT_FOUND),
    (le.AlreadyExists, EXIT_CONFLICT),
    (le.AliasStateError, EXIT_CONFLICT),
    (le.DigestMismatch, EXIT_INTEGRITY),
    (le.ManifestInvalid, EXIT_INTEGRITY),
    (le.StoreConfigError, EXIT_CONFIG),
    (le.InvalidURI, EXIT_USAGE),
    (le.InvalidArgument, EXIT_USAGE),
    (le.InferenceInputError, EXIT_USAGE),
    (le.RuntimeLoadError, EXIT_USAGE),
]


def exit_code_for(exc: le.ModelfnError) -> int:
    """The documented exit code for a typed error."""
    for kind, code in EXIT_BY_ERROR:
        if isinstance(exc, kind):
            return code
    return EXIT_UNAVAILABLE if exc.retryable else EXIT_FAILED
