"""Live tenant endpoints: what is connected and in sync, a broadcast to everyone, a clock ping.

- ``GET /v1/tenants/{tenant}/live/sync-state``: per stock location (a page of the tenant's
  stock documents the store holds, in name order), the last change recorded in its ledger
  and its open conflicts; per document kind, what is connected on this node (see
  :mod:`syncline.server.live`). Any token of the tenant; only the documents it may read count.
- ``POST /v1/tenants/{tenant}/live/broadcast``: an ephemeral message to the tenant's
  WebSocket peers that said ``hello`` (extension op ``broadcast``) and to its change-feed
  readers (SSE event ``broadcast``), on every node of a cluster. Never stored. Needs a
  token that is not read-only and covers the whole tenant (a pattern ``tenant/*``);
  rate-limited per tenant and per node (429 with Retry-After).
- ``POST /v1/tenants/{tenant}/live/ping``: the server's clock and the echo of the client's
  send time, so the client measures the round trip and its clock offset; plus the round
  trip this node measured to its store.
"""

from __future__ import annotations

import base64
import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgpack
from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from syncline.engine.errors import InvalidDocumentName, ValidationError
from syncline.engine.names import DocName
from syncline.engine.tokens import Grant
from syncline.engine.validation import MAX_SAFE_INTEGER, check_int
from syncline.server.endpoints import relay_of
from syncline.server.store import StoreUnavailable

from . import bodies
from .bodies import Fields
from .context import Reply, RestContext
from .problems import Problem, validation_problem

MAX_MESSAGE_JSON_BYTES = 2048
"""Largest broadcast message, as compact JSON (UTF-8)."""
MAX_FRAME_BODY_BYTES = 3072
"""Largest broadcast as a msgpack extension body: under the 4096 bytes a client decodes."""
MAX_TYPE_CHARS = 64
DEFAULT_TYPE = "message"
DEFAULT_PAGE = 50
MAX_PAGE = 200


# -- rate limit ------------------------------------------------------------------------------


@dataclass
class _Bucket:
    tokens: float
    last: float


@dataclass
class BroadcastLimiter:
    """A token bucket per tenant: ``rate`` broadcasts per second sustained, ``burst`` at once."""

    rate: float
    burst: int
    clock: Any = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, tenant: str) -> float:
        """0 if a broadcast may go now (and count it), else the seconds until one may."""
        now = self.clock()
        bucket = self._buckets.get(tenant)
        if bucket is None:
            bucket = self._buckets[tenant] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.last) * self.rate)
        bucket.last = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            if len(self._buckets) > 10_000:  # forget full buckets: they are what a new one would be
                self._forget_full(now)
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        for tenant, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.last) * self.rate >= self.burst:
                del self._buckets[tenant]


def _limiter(request: Request, ctx: RestContext) -> BroadcastLimiter:
    state = request.app.state
    limiter: BroadcastLimiter | None = getattr(state, "broadcast_limiter", None)
    if limiter is None:
        limiter = state.broadcast_limiter = BroadcastLimiter(ctx.settings.broadcast_rate_per_second,
                                                             ctx.settings.broadcast_burst)
    return limiter


# -- sync-state ------------------------------------------------------------------------------


async def sync_state(request: Request) -> Response:
    ctx: RestContext = request.app.state.rest
    grant = ctx.grant(request)
    params = request.query_params
    for key in params:
        if key not in ("limit", "cursor", "token"):
            raise Problem("invalid-parameter", f"unknown query parameter {key[:64]!r}", parameter=key[:64])
    limit = _limit(params.get("limit"))
    after = _decode_cursor(params.get("cursor"))
    try:
        names = await ctx.store.documents()
    except StoreUnavailable:
        raise Problem("store-unavailable", headers={"Retry-After": "5"}) from None
    prefix = f"{grant.tenant}/stock/"
    locations = [name for name in names if name.startswith(prefix) and _readable(grant, name)
                 and (after is None or name[len(prefix):] > after)]
    page, more = locations[:limit], len(locations) > limit
    relay = relay_of(request.app)
    activity = relay.activity(grant.tenant, lambda name: _readable(grant, name))
    rows = []
    for name in page:
        doc = DocName.from_string(name)
        room = await ctx.documents.open(doc)
        view = ctx.documents.ledger(room, doc.doc_id).view()
        stamps = [entry.at for entry in (*view.adjustments, *view.resolutions)]
        rows.append({
            "location": doc.doc_id,
            "last_change_at": max(stamps) if stamps else None,
            "open_conflicts": len(view.conflicts),
            "conflict_ids": [conflict.id for conflict in view.conflicts][:20],
            "peers": activity.peers_by_document.get(name, 0),
        })
    body = {
        "tenant": grant.tenant,
        "server_time": _now_ms(),
        "node": relay.fanout.node_id,
        "locations": rows,
        "next_cursor": _encode_cursor(page[-1][len(prefix):]) if more and page else None,
        "kinds": {kind: counts.to_json() for kind, counts in activity.kinds.items()},
        "online_users": activity.online_users,
    }
    return Reply(200, body, {"Cache-Control": "no-store"}).response()


def _readable(grant: Grant, name: str) -> bool:
    try:
        return grant.allows(DocName.from_string(name))
    except InvalidDocumentName:
        return False


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6 or not 1 <= int(raw) <= MAX_PAGE:
        raise Problem("invalid-parameter", f"limit must be an integer from 1 to {MAX_PAGE}", parameter="limit")
    return int(raw)


def _encode_cursor(location: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([location]).encode()).decode().rstrip("=")


def _decode_cursor(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        if len(raw) > 1024:
            raise ValueError("too long")
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(decoded, list) or len(decoded) != 1 or not isinstance(decoded[0], str):
            raise ValueError("shape")
        return str(decoded[0])
    except (ValueError, TypeError, UnicodeDecodeError):
        raise Problem("invalid-parameter", "cursor is not one this server gave out", parameter="cursor") from None


# -- broadcast -------------------------------------------------------------------------------


async def broadcast(request: Request) -> Response:
    ctx: RestContext = request.app.state.rest
    grant = ctx.grant(request)
    if grant.read_only:
        raise Problem("read-only", "a broadcast needs a token that is not read-only")
    if not _whole_tenant(grant):
        raise Problem("forbidden", f"a broadcast needs a token for the whole tenant ({grant.tenant}/*)")
    fields = Fields(await bodies.read_json_object(request, ctx.settings.rest_max_body_bytes))
    message = fields.required("message", _message)
    kind = fields.optional("type", _type, DEFAULT_TYPE)
    fields.done()
    wait = _limiter(request, ctx).take(grant.tenant)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise Problem("rate-limited", f"at most {ctx.settings.broadcast_burst} broadcasts at once and "
                      f"{ctx.settings.broadcast_rate_per_second:g} a second per tenant",
                      headers={"Retry-After": str(seconds)}, retry_after=seconds)
    body = {"op": "broadcast", "id": uuid.uuid4().hex, "type": kind, "message": message, "at": _now_ms()}
    if len(msgpack.packb(body)) > MAX_FRAME_BODY_BYTES:
        raise validation_problem("message", f"must take at most {MAX_FRAME_BODY_BYTES} bytes on the wire")
    relay = relay_of(request.app)
    relay.metrics.broadcasts.inc()
    peers = relay.broadcast(grant.tenant, body)
    reply = {"id": body["id"], "type": kind, "at": body["at"], "peers": peers}
    return Reply(202, reply).response()


def feed_event(body: dict[str, Any]) -> ServerSentEvent:
    """The SSE ``broadcast`` event of a broadcast (no id: it is not part of the feed's history)."""
    data = {key: body[key] for key in ("id", "type", "message", "at")}
    return ServerSentEvent(json.dumps(data, separators=(",", ":"), ensure_ascii=False), event="broadcast")


def _whole_tenant(grant: Grant) -> bool:
    return any(all(part == "*" for part in pattern.split("/")[1:]) for pattern in grant.patterns)


def _message(value: Any, field_name: str) -> Any:
    if value is None:
        raise ValidationError(field_name, "must not be null")
    if isinstance(value, str) and not value.strip():
        raise ValidationError(field_name, "must not be empty")
    _check_numbers(value, field_name)
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_MESSAGE_JSON_BYTES:
        raise ValidationError(field_name, f"must be at most {MAX_MESSAGE_JSON_BYTES} bytes of JSON, not {size}")
    return value


def _check_numbers(value: Any, field_name: str) -> None:
    """Integers within ±(2**53 - 1), as a JavaScript client reads them exactly."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_SAFE_INTEGER:
            raise ValidationError(field_name, f"holds an integer beyond ±{MAX_SAFE_INTEGER}")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _type(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_TYPE_CHARS or not value.isascii() or not all(
        c.isalnum() or c in "._-" for c in value
    ) or not value[0].isalnum():
        raise ValidationError(field_name, f"must be 1 to {MAX_TYPE_CHARS} ASCII letters, digits or . _ - "
                                          "starting with a letter or digit")
    return value


# -- ping ------------------------------------------------------------------------------------


async def ping(request: Request) -> Response:
    received = _now_ms()
    ctx: RestContext = request.app.state.rest
    ctx.grant(request)
    raw = {} if _no_body(request) else await bodies.read_json_object(request, ctx.settings.rest_max_body_bytes)
    fields = Fields(raw)
    sent_at = fields.optional("sent_at", _timestamp, None)
    fields.done()
    started = time.perf_counter()
    try:
        await ctx.store.head()
    except StoreUnavailable:
        raise Problem("store-unavailable", headers={"Retry-After": "5"}) from None
    store_ms = (time.perf_counter() - started) * 1000
    relay = relay_of(request.app)
    body = {
        "sent_at": sent_at,
        "received_at": received,
        "server_time": _now_ms(),
        "store_rtt_ms": round(store_ms, 3),
        "node": relay.fanout.node_id,
    }
    return Reply(200, body, {"Cache-Control": "no-store"}).response()


def _no_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return (length is None and "transfer-encoding" not in request.headers) or length == "0"


def _timestamp(value: Any, field_name: str) -> int:
    return check_int(value, field_name, 0, MAX_SAFE_INTEGER)


def _now_ms() -> int:
    return round(time.time() * 1000)
