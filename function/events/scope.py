"""What an event may touch: the configured input, output and model prefixes, and safe keys only."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from enum import StrEnum

from function.errors import EventRefused, Unauthorized
from function.events.model import ObjectCreated
from function.settings import EventsAuth, Settings
from loader.uri import ModelURI, StoreLocation, parse_store_uri

SECRET_HEADER = "X-Modelfn-Event-Secret"  # noqa: S105 (a header name, not a secret)
MAX_KEY_LENGTH = 1024  # S3 and GCS limit keys to 1024 bytes; Azure blob names to 1024 characters
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CLOUD_SCHEMES = ("gs", "s3", "az")


class Target(StrEnum):
    INPUT = "input"  # a batch job
    MODEL = "model"  # a manifest or alias of the served model
    OWN = "own"  # our own outputs / markers (same-bucket triggers see them): ignored
    OUTSIDE = "outside"  # a configured bucket, but no configured prefix: ignored, never fetched


@dataclass(frozen=True)
class Scope:
    """The locations events may name, resolved once from the settings."""

    inputs: StoreLocation | None
    outputs: StoreLocation | None
    model: ModelURI
    secret: bytes | None
    platform_auth: bool = False  # EVENTS_AUTH=platform: the platform authenticated the caller

    @classmethod
    def from_settings(cls, settings: Settings, model: ModelURI) -> Scope:
        """Parse the configured URIs (already validated by ``Settings``)."""
        inputs = parse_store_uri(settings.events_input_uri) if settings.events_input_uri else None
        outputs = parse_store_uri(settings.events_output_uri) if settings.events_output_uri else None
        secret = settings.events_secret.encode() if settings.events_secret else None
        return cls(inputs, outputs, model, secret, settings.events_auth is EventsAuth.PLATFORM)

    def authenticate(self, presented: str | None, handshake: bool) -> bool:
        """True for an authenticated caller; False for a secret-less handshake (validation only); else 401.

        Runs on headers alone, before the body is read: an unauthenticated caller learns nothing about
        the event formats and cannot make the service parse anything.
        """
        if self.secret is None:
            if self.platform_auth:
                return True
            raise Unauthorized("events are refused: no EVENTS_SECRET is configured and EVENTS_AUTH is not platform")
        if presented is None and handshake:
            return False  # Event Grid may send its subscription validation without delivery headers
        if not presented or not hmac.compare_digest(presented.encode(errors="replace"), self.secret):
            raise Unauthorized(f"missing or wrong {SECRET_HEADER} header")
        return True

    def classify(self, event: ObjectCreated) -> tuple[Target, str]:
        """Where the object belongs and its key relative to that prefix; refuses foreign buckets and bad keys."""
        check_key(event.key)
        matches = [
            (Target.INPUT, self.inputs),
            (Target.MODEL, _model_area(self.model)),
            (Target.OWN, self.outputs),
        ]
        known_bucket = False
        for target, location in matches:
            if location is None or (location.scheme, location.bucket) != (event.scheme, event.bucket):
                continue
            known_bucket = True
            relative = _relative(event.key, location.prefix)
            if relative:
                return target, relative
        if not known_bucket:
            raise EventRefused("event names a bucket or container this function is not configured for")
        return Target.OUTSIDE, event.key


def check_key(key: str) -> None:
    """Reject keys that could escape a prefix or confuse a path: '..', '.', empty segments, control chars."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise EventRefused("object key is empty or too long")
    if key.startswith("/") or "\\" in key or _CONTROL.search(key):
        raise EventRefused("object key must be relative, without backslashes or control characters")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise EventRefused("object key must not contain empty, '.' or '..' segments")


def _relative(key: str, prefix: str) -> str | None:
    prefix = prefix.strip("/")
    if not prefix:
        return key
    return key[len(prefix) + 1 :] if key.startswith(f"{prefix}/") else None


def _model_area(model: ModelURI) -> StoreLocation | None:
    if model.store.scheme not in CLOUD_SCHEMES:
        return None
    return StoreLocation(model.store.scheme, model.store.bucket, model.store.key(model.name))
