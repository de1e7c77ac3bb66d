"""Every ETag rule of the REST adapter: how a tag is made, and If-Match / If-None-Match.

Tags are strong and derived from content, never from a counter: equal content gives
equal tags on any node, after restarts. A cart's tag is a digest of its whole JSON
representation (prices included: a price change changes the tag); a ledger's is the
engine's digest of its counted adjustments and decisions (:attr:`LedgerView.digest`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from syncline.engine import LedgerView


def body_etag(body: dict[str, Any]) -> str:
    """A strong ETag of a representation: equal bodies, equal tags."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return '"' + hashlib.sha256(canonical.encode()).hexdigest()[:32] + '"'


def ledger_etag(view: LedgerView) -> str:
    """A strong ETag of a ledger's content (computed once per view, by the view)."""
    return f'"{view.digest}"'


def if_match_allows(header: str | None, current: str) -> bool:
    """RFC 9110 If-Match with strong comparison; no header means no precondition."""
    if header is None:
        return True
    tags = [tag.strip() for tag in header.split(",")]
    return "*" in tags or current in tags


def not_modified(request: Request, tag: str) -> Response | None:
    """A 304 when the request's If-None-Match names ``tag`` (compared weakly, RFC 9110 13.1.2)."""
    header = request.headers.get("if-none-match")
    if header is not None and (
        header.strip() == "*" or tag in [t.strip().removeprefix("W/") for t in header.split(",")]
    ):
        return Response(status_code=304, headers={"ETag": tag})
    return None
