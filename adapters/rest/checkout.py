"""``POST /v1/tenants/{tenant}/carts/{cart}/checkout``: a cart becomes an order and its stock is sold.

One checkout writes three documents, each through the relay's door, in this order:

1. the order ``{tenant}/order/{order}`` (default: the cart's id), with the cart's lines
   priced by the catalog at this moment and their total;
2. the stock ledger of the chosen location: one ``sale`` adjustment per line, with an id
   derived from the order and the line, so a retried or replayed checkout sells once;
3. the cart, closed as ``checked_out`` into the order (its edits are then refused).

A retry after a crash between two of these writes finds the order placed from this cart
and completes the rest; the adjustment ids and the cart's closing are idempotent.

Checkouts of one order run one at a time across every relay sharing the store: each
holds a claim on the order in the store (:meth:`RestContext.exclusive`) and, once it has
it, reads from the store what another node committed under the claim before (fan-out may
not have delivered it yet). So two nodes checking one cart out at once (a retry sent to
another node, with another Idempotency-Key or none) answer as one node would: one
``201`` that placed the order, one ``200`` with ``"replayed": true`` and the same order.
Before anything is written: a cart with no lines, a line without a price, lines in
several currencies, or a closed cart are refused.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from syncline.engine import Cart, CartView, OrderLine
from syncline.engine.canonical import canonical_json
from syncline.engine.names import DocName
from syncline.engine.validation import check_id
from syncline.server.endpoints import relay_of

from . import bodies
from .bodies import Fields
from .carts import MERGE_OPEN_ATTEMPTS, document_id_field, priced_body
from .context import Idempotency, Reply, RestContext
from .documents import Edit
from .etags import body_etag
from .orders import order_body
from .problems import Problem, failure_cause

log = logging.getLogger("syncline.rest")


CHECKOUT_WAIT_SECONDS = 5.0
"""How long a checkout waits for another checkout of the same order (on any node) to finish."""


def sale_id(order: DocName, line_key: str) -> str:
    """The id of the sale adjustment of one order line: the same on every node and every retry."""
    digest = hashlib.sha256(canonical_json([str(order), line_key]).encode()).hexdigest()[:32]
    return f"sale-{digest}"


async def checkout(request: Request) -> Response:
    ctx: RestContext = request.app.state.rest
    admitted = ctx.admit(request, "cart", "cart_id", write=True)
    cart_name, grant = admitted.name, admitted.grant
    body = await bodies.read_json_object(request, ctx.settings.rest_max_body_bytes)
    fields = Fields(body)
    location = fields.required("location", document_id_field)
    order_id = fields.optional("order", document_id_field, cart_name.doc_id)
    actor = fields.required("actor", check_id)
    fields.done()
    order_name = DocName(cart_name.tenant, "order", order_id)
    stock_name = DocName(cart_name.tenant, "stock", location)
    for name in (order_name, stock_name):
        if not grant.allows(name):
            raise Problem("forbidden", f"the token does not cover {name.kind}/{name.doc_id}")

    async def perform(idem: Idempotency) -> Reply:
        busy = Problem("checkout-in-progress", f"order {order_id} is being checked out by another request",
                       order=order_id, headers={"Retry-After": "1"})
        async with ctx.exclusive(order_name.tenant, f"checkout/{order_id}", wait=CHECKOUT_WAIT_SECONDS, busy=busy):
            for _ in range(MERGE_OPEN_ATTEMPTS):
                rooms = [await ctx.documents.open(name) for name in (order_name, stock_name, cart_name)]
                # What another node committed under the claim before us, fan-out or not.
                await ctx.documents.catch_up(*rooms)
                async with ctx.documents.editing(*rooms) as edits:
                    # Opening a room awaited: another may have been evicted meanwhile.
                    if all(ctx.documents.current(room) for room in rooms):
                        return await place(idem, *edits)
        raise Problem("room-limit", "the documents could not be held open together; retry",
                      headers={"Retry-After": "1"})

    async def place(idem: Idempotency, order_edit: Edit, stock_edit: Edit, cart_edit: Edit) -> Reply:
        order, ledger, cart = (order_edit.order(order_id), stock_edit.ledger(location),
                               cart_edit.cart(cart_name.doc_id))
        placed = order.view()
        replayed = placed.placed
        if replayed:
            if placed.cart != cart_name.doc_id:
                raise Problem("order-exists", f"order {order_id} was placed from cart {placed.cart}",
                              order=order_id, cart=placed.cart)
        else:
            _check_open(cart, order_id)
            order.place(cart=cart_name.doc_id, location=location, by=actor,
                        **await _priced(ctx, cart_name, cart.view()))
        view = order.view()
        assert view.location is not None
        if view.location != location:
            raise Problem("order-exists", f"order {order_id} was placed at location {view.location}",
                          order=order_id, location=view.location)
        for line in view.lines:
            ledger.record(sale_id(order_name, line.key), line.product_id, -line.quantity, reason="sale",
                          actor=view.placed_by or actor, ref=order_id)
        cart.check_out(order_id)
        cart_body = priced_body(cart_name, cart.view(), await ctx.store.prices(
            cart_name.tenant, {line.product_id for line in cart.view().lines}))
        body = {"order": order_body(order_name, view), "cart": cart_body, "replayed": replayed}
        reply = Reply(200 if replayed else 201, body, {"ETag": body_etag(body["order"]),
                                                       "Location": f"/v1/tenants/{order_name.tenant}/orders/{order_id}"})
        await order_edit.commit(action="order.checkout")
        await stock_edit.commit(action="stock.sale")
        seq = await cart_edit.commit(action="cart.checkout", receipt=idem.record(reply))
        idem.kept = seq is not None and idem.key is not None
        metrics.checkouts.labels("replayed" if replayed else "placed").inc()
        log.info("cart checked out", extra={"tenant": cart_name.tenant, "cart": cart_name.doc_id, "order": order_id,
                                            "location": location, "lines": len(view.lines), "replayed": replayed})
        return reply

    metrics = relay_of(request.app).metrics
    try:
        return await ctx.write(request, cart_name.tenant, body, perform)
    except Exception as exc:
        metrics.checkout_failures.labels(failure_cause(exc)).inc()
        raise


def _check_open(cart: Cart, order_id: str) -> None:
    """Refuse a cart that cannot be checked out into ``order_id`` (the engine says why)."""
    if cart.status().state != "open":
        cart.check_out(order_id)  # a no-op into the same order; else CartClosed (merged, or another order)


async def _priced(ctx: RestContext, name: DocName, view: CartView) -> dict[str, Any]:
    if not view.lines:
        raise Problem("empty-cart", f"cart {name.doc_id} has no lines")
    prices = await ctx.store.prices(name.tenant, {line.product_id for line in view.lines})
    unpriced = sorted({line.product_id for line in view.lines} - set(prices))
    if unpriced:
        raise Problem("unknown-product", f"no price in the catalog for {', '.join(unpriced)}", products=unpriced)
    currencies = sorted({prices[line.product_id].currency for line in view.lines})
    if len(currencies) > 1:
        raise Problem("mixed-currency", f"the lines are priced in {', '.join(currencies)}", currencies=currencies)
    lines = [OrderLine(line.key, line.product_id, dict(line.attributes), line.quantity,
                       prices[line.product_id].unit_price, prices[line.product_id].unit_price * line.quantity)
             for line in view.lines]
    return {"currency": currencies[0], "lines": lines}

