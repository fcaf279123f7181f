"""A tiny HTTP client for ``modelfn predict`` (standard library only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlsplit

from loader.errors import ModelfnError


class ServiceUnreachable(ModelfnError):
    """The service did not answer (connection refused, DNS, timeout)."""

    retryable = True


def post_predict(url: str, model: str, instances: list[Any], timeout: float) -> tuple[int, Any]:
    """POST instances to ``/v1/models/<model>:predict``; returns (status, JSON body)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ModelfnError("--url must start with http:// or https://")
    endpoint = f"{url.rstrip('/')}/v1/models/{quote(model, safe='')}:predict"
    data = json.dumps({"instances": instances}).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(endpoint, data=data, headers=headers)  # noqa: S310  # scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # scheme checked above
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except json.JSONDecodeError:
            return exc.code, {"error": body.decode(errors="replace")[:500]}
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise ServiceUnreachable(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
