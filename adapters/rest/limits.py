"""The REST rate limit at the edge: every request under ``/v1/tenants/{tenant}/`` takes a token.

The subject is the request's token holder (its ``sub``, else the token itself); a request
without a valid token of the path's tenant is left to its handler's 401/403 and takes
nothing, except the one request made without any token, creating a guest session, whose
subject is the client's address. Over the limit the answer is 429 ``rate-limited`` with
``Retry-After`` (see :mod:`syncline.server.ratelimit`).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send
from syncline.server.errors import Refused
from syncline.server.ratelimit import RateLimiter

from .problems import Problem

TENANTS_PREFIX = "/v1/tenants/"
GUEST_SESSIONS = "guest-sessions"


class RateLimitMiddleware:
    """Refuses REST requests over the limits of ``app.state.limiter`` (set by the lifespan)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(TENANTS_PREFIX):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        limiter: RateLimiter | None = getattr(state, "limiter", None)
        relay = getattr(state, "relay", None)
        subject = None if limiter is None or relay is None else _subject(scope, relay)
        if subject is not None:
            assert limiter is not None
            tenant, who = subject
            decision = await limiter.take(tenant, who)
            if not decision.allowed:
                assert decision.scope is not None
                seconds = decision.retry_after_seconds()
                problem = Problem("rate-limited", limiter.describe(decision.scope),
                                  headers={"Retry-After": str(seconds)}, retry_after=seconds, scope=decision.scope)
                await problem.response(scope["path"])(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _subject(scope: Scope, relay: object) -> tuple[str, str] | None:
    """``(tenant, subject)`` of the request, or None when it takes no token (see the module doc)."""
    from starlette.requests import Request

    parts = scope["path"][len(TENANTS_PREFIX):].split("/")
    tenant = parts[0]
    if not tenant:
        return None
    request = Request(scope)
    raw_path = bytes(scope.get("raw_path") or scope["path"].encode())
    try:
        grant = relay.admission.tenant(raw_path, b"/", tenant, request.headers,  # type: ignore[attr-defined]
                                       request.query_params, encoded=True, cookies=True)
    except Refused as refusal:
        if refusal.reason == "missing_token" and parts[1:] == [GUEST_SESSIONS] and scope["method"] == "POST":
            client = scope.get("client")
            return tenant, f"addr:{client[0] if client else 'unknown'}"
        return None
    return grant.tenant, grant.writer
