"""Order endpoints: read one, list a tenant's, move the stage, record payments, cancel.

An order is written by a cart's checkout (:mod:`.checkout`); these endpoints only move
it forward. A refused move (backwards, out of a cancelled order, cancelling a
completed one) is a ``409 transition-refused`` naming the current and requested
values; an order that was never placed is a ``404 unknown-order``. Every write takes
an ``Idempotency-Key``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pycrdt import Doc
from starlette.requests import Request
from starlette.responses import Response

from syncline.engine import Order, OrderView, apply_update
from syncline.engine.errors import InvalidUpdate
from syncline.engine.names import DocName
from syncline.engine.order import PAYMENTS, STAGES
from syncline.engine.validation import check_id, check_note, check_timestamp
from syncline.server.store import StoreUnavailable

from . import bodies
from .bodies import Fields
from .context import Idempotency, Reply, RestContext
from .etags import body_etag, if_match_allows, not_modified
from .problems import Problem

MAX_PAGE = 100
DEFAULT_PAGE = 25
MAX_EXAMINED = 1000
"""Most order documents one list page reads looking for orders that match its filters."""


def order_body(name: DocName, view: OrderView) -> dict[str, Any]:
    return {
        "tenant": name.tenant,
        "id": name.doc_id,
        "cart": view.cart,
        "location": view.location,
        "currency": view.currency,
        "lines": [
            {"id": line.key, "product": line.product_id, "attributes": dict(line.attributes),
             "quantity": line.quantity, "unit_price": line.unit_price, "line_total": line.line_total}
            for line in view.lines
        ],
        "total": view.total,
        "stage": view.stage,
        "payment": view.payment,
        "placed_at": view.placed_at,
        "placed_by": view.placed_by,
        "trail": [
            {"id": t.id, "kind": t.kind, "from": t.previous, "to": t.to, "at": t.at, "by": t.by, "note": t.note,
             "effective": t.effective}
            for t in view.trail
        ],
        "issues": [{"path": issue.path, "reason": issue.reason} for issue in view.issues],
    }


def order_reply(name: DocName, view: OrderView, status: int = 200) -> Reply:
    body = order_body(name, view)
    return Reply(status, body, {"ETag": body_etag(body)})


async def get_order(request: Request) -> Response:
    ctx: RestContext = request.app.state.rest
    name = ctx.document(request, "order", "order_id", write=False)
    room = await ctx.documents.open(name)
    view = ctx.documents.order(room, name.doc_id).view()
    if not view.placed:
        raise Problem("unknown-order", f"no order {name.doc_id} was placed")
    reply = order_reply(name, view)
    return not_modified(request, reply.headers["ETag"]) or reply.response()


async def list_orders(request: Request) -> Response:
    """A page of the tenant's orders the token may read, in id order, optionally filtered.

    The cursor is the last order id the page examined. Order documents are read a chunk at
    a time, in id order, until ``limit`` orders matched: a page is full unless the list
    ended, or the page examined :data:`MAX_EXAMINED` documents first (a rare filter over
    many orders), and then ``next_cursor`` says where the next page goes on. It is null
    only at the end.
    """
    ctx: RestContext = request.app.state.rest
    grant = ctx.grant(request)
    params = request.query_params
    for key in params:
        if key not in {"stage", "payment", "limit", "cursor", "token"}:
            raise Problem("invalid-parameter", f"unknown query parameter {key!r}")
    stage = _choice(params.get("stage"), "stage", STAGES)
    payment = _choice(params.get("payment"), "payment", PAYMENTS)
    limit = _limit(params.get("limit"))
    prefix = f"{grant.tenant}/order/"
    after = _decode_cursor(params.get("cursor"))
    orders: list[dict[str, Any]] = []
    examined = 0
    while True:
        chunk = min(limit, MAX_EXAMINED - examined)
        try:
            names = await ctx.store.documents(prefix, after=prefix + after if after else "", limit=chunk)
        except StoreUnavailable:
            raise Problem("store-unavailable", headers={"Retry-After": "5"}) from None
        for full_name in names:
            name = DocName.from_string(full_name)
            after = name.doc_id
            examined += 1
            if not grant.allows(name):
                continue
            view = await _stored_view(ctx, name)
            if view.placed and stage in (None, view.stage) and payment in (None, view.payment):
                orders.append(_summary(name, view))
                if len(orders) == limit:
                    break
        if len(orders) < limit and len(names) < chunk:
            cursor = None  # the list ended
            break
        if len(orders) == limit or examined >= MAX_EXAMINED:
            cursor = _encode_cursor(after)
            break
    return Reply(200, {"tenant": grant.tenant, "orders": orders, "next_cursor": cursor}, {}).response()


async def advance_stage(request: Request) -> Response:
    fields, name, body = await _write_fields(request)
    stage = fields.required("stage", bodies.one_of(*STAGES))
    actor, note, at = _who(fields)
    return await _order_write(request, name, body, "order.stage",
                              lambda order: order.advance(stage, by=actor, note=note, at=at))


async def record_payment(request: Request) -> Response:
    fields, name, body = await _write_fields(request)
    status = fields.required("status", bodies.one_of(*PAYMENTS))
    actor, note, at = _who(fields)
    return await _order_write(request, name, body, "order.payment",
                              lambda order: order.record_payment(status, by=actor, note=note, at=at))


async def cancel_order(request: Request) -> Response:
    fields, name, body = await _write_fields(request)
    actor, note, at = _who(fields)
    return await _order_write(request, name, body, "order.cancel",
                              lambda order: order.cancel(by=actor, note=note, at=at))


# -- internals ----------------------------------------------------------------------------


async def _write_fields(request: Request) -> tuple[Fields, DocName, dict[str, Any]]:
    ctx: RestContext = request.app.state.rest
    name = ctx.document(request, "order", "order_id", write=True)  # 401/403 before anything about the body
    body = await bodies.read_json_object(request, ctx.settings.rest_max_body_bytes)
    return Fields(body), name, body


def _who(fields: Fields) -> tuple[str, str | None, int | None]:
    actor = fields.required("actor", check_id)
    note = fields.optional("note", lambda v, f: check_note(bodies.string(v, f), f), None)
    at = fields.optional("at", lambda v, f: check_timestamp(bodies.integer(v, f), f), None)
    fields.done()
    return actor, note, at


async def _order_write(request: Request, name: DocName, body: dict[str, Any], action: str, move: Any) -> Response:
    ctx: RestContext = request.app.state.rest

    async def perform(idem: Idempotency) -> Reply:
        room = await ctx.documents.open(name)
        async with ctx.documents.editing(room) as (edit,):
            current = ctx.documents.order(room, name.doc_id).view()
            if not current.placed:
                raise Problem("unknown-order", f"no order {name.doc_id} was placed")
            if_match = request.headers.get("if-match")
            if if_match is not None:  # the current tag is derived only when asked for
                tag = body_etag(order_body(name, current))
                if not if_match_allows(if_match, tag):
                    raise Problem("precondition-failed", headers={"ETag": tag})
            order = edit.order(name.doc_id)
            move(order)
            reply = order_reply(name, order.view())
            seq = await edit.commit(action=action, receipt=idem.record(reply))
            idem.kept = seq is not None and idem.key is not None
            return reply

    return await ctx.write(request, name.tenant, body, perform)


async def _stored_view(ctx: RestContext, name: DocName) -> OrderView:
    """The order as stored, read without opening a room (a list must not evict open rooms).

    A stored row Yrs cannot integrate is skipped and the rows after it still apply, as a
    room does when it loads (which also logs it)."""
    try:
        stored = await ctx.store.load(str(name))
    except StoreUnavailable:
        raise Problem("store-unavailable", headers={"Retry-After": "5"}) from None
    doc: Doc[Any] = Doc()
    rows = ([stored.snapshot] if stored.snapshot is not None else []) + [update for _, update in stored.updates]
    for update in rows:
        try:
            apply_update(doc, update)
        except InvalidUpdate:
            continue
    return Order(doc, name.doc_id).view()


def _summary(name: DocName, view: OrderView) -> dict[str, Any]:
    return {"id": name.doc_id, "cart": view.cart, "location": view.location, "currency": view.currency,
            "total": view.total, "stage": view.stage, "payment": view.payment, "placed_at": view.placed_at,
            "lines": len(view.lines)}


def _choice(value: str | None, name: str, choices: tuple[str, ...]) -> str | None:
    if value is not None and value not in choices:
        raise Problem("invalid-parameter", f"{name} must be one of {', '.join(choices)}")
    return value


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise Problem("invalid-parameter", f"limit must be an integer from 1 to {MAX_PAGE}")
    return int(value)


def _encode_cursor(order_id: str) -> str:
    return base64.urlsafe_b64encode(order_id.encode()).decode().rstrip("=")


def _decode_cursor(value: str | None) -> str:
    if value is None:
        return ""
    try:
        order_id = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        return check_id(order_id, "cursor")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Problem("invalid-parameter", "cursor must be the next_cursor of a previous page") from None
