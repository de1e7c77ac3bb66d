"""The Starlette application of ``syncline serve``: the relay, with the REST and SSE adapter wired in.

The relay's lifespan (:func:`~syncline.server.relay.open_relay`) owns the store, the
fan-out and every long-lived task; this module adds the REST routes, the REST context
and the change feed's hub, plugged into the relay through its hooks, the browser pages
(:mod:`.pages`), request ids and the access log (:mod:`syncline.server.access`), the REST
rate limits and, with ``--cors-origin``, CORS (:mod:`.cors`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from syncline.adapters.rest.context import RestContext
from syncline.adapters.rest.documents import Documents
from syncline.adapters.rest.feed import FeedHub
from syncline.adapters.rest.limits import RateLimitMiddleware
from syncline.adapters.rest.live import feed_event
from syncline.adapters.rest.routes import EXCEPTION_HANDLERS, rest_routes
from syncline.server.access import AccessLog
from syncline.server.door import Door
from syncline.server.endpoints import probe_routes, sync_routes
from syncline.server.metrics import Metrics
from syncline.server.ratelimit import RateLimiter
from syncline.server.relay import Relay, open_relay
from syncline.server.settings import Settings

from .cors import cors_middleware
from .demo_catalog import seed_demo_catalog
from .pages import page_routes


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time) -> Starlette:
    """The relay application; its lifespan opens the store and runs the relay's tasks.

    ``clock`` (seconds since the epoch) is the time retention is measured against when the
    change feed and idempotency records are pruned: tests pass one that runs ahead.
    While the lifespan runs, ``app.state`` holds the ``relay``, the REST context ``rest``
    and the change feed's hub ``feed``.
    """
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        def wire(relay: Relay) -> None:
            feed = FeedHub()
            relay.on_change(feed.notify)
            relay.on_shutdown(feed.close)
            relay.on_broadcast(lambda tenant, body: feed.post(tenant, feed_event(body)))
            app.state.relay = relay
            app.state.rest = RestContext(settings, relay.admission, relay.store, Documents(Door(relay.rooms)))
            app.state.feed = feed

        async with open_relay(settings, metrics, clock=clock, setup=wire):
            if settings.demo_catalog:
                await seed_demo_catalog(app.state.relay.store)
            app.state.limiter = RateLimiter(settings, metrics)
            try:
                yield
            finally:
                await app.state.limiter.aclose()

    return Starlette(
        routes=[*sync_routes(), *probe_routes(metrics), *rest_routes(), *page_routes()],
        # The access log outermost: it sees every answer, CORS refusals and 429s included;
        # CORS outside the rate limit so that a 429 carries its headers too.
        middleware=[Middleware(AccessLog, metrics=metrics, enabled=settings.access_log,
                               on_error=EXCEPTION_HANDLERS[Exception]),
                    *cors_middleware(settings.cors_origin), Middleware(RateLimitMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
