"""Guest sessions: a new guest cart and a token for it alone, for a storefront's anonymous shopper.

``POST /v1/tenants/{tenant}/guest-sessions`` needs no token; it is open only for the tenants
named by ``--guest-tenant``. The token it mints grants ``{tenant}/cart/{id}`` (read and write)
and nothing else, with the subject ``guest:{id}``, for ``--guest-session-seconds``. Asked
for with ``{"cookie": true}``, the token comes as the HTTP-only ``syncline_guest`` cookie
(Secure, SameSite=Lax) instead of in the body, so page scripts never see it; REST and the
change feed accept that cookie. The merge endpoint turns the guest cart into a user's cart.
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from syncline.engine.errors import InvalidDocumentName
from syncline.engine.names import DocName, check_part
from syncline.engine.tokens import issue_token
from syncline.server.auth import GUEST_COOKIE
from syncline.server.endpoints import relay_of
from syncline.server.store import StoreUnavailable

from . import bodies
from .bodies import Fields
from .context import Reply, RestContext
from .problems import Problem, validation_problem

GUEST_CART_PREFIX = "guest-"
COOKIE_PATH = "/v1/"


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise validation_problem(field, "must be true or false")
    return value


async def create_guest_session(request: Request) -> Response:
    ctx: RestContext = request.app.state.rest
    relay = relay_of(request.app)
    try:
        tenant = check_part("tenant", request.path_params["tenant"])
    except InvalidDocumentName as exc:
        raise Problem("invalid-document-name", exc.reason) from None
    if tenant not in ctx.settings.guest_tenant:
        raise Problem("forbidden", "guest sessions are not enabled for this tenant")
    body = await bodies.read_json_object(request, ctx.settings.rest_max_body_bytes) \
        if _has_body(request) else {}
    fields = Fields(body)
    cookie = fields.optional("cookie", _flag, False)
    fields.done()

    cart_id = GUEST_CART_PREFIX + secrets.token_hex(12)
    name = DocName(tenant, "cart", cart_id)
    try:
        await relay.lifetimes.start_guest(str(name))
    except StoreUnavailable:
        raise Problem("store-unavailable", headers={"Retry-After": "5"}) from None
    ttl = ctx.settings.guest_session_seconds
    now = time.time()  # the tokens' clock: the one the relay verifies them against
    token = issue_token(relay.secret, tenant, [str(name)], ttl_seconds=ttl, subject=f"guest:{cart_id}", now=now)
    reply = Reply(201, {
        "tenant": tenant,
        "cart": cart_id,
        "token": None if cookie else token,
        "cookie": cookie,
        "expires_at": (math.floor(now) + ttl) * 1000,
    }, {"Location": f"/v1/tenants/{tenant}/carts/{cart_id}", "Cache-Control": "no-store"})
    response = reply.response()
    if cookie:
        response.set_cookie(GUEST_COOKIE, token, max_age=ttl, path=COOKIE_PATH, secure=True, httponly=True,
                            samesite="lax")
    return response


def clear_cookie(response: Response) -> None:
    """Make the browser drop the guest cookie (its cart was merged into a user's)."""
    response.delete_cookie(GUEST_COOKIE, path=COOKIE_PATH, secure=True, httponly=True, samesite="lax")


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return request.headers.get("transfer-encoding") is not None or (length is not None and length != "0")
