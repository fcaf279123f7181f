"""Model URIs: ``scheme://bucket/prefix/name@ref`` where ref is a version or an alias."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from loader.errors import InvalidURI

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
DEFAULT_ALIAS = "latest"
# Content-addressed files live under <name>/_blobs/; REF_RE cannot match it, so no version collides.
BLOBS_DIR = "_blobs"


@dataclass(frozen=True)
class StoreLocation:
    """Where a store lives: scheme, bucket/container (empty for file://) and key prefix."""

    scheme: str
    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        if self.scheme == "file":
            return f"file://{self.prefix}"
        base = f"{self.scheme}://{self.bucket}"
        return f"{base}/{self.prefix}" if self.prefix else base

    def key(self, *parts: str) -> str:
        """Join a key under this location's prefix."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p)


@dataclass(frozen=True)
class ModelURI:
    """A parsed model reference: store location, model name and version-or-alias."""

    store: StoreLocation
    name: str
    ref: str

    def __str__(self) -> str:
        return f"{self.store.uri}/{self.name}@{self.ref}"


def parse_store_uri(uri: str) -> StoreLocation:
    """Parse ``s3://bucket/prefix``, ``gs://...``, ``az://container/prefix`` or ``file:///path``."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not scheme:
        raise InvalidURI("store URI needs a scheme such as s3://, gs://, az:// or file://")
    if parts.query or parts.fragment:
        raise InvalidURI("store URI must not have a query or fragment")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidURI("file:// URIs must be absolute: file:///path/to/store")
        path = unquote(parts.path).rstrip("/") or "/"
        return StoreLocation("file", "", path)
    if not parts.netloc:
        raise InvalidURI(f"{scheme}:// URI needs a bucket or container name")
    prefix = unquote(parts.path).strip("/")
    if any(seg in ("", ".", "..") for seg in prefix.split("/")) and prefix:
        raise InvalidURI("store prefix must not contain empty, '.' or '..' segments")
    return StoreLocation(scheme, parts.netloc, prefix)


def parse_model_uri(uri: str) -> ModelURI:
    """Split ``<store>/<name>[@ref]``; no ``@ref`` means the alias ``latest``."""
    head, sep, ref = uri.rstrip("/").rpartition("@")
    if not sep or "/" in ref:
        head, ref = uri.rstrip("/"), DEFAULT_ALIAS
    store_uri, slash, name = head.rpartition("/")
    if not slash or not name:
        raise InvalidURI("model URI must look like scheme://bucket/prefix/name@version")
    validate_name(name)
    validate_ref(ref)
    location = parse_store_uri(store_uri)
    return ModelURI(location, name, ref)


def validate_name(name: str) -> str:
    """Model names: lowercase letters, digits, '.', '_' and '-'."""
    if not NAME_RE.match(name):
        raise InvalidURI("model name must match [a-z0-9][a-z0-9._-]*")
    return name


def validate_ref(ref: str) -> str:
    """Versions and aliases: letters, digits, '.', '_', '+' and '-' (no slashes)."""
    if not REF_RE.match(ref) or ref == "aliases":
        raise InvalidURI("version or alias must match [A-Za-z0-9][A-Za-z0-9._+-]* and not be 'aliases'")
    return ref
