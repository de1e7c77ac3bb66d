"""What the client's REST requests share (orders, the change feed): the relay's HTTP base
address, the check of the bearer token, and the body of an error answer."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from .errors import InvalidQuery

_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def rest_base(base_url: str) -> str:
    """``ws(s)://host:port[/v1/sync]`` or ``http(s)://host:port[/]`` -> ``http(s)://host:port``.

    A path prefix (a relay behind a proxy at ``/sync-relay``) is kept."""
    if not isinstance(base_url, str):
        raise InvalidQuery("base_url", f"must be a string, not {type(base_url).__name__}")
    parts = urlsplit(base_url)
    scheme = _SCHEMES.get(parts.scheme)
    if scheme is None or not parts.hostname:
        raise InvalidQuery("base_url", f"{base_url[:80]!r} is not a ws://, wss://, http:// or https:// URL")
    if parts.username is not None or parts.query or parts.fragment:
        raise InvalidQuery("base_url", f"{base_url[:80]!r}: give the relay's base URL, no credentials, no query")
    path = parts.path.rstrip("/").removesuffix("/v1/sync")
    return f"{scheme}://{parts.netloc}{path}"


def check_token(token: str) -> None:
    """Refuse a token that cannot go in an ``Authorization: Bearer`` header as it is."""
    if not token.isascii() or not token.isprintable() or " " in token:
        raise InvalidQuery("token", "must be printable ASCII without spaces")


def problem_body(raw: bytes) -> dict[str, object]:
    """An error answer's body as a problem object, or an empty one when it is not JSON."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}  # not JSON (a proxy's page): the status says enough
    return parsed if isinstance(parsed, dict) else {}
