"""Cart endpoints: read, add an item, set or remove a line, clear, merge a guest cart.

Prices come from the store's catalog (``syncline catalog load``), never from the
client: adding a product the catalog does not price is refused.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from syncline.engine import CartView, ValidationError, price_lines
from syncline.engine.validation import check_attributes, check_id, check_quantity
from syncline.engine.errors import InvalidDocumentName
from syncline.engine.names import DocName, check_part
from syncline.server.endpoints import relay_of
from syncline.server.lifetimes import Lifetimes
from syncline.server.room import Room
from syncline.server.store import Price, StoreUnavailable

from . import bodies
from .bodies import Fields
from .context import Idempotency, Reply, RestContext
from .documents import Edit
from .guests import clear_cookie
from .etags import body_etag, if_match_allows, not_modified
from .problems import Problem, failure_cause, validation_problem

log = logging.getLogger("syncline.rest")


MERGE_OPEN_ATTEMPTS = 3


async def cart_body(ctx: RestContext, name: DocName, view: CartView) -> dict[str, Any]:
    return priced_body(name, view, await ctx.store.prices(name.tenant, {line.product_id for line in view.lines}))


def priced_body(name: DocName, view: CartView, prices: Mapping[str, Price]) -> dict[str, Any]:
    """The cart's representation, priced from ``prices`` (which holds every line's product that has a price)."""
    priced, total = price_lines(view, lambda product, _attrs: _unit(prices.get(product)))
    currencies = {prices[line.product_id].currency for line in view.lines if line.product_id in prices}
    currency = currencies.pop() if len(currencies) == 1 else None
    if len(currencies) > 0:  # more than one currency: no meaningful total
        total = None
    return {
        "tenant": name.tenant,
        "id": name.doc_id,
        "status": view.status.state,
        "merged_into": view.status.merged_into,
        "merged_at": view.status.merged_at,
        "order": view.status.order,
        "checked_out_at": view.status.checked_out_at,
        "currency": currency,
        "lines": [
            {
                "id": p.line.key,
                "product": p.line.product_id,
                "attributes": dict(p.line.attributes),
                "quantity": p.line.quantity,
                "unit_price": p.unit_price,
                "line_total": p.line_total,
            }
            for p in priced
        ],
        "total_quantity": view.total_quantity,
        "total": total,
        "issues": [str(issue) for issue in view.issues],
    }


def _unit(price: Price | None) -> int | None:
    return None if price is None else price.unit_price


def cart_reply(body: dict[str, Any], status: int = 200, *, lifetime: dict[str, Any] | None = None) -> Reply:
    """The cart's reply: its ETag covers the content, not ``lifetime`` (when it was last accessed,
    and ``status`` abandoned), which is added to the body after."""
    return Reply(status, {**body, **(lifetime or {})}, {"ETag": body_etag(body)})


def lifetime_fields(lifetimes: Lifetimes, status: str, last_accessed_at: float | None) -> dict[str, Any]:
    """``last_accessed_at`` (epoch milliseconds, null if unknown) and, for an open cart idle
    past ``--cart-idle-seconds``, the status ``abandoned``."""
    fields: dict[str, Any] = {
        "last_accessed_at": None if last_accessed_at is None else math.floor(last_accessed_at * 1000)}
    if status == "open" and lifetimes.abandoned(last_accessed_at):
        fields["status"] = "abandoned"
    return fields


def _written_now(request: Request, name: DocName, status: str) -> dict[str, Any]:
    """The lifetime fields of a cart a write accesses now."""
    lifetimes = relay_of(request.app).lifetimes
    return lifetime_fields(lifetimes, status, lifetimes.accessed_now(str(name)))


async def get_cart(request: Request) -> Response:
    ctx: RestContext = request.app.state.rest
    name = ctx.document(request, "cart", "cart_id", write=False)
    room = await ctx.documents.open(name)
    body = await cart_body(ctx, name, ctx.documents.cart(room, name.doc_id).view())
    lifetimes = relay_of(request.app).lifetimes
    try:
        last = await lifetimes.last_accessed(str(name))
    except StoreUnavailable:
        raise Problem("store-unavailable", headers={"Retry-After": "5"}) from None
    reply = cart_reply(body, lifetime=lifetime_fields(lifetimes, body["status"], last))
    return not_modified(request, reply.headers["ETag"]) or reply.response()


async def _cart_write(
    request: Request, name: DocName, action: str, body: dict[str, Any] | None, edit_cart: Any,
    products: Iterable[str] = (),
) -> Response:
    """The common shape of a single-cart write: If-Match, edit on the replica, commit with the reply.

    The catalog is read once per write, for the cart's products and ``products`` (those the
    edit brings): ``edit_cart(cart, prices)`` checks against it and the reply is priced from it."""
    ctx: RestContext = request.app.state.rest

    async def perform(idem: Idempotency) -> Reply:
        room = await ctx.documents.open(name)
        async with ctx.documents.editing(room) as (edit,):
            await _check_if_match(request, ctx, name, room)
            cart = edit.cart(name.doc_id)
            wanted = {line.product_id for line in cart.view().lines} | set(products)
            prices = await ctx.store.prices(name.tenant, wanted)
            edit_cart(cart, prices)
            view = cart.view()
            unread = {line.product_id for line in view.lines} - wanted  # a line the edit brought back
            if unread:
                prices = {**prices, **await ctx.store.prices(name.tenant, unread)}
            body = priced_body(name, view, prices)
            reply = cart_reply(body, lifetime=_written_now(request, name, body["status"]))
            seq = await edit.commit(action=action, receipt=idem.record(reply))
            idem.kept = seq is not None and idem.key is not None
            return reply

    return await ctx.write(request, name.tenant, body, perform)


async def add_item(request: Request) -> Response:
    ctx: RestContext = request.app.state.rest
    name = ctx.document(request, "cart", "cart_id", write=True)  # 401/403 before anything about the body
    body = await bodies.read_json_object(request, ctx.settings.rest_max_body_bytes)
    fields = Fields(body)
    product = fields.required("product", check_id)
    quantity = fields.optional("quantity", lambda v, f: check_quantity(bodies.integer(v, f), f, allow_zero=False), 1)
    attributes = fields.optional("attributes", lambda v, f: check_attributes(bodies.obj(v, f), f), {})
    fields.done()

    def edit_cart(cart: Any, prices: Mapping[str, Price]) -> None:
        if product not in prices:
            raise Problem("unknown-product", f"{product!r} has no price in the catalog", product=product)
        cart.add_item(product, quantity, attributes)

    return await _cart_write(request, name, "cart.add_item", body, edit_cart, products=[product])


async def set_line(request: Request) -> Response:
    ctx: RestContext = request.app.state.rest
    name = ctx.document(request, "cart", "cart_id", write=True)
    body = await bodies.read_json_object(request, ctx.settings.rest_max_body_bytes)
    fields = Fields(body)
    quantity = fields.required("quantity", lambda v, f: check_quantity(bodies.integer(v, f), f, allow_zero=True))
    fields.done()
    line = _line_param(request)

    def edit_cart(cart: Any, prices: Mapping[str, Price]) -> None:
        cart.set_quantity(line, quantity)

    return await _cart_write(request, name, "cart.set_quantity", body, edit_cart)


async def remove_line(request: Request) -> Response:
    ctx: RestContext = request.app.state.rest
    name = ctx.document(request, "cart", "cart_id", write=True)
    line = _line_param(request)

    def edit_cart(cart: Any, prices: Mapping[str, Price]) -> None:
        cart.remove_line(line)

    return await _cart_write(request, name, "cart.remove_line", None, edit_cart)


async def clear_cart(request: Request) -> Response:
    ctx: RestContext = request.app.state.rest
    name = ctx.document(request, "cart", "cart_id", write=True)
    body = await bodies.read_json_object(request, ctx.settings.rest_max_body_bytes) \
        if _has_body(request) else {}
    Fields(body).done()

    def edit_cart(cart: Any, prices: Mapping[str, Price]) -> None:
        cart.clear()

    return await _cart_write(request, name, "cart.clear", body, edit_cart)


async def merge_cart(request: Request) -> Response:
    """Merge the guest cart of the path into the body's ``into`` cart; a replay brings over only what the
    guest cart gained since (docs/semantics.md)."""
    ctx: RestContext = request.app.state.rest
    by_cookie = False
    try:
        admitted = ctx.admit(request, "cart", "cart_id", write=True)
        guest, grant = admitted.name, admitted.grant
    except Problem as refused:
        # A shopper signing in: the guest cart by its guest session cookie, the target by the bearer token.
        if refused.slug != "forbidden":  # the name was checked before the grant: a forbidden one is valid
            raise
        guest = DocName(request.path_params["tenant"], "cart", request.path_params["cart_id"])
        cookie_grant = ctx.admission.cookie_grant(request.headers)
        if cookie_grant is None or cookie_grant.read_only or not cookie_grant.allows(guest):
            raise
        grant, by_cookie = ctx.grant(request), True
    body = await bodies.read_json_object(request, ctx.settings.rest_max_body_bytes)
    fields = Fields(body)
    into = fields.required("into", document_id_field)
    fields.done()
    target = DocName(guest.tenant, "cart", into)
    if not grant.allows(target):
        raise Problem("forbidden", f"the token does not cover cart/{into}")
    if target == guest:
        raise validation_problem("into", "a cart cannot be merged into itself")

    async def perform(idem: Idempotency) -> Reply:
        for _ in range(MERGE_OPEN_ATTEMPTS):
            guest_room = await ctx.documents.open(guest)
            target_room = await ctx.documents.open(target)
            async with ctx.documents.editing(guest_room, target_room) as edits:
                # Opening the target awaited: the guest's room may have been evicted meanwhile,
                # and an edit through an evicted room would never reach a room loaded anew.
                if ctx.documents.current(guest_room) and ctx.documents.current(target_room):
                    return await merge(idem, *edits)
        raise Problem("room-limit", "the carts could not be held open together; retry", headers={"Retry-After": "1"})

    async def merge(idem: Idempotency, guest_edit: Edit, target_edit: Edit) -> Reply:
        await _check_if_match(request, ctx, target, target_edit.room)
        result = guest_edit.cart(guest.doc_id).merge_into(target_edit.cart(into))
        cart = await cart_body(ctx, target, target_edit.cart(into).view())
        etag = body_etag(cart)
        cart = {**cart, **_written_now(request, target, cart["status"])}
        reply = Reply(200, {
            "merge": {
                "source": result.source,
                "target": result.target,
                "replayed": result.replayed,
                "lines": [
                    {"id": line.key, "product": line.product_id, "attributes": dict(line.attributes),
                     "quantity": line.quantity}
                    for line in result.lines
                ],
            },
            "cart": cart,
        }, {"ETag": etag})
        # The target first: if the guest's commit then fails, a retry merges again,
        # which counts the guest's lines once (merges are idempotent by source cart).
        await target_edit.commit(action="cart.merge")
        seq = await guest_edit.commit(action="cart.merged", receipt=idem.record(reply))
        idem.kept = seq is not None and idem.key is not None
        metrics.cart_merges.inc()
        log.info("cart merged", extra={"tenant": guest.tenant, "cart": guest.doc_id, "into": into,
                                       "lines": len(result.lines), "replayed": result.replayed})
        return reply

    metrics = relay_of(request.app).metrics
    try:
        response = await ctx.write(request, guest.tenant, body, perform)
    except Exception as exc:
        metrics.cart_merge_failures.labels(failure_cause(exc)).inc()
        raise
    if by_cookie:
        clear_cookie(response)  # the guest cart is merged: the shopper goes on with the user's
    return response


def document_id_field(value: Any, field: str) -> str:
    """A document id (a cart's, an order's, a location's) as the document naming rules have it (the path's rules, for a body field)."""
    check_id(value, field)
    try:
        return check_part("doc_id", value)
    except InvalidDocumentName as exc:
        raise ValidationError(field, exc.reason) from None


async def _check_if_match(request: Request, ctx: RestContext, name: DocName, room: Room) -> None:
    """412 unless If-Match (when sent) names the cart's current ETag; the current body is
    computed only when the header asks for it."""
    header = request.headers.get("if-match")
    if header is None:
        return
    current = body_etag(await cart_body(ctx, name, ctx.documents.cart(room, name.doc_id).view()))
    if not if_match_allows(header, current):
        raise Problem("precondition-failed", headers={"ETag": current})


def _line_param(request: Request) -> str:
    line = request.path_params["line_id"]
    if len(line) != 32 or any(c not in "0123456789abcdef" for c in line):
        raise Problem("unknown-line", "line ids are the 32 hex digits the cart shows")
    return str(line)


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return request.headers.get("transfer-encoding") is not None or (length is not None and length != "0")
