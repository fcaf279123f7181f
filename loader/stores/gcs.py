"""``gs://bucket/prefix`` stores on Google Cloud Storage (or an emulator via ``STORAGE_EMULATOR_HOST``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any

from loader.errors import AlreadyExists, ArtifactNotFound, ModelfnError, StoreConfigError, StoreUnavailable
from loader.stores.base import CHUNK_SIZE, Progress, install_hint, translated
from loader.uri import StoreLocation

# (connect, read) seconds: a dead endpoint surfaces as StoreUnavailable quickly; callers retry.
TIMEOUT = (3.0, 20.0)
# Ranged GETs are fetched in windows at least this large so small chunk sizes don't mean one
# HTTP request per chunk; memory stays bounded by the window.
FETCH_WINDOW = 8 * 1024 * 1024
# Resumable-upload chunk size for large files (a multiple of 256 KiB, as the API requires).
UPLOAD_CHUNK = 8 * 1024 * 1024


class GCSStore:
    """GCS via google-cloud-storage; the SDK is imported only when a gs:// store opens."""

    def __init__(self, location: StoreLocation, options: dict[str, str | None]) -> None:
        self.location = location
        try:
            import google.api_core.exceptions
            import google.auth.exceptions
            import requests.exceptions
            from google.cloud import storage
            from google.cloud.storage import exceptions as storage_exceptions
        except ImportError:
            raise StoreConfigError(f"gs:// stores need google-cloud-storage: {install_hint('gcs')}") from None
        self._api = google.api_core.exceptions
        self._auth = google.auth.exceptions
        self._transient: tuple[type[BaseException], ...] = (
            requests.exceptions.RequestException,
            storage_exceptions.InvalidResponse,
            storage_exceptions.DataCorruption,
            ConnectionError,
            TimeoutError,
        )
        # The SDK reads STORAGE_EMULATOR_HOST itself and then uses anonymous credentials and
        # GOOGLE_CLOUD_PROJECT; otherwise it uses Application Default Credentials.
        with self._errors(""):
            try:
                client = storage.Client()
            except OSError as exc:  # the project could not be determined
                raise StoreConfigError(f"cannot create a GCS client: {exc}") from None
        self._bucket: Any = client.bucket(location.bucket)

    def read_bytes(self, key: str) -> bytes:
        """Whole small object."""
        with self._errors(key):
            data: bytes = self._blob(key).download_as_bytes(retry=None, timeout=TIMEOUT)
            return data

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Stream with ranged GETs pinned to one generation, so a concurrent overwrite can't mix bytes."""
        with self._errors(key):
            blob = self._blob(key)
            blob.reload(retry=None, timeout=TIMEOUT)
            size, generation = int(blob.size or 0), blob.generation
            window = max(chunk_size, FETCH_WINDOW // chunk_size * chunk_size)
            for start in range(0, size, window):
                data = blob.download_as_bytes(
                    start=start,
                    end=min(start + window, size) - 1,
                    checksum=None,  # the manifest's sha256 covers the whole file
                    if_generation_match=generation,
                    retry=None,
                    timeout=TIMEOUT,
                )
                for offset in range(0, len(data), chunk_size):
                    yield data[offset : offset + chunk_size]

    def iter_version(self, key: str, version: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Stream generation ``version`` only (``ifGenerationMatch`` on every GET); else ``ObjectChanged``."""
        from loader.errors import ObjectChanged  # local: keeps this addition apart from the module imports

        changed = ObjectChanged(f"{self.location.uri}/{key} is no longer generation {version}")
        with self._errors(key):
            blob = self._blob(key)
            try:
                blob.reload(if_generation_match=int(version), retry=None, timeout=TIMEOUT)
            except self._api.PreconditionFailed:
                raise changed from None
            if str(blob.generation) != version:  # servers that ignore the precondition (the emulator)
                raise changed
            size = int(blob.size or 0)
            window = max(chunk_size, FETCH_WINDOW // chunk_size * chunk_size)
            for start in range(0, size, window):
                try:
                    data = blob.download_as_bytes(
                        start=start,
                        end=min(start + window, size) - 1,
                        checksum=None,
                        if_generation_match=int(version),
                        retry=None,
                        timeout=TIMEOUT,
                    )
                except self._api.PreconditionFailed:
                    raise changed from None
                for offset in range(0, len(data), chunk_size):
                    yield data[offset : offset + chunk_size]

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        """Write an object; ``if_absent`` uses ``ifGenerationMatch=0`` so GCS rejects a second writer."""
        with self._errors(key, conditional=if_absent):
            self._blob(key).upload_from_string(
                data, if_generation_match=0 if if_absent else None, retry=None, timeout=TIMEOUT
            )

    def put_file(self, key: str, path: Path, *, progress: Progress | None = None) -> None:
        """Upload a file (resumable in chunks when large), reporting bytes read for sending."""
        blob = self._blob(key)
        blob.chunk_size = UPLOAD_CHUNK
        size = path.stat().st_size
        with self._errors(key), path.open("rb") as handle:
            source: Any = _CountingReader(handle, progress) if progress else handle
            blob.upload_from_file(source, size=size, rewind=False, retry=None, timeout=TIMEOUT)

    def exists(self, key: str) -> bool:
        """True when the object exists."""
        with self._errors(key):
            found: bool = self._blob(key).exists(retry=None, timeout=TIMEOUT)
            return found

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix``, relative to the store prefix."""
        full = self.location.key(prefix)
        strip = len(self.location.prefix) + 1 if self.location.prefix else 0
        with self._errors(prefix):
            blobs = self._bucket.list_blobs(prefix=f"{full}/" if full else None, retry=None, timeout=TIMEOUT)
            for blob in blobs:
                if not blob.name.endswith("/"):  # console-made "folder" placeholders
                    yield blob.name[strip:]

    def _blob(self, key: str) -> Any:
        return self._bucket.blob(self.location.key(key))

    def _errors(self, key: str, *, conditional: bool = False) -> AbstractContextManager[None]:
        """Translate google-cloud exceptions into the store error contract."""
        return translated(self._map, f"{self.location.uri}/{key}", conditional)

    def _map(self, exc: Exception, where: str, conditional: bool) -> ModelfnError | None:
        api, name = self._api, type(exc).__name__
        if isinstance(exc, api.PreconditionFailed):
            if conditional:
                return AlreadyExists(f"already exists: {where}")
            return StoreUnavailable(f"object changed while reading {where}")
        if isinstance(exc, api.NotFound):
            return ArtifactNotFound(f"not found: {where} (or bucket {self.location.bucket!r} missing)")
        if isinstance(exc, (api.TooManyRequests, api.ServerError, self._auth.TransportError, *self._transient)):
            return StoreUnavailable(f"GCS unreachable for {where}: {name}")
        if isinstance(exc, self._auth.DefaultCredentialsError):
            return StoreConfigError(f"no Google credentials for {where}: {exc}")
        if isinstance(exc, self._auth.RefreshError):
            if getattr(exc, "retryable", False):
                return StoreUnavailable(f"GCS token refresh failed for {where}")
            return StoreConfigError(f"Google credentials rejected for {where}")
        if isinstance(exc, api.GoogleAPICallError):
            return StoreConfigError(f"GCS refused the request for {where}: {exc.code}")
        return None


class _CountingReader:
    """A read-only file wrapper that reports how many bytes the uploader has consumed."""

    def __init__(self, handle: IO[bytes], progress: Progress) -> None:
        self._handle = handle
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        if data:
            self._progress(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)
