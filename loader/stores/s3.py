"""``s3://bucket/prefix`` stores on Amazon S3 (or any S3 API such as moto, via ``AWS_ENDPOINT_URL``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing
from pathlib import Path
from typing import Any

from loader.errors import AlreadyExists, ArtifactNotFound, ModelfnError, StoreConfigError, StoreUnavailable
from loader.stores.base import CHUNK_SIZE, Progress, install_hint, translated
from loader.uri import StoreLocation

# Small, explicit timeouts: a dead endpoint must surface as StoreUnavailable in seconds, and the
# read timeout is per socket read, so large objects still stream fine.
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 20.0

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_CONFLICT = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "429", "503"}
_CONFIG_ERRORS = (
    "NoCredentialsError",
    "PartialCredentialsError",
    "CredentialRetrievalError",
    "NoRegionError",
)
_TRANSIENT_ERRORS = ("HTTPClientError", "ConnectionError", "IncompleteReadError")


class S3Store:
    """S3 via boto3's standard credential chain; boto3 is imported only when an s3:// store opens."""

    def __init__(self, location: StoreLocation, options: dict[str, str | None]) -> None:
        self.location = location
        try:
            import boto3
            import botocore.config
            import botocore.exceptions
        except ImportError:
            raise StoreConfigError(f"s3:// stores need boto3: {install_hint('s3')}") from None
        self._exc = botocore.exceptions
        # total_max_attempts=1 means no retries at all (botocore's legacy "max_attempts" counts
        # retries, so max_attempts=1 would still retry once): callers own the retry policy.
        config = botocore.config.Config(
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
        # The endpoint (AWS_ENDPOINT_URL), region and credentials all come from boto3's own chain.
        self._client: Any = boto3.session.Session().client("s3", config=config)

    def read_bytes(self, key: str) -> bytes:
        """Whole small object."""
        with self._errors(key):
            response = self._client.get_object(Bucket=self.location.bucket, Key=self.location.key(key))
            with closing(response["Body"]) as body:
                data: bytes = body.read()
                return data

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Stream an object; errors raised mid-stream are mapped too."""
        with self._errors(key):
            response = self._client.get_object(Bucket=self.location.bucket, Key=self.location.key(key))
            with closing(response["Body"]) as body:
                yield from body.iter_chunks(chunk_size)

    def iter_version(self, key: str, version: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Stream the object only while its ETag is ``version`` (``If-Match``); else ``ObjectChanged``."""
        from loader.errors import ObjectChanged  # local: keeps this addition apart from the module imports

        with self._errors(key):
            try:
                response = self._client.get_object(
                    Bucket=self.location.bucket,
                    Key=self.location.key(key),
                    IfMatch=f'"{version.strip(chr(34))}"',  # EventBridge sends it unquoted; If-Match wants quotes
                )
            except self._exc.ClientError as exc:
                if _status(exc) == 412:
                    raise ObjectChanged(f"{self.location.uri}/{key} no longer has ETag {version}") from None
                raise
            with closing(response["Body"]) as body:
                yield from body.iter_chunks(chunk_size)

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        """Write an object; ``if_absent`` uses ``If-None-Match: *`` so S3 itself rejects a second writer."""
        extra = {"IfNoneMatch": "*"} if if_absent else {}
        with self._errors(key, conditional=if_absent):
            self._client.put_object(Bucket=self.location.bucket, Key=self.location.key(key), Body=data, **extra)

    def put_file(self, key: str, path: Path, *, progress: Progress | None = None) -> None:
        """Upload a file (multipart when large), reporting bytes sent to ``progress``."""
        callback = _serialised(progress) if progress else None
        with self._errors(key):
            self._client.upload_file(
                str(path),
                self.location.bucket,
                self.location.key(key),
                Callback=callback,
            )

    def exists(self, key: str) -> bool:
        """True when the object exists."""
        with self._errors(key):
            try:
                self._client.head_object(Bucket=self.location.bucket, Key=self.location.key(key))
            except self._exc.ClientError as exc:
                # HEAD has no error body: a 404 is either the key or the bucket, and both mean "no".
                if _status(exc) == 404:
                    return False
                raise
        return True

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix``, relative to the store prefix."""
        full = self.location.key(prefix)
        strip = len(self.location.prefix) + 1 if self.location.prefix else 0
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors(prefix):
            pages = paginator.paginate(Bucket=self.location.bucket, Prefix=f"{full}/" if full else "")
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"][strip:]

    def _errors(self, key: str, *, conditional: bool = False) -> AbstractContextManager[None]:
        """Translate botocore/boto3 exceptions into the store error contract."""
        return translated(self._map, f"{self.location.uri}/{key}", conditional)

    def _map(self, exc: Exception, where: str, conditional: bool) -> ModelfnError | None:
        # upload_file wraps the ClientError in S3UploadFailedError without chaining it as a cause.
        if type(exc).__name__ == "S3UploadFailedError" and exc.__context__ is not None:
            exc = exc.__context__  # type: ignore[assignment]
        if isinstance(exc, self._exc.ClientError):
            return self._map_client_error(exc, where, conditional)
        name = type(exc).__name__
        if name in _CONFIG_ERRORS:
            return StoreConfigError(f"no usable AWS credentials or region for {where}: {name}")
        if isinstance(exc, tuple(getattr(self._exc, n) for n in _TRANSIENT_ERRORS)):
            return StoreUnavailable(f"S3 unreachable for {where}: {name}")
        return None

    def _map_client_error(self, exc: Any, where: str, conditional: bool) -> ModelfnError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = _status(exc)
        if code == "NoSuchBucket":
            return ArtifactNotFound(f"bucket {self.location.bucket!r} does not exist ({where})")
        if conditional and (code in _CONFLICT or status == 412):
            return AlreadyExists(f"already exists: {where}")
        if code in _NOT_FOUND or status == 404:
            return ArtifactNotFound(f"not found: {where}")
        if code in _THROTTLED or status == 429 or status >= 500:
            return StoreUnavailable(f"S3 error for {where}: {code or status}")
        return StoreConfigError(f"S3 refused the request for {where}: {code or status}")


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _serialised(progress: Progress) -> Progress:
    """Multipart uploads call back from worker threads; serialise so callers need no lock."""
    lock = threading.Lock()

    def report(sent: int) -> None:
        with lock:
            progress(sent)

    return report
