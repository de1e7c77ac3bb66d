"""Which browser origins may use the relay: the ``--cors-origin`` list, read one way everywhere.

Browsers send ``Origin`` on cross-origin HTTP requests (CORS, checked by the composition
root's middleware) and on every WebSocket handshake (checked by the sync endpoint with
:func:`websocket_origin_allowed`). Tokens are never ambient credentials (no cookies), so the
origin check does not replace the token check; it keeps pages the operator did not list
from using the relay from a browser.
"""

from __future__ import annotations

from collections.abc import Collection

ANY_ORIGIN = "*"


def origin_listed(origin: str, allowed: Collection[str]) -> bool:
    """Whether ``origin`` is one of ``allowed`` (or ``allowed`` holds ``*``)."""
    return ANY_ORIGIN in allowed or origin in allowed


def same_origin(origin: str, host: str | None) -> bool:
    """Whether the page that sent ``origin`` was served by this host (its ``Host`` header).

    Only the authority is compared, not the scheme: behind a proxy that ends TLS, the page
    is ``https://`` while the relay hears plain HTTP on the same ``Host``.
    """
    if host is None or "://" not in origin:
        return False
    return origin.split("://", 1)[1].lower() == host.lower()


def websocket_origin_allowed(origin: str | None, host: str | None, allowed: Collection[str]) -> bool:
    """Whether a WebSocket handshake with this ``Origin`` may proceed.

    With no origins configured, any may (the relay's default). Otherwise a handshake
    without ``Origin`` (not a browser: the Python client, Node peers), a page of the
    relay's own origin (the demo, the docs page) and a listed origin may; any other
    browser page may not.
    """
    if not allowed or origin is None:
        return True
    return origin_listed(origin, allowed) or same_origin(origin, host)
