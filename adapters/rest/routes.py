"""The REST adapter's routes and error handlers, mounted into the relay's Starlette app."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from syncline.engine.errors import EngineError

from . import carts, checkout, feed, guests, live, orders, prices, stock
from .openapi import openapi_document
from .problems import Problem, engine_problem

log = logging.getLogger("syncline.rest")

TENANT = "/v1/tenants/{tenant}"


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _line(request: Request) -> Response:
    return await (carts.set_line if request.method == "PUT" else carts.remove_line)(request)


def rest_routes() -> list[BaseRoute]:
    cart = TENANT + "/carts/{cart_id}"
    location = TENANT + "/stock/{location_id}"
    order = TENANT + "/orders/{order_id}"
    return [
        Route("/v1/openapi.json", openapi, methods=["GET"]),
        Route("/v1/health", health, methods=["GET"]),
        Route(cart, carts.get_cart, methods=["GET"]),
        Route(cart + "/items", carts.add_item, methods=["POST"]),
        # One route for both methods: a 405 there must list both in its Allow header.
        Route(cart + "/lines/{line_id}", _line, methods=["PUT", "DELETE"]),
        Route(cart + "/clear", carts.clear_cart, methods=["POST"]),
        Route(cart + "/merge", carts.merge_cart, methods=["POST"]),
        Route(cart + "/checkout", checkout.checkout, methods=["POST"]),
        Route(location + "/levels", stock.get_levels, methods=["GET"]),
        Route(location + "/levels/{sku}", stock.get_level, methods=["GET"]),
        Route(location + "/history", stock.get_history, methods=["GET"]),
        Route(location + "/adjustments", stock.post_adjustment, methods=["POST"]),
        Route(location + "/counts", stock.post_count, methods=["POST"]),
        Route(location + "/batch", stock.post_batch, methods=["POST"]),
        Route(location + "/conflicts", stock.get_conflicts, methods=["GET"]),
        Route(location + "/conflicts/{conflict_id}/resolve", stock.resolve_conflict, methods=["POST"]),
        Route(TENANT + "/catalog", prices.get_catalog, methods=["GET"]),
        Route(TENANT + "/orders", orders.list_orders, methods=["GET"]),
        Route(order, orders.get_order, methods=["GET"]),
        Route(order + "/stage", orders.advance_stage, methods=["POST"]),
        Route(order + "/payment", orders.record_payment, methods=["POST"]),
        Route(order + "/cancel", orders.cancel_order, methods=["POST"]),
        Route(TENANT + "/live/sync-state", live.sync_state, methods=["GET"]),
        Route(TENANT + "/live/broadcast", live.broadcast, methods=["POST"]),
        Route(TENANT + "/live/ping", live.ping, methods=["POST"]),
        Route(TENANT + "/events", feed.events, methods=["GET"]),
        Route(TENANT + "/guest-sessions", guests.create_guest_session, methods=["POST"]),
    ]


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response(request.url.path)


async def _engine_error(request: Request, exc: Exception) -> Response:
    problem = engine_problem(exc)
    if problem is None:
        log.error("unexpected engine error on %s %s", request.method, request.url.path, exc_info=exc)
        problem = Problem("internal-error")
    return problem.response(request.url.path)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code)
    if slug is None:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    return Problem(slug, headers=dict(exc.headers or {})).response(request.url.path)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Problem("internal-error").response(request.url.path)


EXCEPTION_HANDLERS = {
    Problem: _problem,
    EngineError: _engine_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
