"""The one internal event model every cloud's payload is normalised into before any logic runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectCreated:
    """An object (version) was created: where it is, which version, how big."""

    scheme: str  # "gs" | "s3" | "az": the store scheme the object lives in
    bucket: str  # bucket or container
    key: str  # object key / blob name, already URL-decoded
    version: str  # GCS generation, S3 version-id (else sequencer/etag), Azure eTag
    size: int | None
    etag: str | None
    origin: str  # which delivery format it came from (for logs)

    @property
    def uri(self) -> str:
        """The object's store URI (``scheme://bucket/key``)."""
        return f"{self.scheme}://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class Ignored:
    """An event we understood but do not act on (deletes, metadata updates, ...): answered 2xx."""

    origin: str
    event_type: str
    reason: str


@dataclass(frozen=True)
class Validation:
    """Event Grid's SubscriptionValidationEvent: answered with ``{"validationResponse": code}``."""

    code: str


Event = ObjectCreated | Ignored | Validation
