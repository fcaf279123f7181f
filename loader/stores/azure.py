"""``az://container/prefix`` stores on Azure Blob Storage (or Azurite via a connection string)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from loader.errors import AlreadyExists, ArtifactNotFound, ModelfnError, StoreConfigError, StoreUnavailable
from loader.stores.base import CHUNK_SIZE, Progress, install_hint, translated
from loader.uri import StoreLocation

# Small, explicit timeouts and no SDK retries (the SDK's default is 10): callers own retry policy.
CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 3, "read_timeout": 20, "retry_total": 0}


class AzureBlobStore:
    """Azure Blob via azure-storage-blob; the SDK is imported only when an az:// store opens."""

    def __init__(self, location: StoreLocation, options: dict[str, str | None]) -> None:
        self.location = location
        try:
            import azure.core.exceptions
            from azure.storage.blob import BlobServiceClient
        except ImportError:
            raise StoreConfigError(f"az:// stores need azure-storage-blob: {install_hint('azure')}") from None
        self._exc = azure.core.exceptions
        service = self._service(BlobServiceClient, options)
        self._container: Any = service.get_container_client(location.bucket)

    @staticmethod
    def _service(client_cls: Any, options: dict[str, str | None]) -> Any:
        """A connection string (Azurite, shared key) wins; else the account URL with Entra ID."""
        if connection_string := options.get("azure_connection_string"):
            try:
                return client_cls.from_connection_string(connection_string, **CLIENT_OPTIONS)
            except ValueError:
                # The SDK's message could echo the account key, so it is not passed on.
                raise StoreConfigError("AZURE_STORAGE_CONNECTION_STRING is not a valid connection string") from None
        if account_url := options.get("azure_account_url"):
            try:
                from azure.identity import DefaultAzureCredential
            except ImportError:
                raise StoreConfigError(f"az:// stores need azure-identity: {install_hint('azure')}") from None
            # Managed identity / workload identity on Container Apps; az login on a laptop.
            return client_cls(account_url, credential=DefaultAzureCredential(), **CLIENT_OPTIONS)
        raise StoreConfigError(
            "az:// stores need AZURE_STORAGE_ACCOUNT_URL (https://<account>.blob.core.windows.net) "
            "or AZURE_STORAGE_CONNECTION_STRING"
        )

    def read_bytes(self, key: str) -> bytes:
        """Whole small object."""
        with self._errors(key):
            data: bytes = self._blob(key).download_blob().readall()
            return data

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Stream an object; the SDK pins the ETag across its ranged GETs."""
        with self._errors(key):
            yield from _rechunk(self._blob(key).download_blob().chunks(), chunk_size)

    def iter_version(self, key: str, version: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Stream the blob only while its ETag is ``version`` (``If-Match``); else ``ObjectChanged``."""
        from azure.core import MatchConditions

        from loader.errors import ObjectChanged  # local: keeps this addition apart from the module imports

        with self._errors(key):
            try:
                download = self._blob(key).download_blob(etag=version, match_condition=MatchConditions.IfNotModified)
                yield from _rechunk(download.chunks(), chunk_size)  # later ranged GETs carry the ETag too
            except self._exc.ResourceModifiedError:
                raise ObjectChanged(f"{self.location.uri}/{key} no longer has ETag {version}") from None

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        """Write an object; ``if_absent`` sends ``If-None-Match: *`` (``overwrite=False``)."""
        with self._errors(key, conditional=if_absent):
            self._blob(key).upload_blob(data, overwrite=not if_absent)

    def put_file(self, key: str, path: Path, *, progress: Progress | None = None) -> None:
        """Upload a file in blocks, reporting bytes sent to ``progress``."""
        hook = _delta_hook(progress) if progress else None
        with self._errors(key), path.open("rb") as handle:
            self._blob(key).upload_blob(
                handle, overwrite=True, length=path.stat().st_size, progress_hook=hook, max_concurrency=1
            )

    def exists(self, key: str) -> bool:
        """True when the object exists."""
        with self._errors(key):
            found: bool = self._blob(key).exists()
            return found

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix``, relative to the store prefix."""
        full = self.location.key(prefix)
        strip = len(self.location.prefix) + 1 if self.location.prefix else 0
        with self._errors(prefix):
            for name in self._container.list_blob_names(name_starts_with=f"{full}/" if full else None):
                yield name[strip:]

    def _blob(self, key: str) -> Any:
        return self._container.get_blob_client(self.location.key(key))

    def _errors(self, key: str, *, conditional: bool = False) -> AbstractContextManager[None]:
        """Translate azure-core exceptions into the store error contract."""
        return translated(self._map, f"{self.location.uri}/{key}", conditional)

    def _map(self, exc: Exception, where: str, conditional: bool) -> ModelfnError | None:
        e, name = self._exc, type(exc).__name__
        if isinstance(exc, e.ResourceExistsError) and conditional:
            return AlreadyExists(f"already exists: {where}")
        if isinstance(exc, e.ResourceNotFoundError):
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                return ArtifactNotFound(f"container {self.location.bucket!r} does not exist ({where})")
            return ArtifactNotFound(f"not found: {where}")
        if isinstance(exc, e.ClientAuthenticationError):
            return StoreConfigError(f"Azure credentials rejected or unavailable for {where}: {name}")
        if isinstance(exc, e.ServiceRequestError | e.ServiceResponseError):
            return StoreUnavailable(f"Azure Blob unreachable for {where}: {name}")
        if isinstance(exc, e.HttpResponseError):
            status = exc.status_code
            # No status means the response broke mid-body (e.g. IncompleteReadError): transient.
            if status is None or status == 429 or status >= 500:
                return StoreUnavailable(f"Azure Blob error for {where}: {status or name}")
            return StoreConfigError(f"Azure Blob refused the request for {where}: {status}")
        return None


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Re-slice the SDK's chunks (4 MiB, or 32 MiB first) into the caller's chunk size."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def _delta_hook(progress: Progress) -> Any:
    """The SDK reports cumulative bytes; the protocol wants increments."""
    sent = 0

    def hook(current: int, total: int | None) -> None:
        nonlocal sent
        if current > sent:
            progress(current - sent)
            sent = current

    return hook
