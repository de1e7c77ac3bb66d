"""Listing a tenant's orders over REST (``GET /v1/tenants/{tenant}/orders``, docs/rest.md).

One order is a document, read and moved through :meth:`SyncClient.order`; a list spans
documents, so it is a query to the relay. A page holds up to ``limit`` order summaries in
id order, filtered by stage and payment on the relay, and ``next_cursor`` where the next
page goes on (None at the end). A filtered page may hold fewer than ``limit``, even none,
and still have a next page: follow ``next_cursor``, as :func:`all_orders` does.

::

    page = await list_orders("ws://127.0.0.1:8787", token, "acme", stage="confirmed", limit=20)
    async for order in all_orders("ws://127.0.0.1:8787", token, "acme", payment="paid"):
        print(order.id, order.total)

Given several relays (``["ws://a:8787", "ws://b:8787"]``, the nodes of one cluster), a page
is asked of each in turn until one answers: the next is tried only when one does not answer
at all (:class:`RelayUnreachable`); an answer, an error answer too, is the outcome.

A request runs on the standard library's ``urllib`` in a worker thread (the client
adds no HTTP dependency), within ``timeout`` seconds in all; a cancelled caller returns at
once and the thread ends by its own socket timeout. The token goes in an
``Authorization: Bearer`` header, never in the URL, and no redirect is followed.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any, get_type_hints
from urllib.parse import quote, urlencode

import anyio

from syncline.engine.errors import InvalidDocumentName as EngineNameError
from syncline.engine.errors import ValidationError
from syncline.engine.names import check_part
from syncline.engine.order import PAYMENTS, STAGES
from syncline.engine.validation import check_id, check_int

from .errors import InvalidQuery, RelayUnreachable, RestProblem, UnexpectedResponse
from .rest import check_token, problem_body, rest_base

MAX_ORDER_PAGE = 100
"""The relay's largest page (docs/rest.md: ``limit`` is at most 100, 25 by default)."""
MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest answer read; a full page of 100 summaries is a few tens of kilobytes."""

@dataclass(frozen=True)
class OrderSummary:
    """One order of a list, as the relay summarises it; amounts in the currency's minor unit."""

    id: str
    cart: str
    location: str
    currency: str
    total: int
    stage: str
    """One of :data:`syncline.engine.order.STAGES`."""
    payment: str
    """One of :data:`syncline.engine.order.PAYMENTS`."""
    placed_at: int
    """When the checkout placed it, epoch milliseconds."""
    lines: int
    """How many lines it holds (read the order for them)."""


@dataclass(frozen=True)
class OrderPage:
    """One page of orders; ``next_cursor`` is opaque (pass it back as it is), None after the last page."""

    orders: list[OrderSummary]
    next_cursor: str | None


async def list_orders(
    base_url: str | Sequence[str], token: str | None, tenant: str, *, stage: str | None = None,
    payment: str | None = None, limit: int | None = None, cursor: str | None = None, timeout: float = 10.0,
) -> OrderPage:
    """One page of the orders of ``tenant`` that ``token`` may read.

    ``base_url`` is the relay's sync address (``ws://host:port``, ``wss://``) or its HTTP one,
    or several relays' addresses, asked in turn until one answers (each within ``timeout``).
    Raises :class:`InvalidQuery` before any request for a bad argument,
    :class:`RestProblem` when the relay answers with an error (401 for a refused token),
    :class:`RelayUnreachable` when no relay answers (the last one's), :class:`UnexpectedResponse`
    when the answer is not a page of orders.
    """
    bases = (base_url,) if isinstance(base_url, str) else tuple(base_url)
    if not bases:
        raise InvalidQuery("base_url", "give at least one relay address")
    urls = [orders_url(base, tenant, stage=stage, payment=payment, limit=limit, cursor=cursor) for base in bases]
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
        raise InvalidQuery("timeout", f"must be a positive number of seconds, not {timeout!r}")
    headers = {"Accept": "application/json", "User-Agent": "syncline-client"}
    if token is not None:
        check_token(token)
        headers["Authorization"] = f"Bearer {token}"
    for url in urls[:-1]:
        try:
            return await _ask(url, headers, timeout)
        except RelayUnreachable:
            continue  # the next relay may answer
    return await _ask(urls[-1], headers, timeout)


async def _ask(url: str, headers: dict[str, str], timeout: float) -> OrderPage:
    display = url.split("?", 1)[0]
    try:
        with anyio.fail_after(timeout):
            body = await anyio.to_thread.run_sync(_get, url, headers, timeout, abandon_on_cancel=True)
    except TimeoutError:
        raise RelayUnreachable(display, f"no answer within {timeout:g} s") from None
    return _page(body, display)


async def all_orders(
    base_url: str | Sequence[str], token: str | None, tenant: str, *, stage: str | None = None,
    payment: str | None = None, limit: int | None = None, cursor: str | None = None, timeout: float = 10.0,
) -> AsyncIterator[OrderSummary]:
    """Every order matching the filters, page after page (from ``cursor`` when given).

    ``limit`` is the size of each page; ``timeout`` applies to each request, and with several
    relays each page is asked of them in turn as :func:`list_orders` does. Raises as
    :func:`list_orders` does, when the page that fails is reached.
    """
    while True:
        page = await list_orders(base_url, token, tenant, stage=stage, payment=payment, limit=limit,
                                 cursor=cursor, timeout=timeout)
        for order in page.orders:
            yield order
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def orders_url(base_url: str, tenant: str, *, stage: str | None = None, payment: str | None = None,
               limit: int | None = None, cursor: str | None = None) -> str:
    """The list's URL, every argument checked (:class:`InvalidQuery` names the first bad one)."""
    try:
        check_part("tenant", tenant)
    except EngineNameError as exc:
        raise InvalidQuery("tenant", exc.reason) from None
    params: dict[str, str] = {}
    for field, value, names in (("stage", stage, STAGES), ("payment", payment, PAYMENTS)):
        if value is not None:
            if value not in names:
                raise InvalidQuery(field, f"must be one of {', '.join(names)}, not {value!r}")
            params[field] = value
    try:
        if limit is not None:
            params["limit"] = str(check_int(limit, "limit", 1, MAX_ORDER_PAGE))
        if cursor is not None:
            params["cursor"] = check_id(cursor, "cursor")
    except ValidationError as exc:
        raise InvalidQuery(exc.field, exc.reason) from None
    query = f"?{urlencode(params)}" if params else ""
    return f"{rest_base(base_url)}/v1/tenants/{quote(tenant, safe='')}/orders{query}"


# -- internals ----------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the error it is: the token never goes to another address."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())
"""No proxy from the environment (as the WebSocket side), no redirects."""


def _get(url: str, headers: dict[str, str], timeout: float) -> bytes:
    """GET ``url`` on a worker thread; the body of a 2xx answer, or a typed error."""
    display = url.split("?", 1)[0]
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body: bytes = response.read(MAX_BODY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        with exc:
            raw = exc.read(MAX_BODY_BYTES + 1)
        raise RestProblem(exc.code, problem_body(raw), display, str(exc.reason or "")) from None
    except urllib.error.URLError as exc:
        raise RelayUnreachable(display, str(exc.reason)) from exc
    except OSError as exc:  # a timeout or a reset while reading the answer
        raise RelayUnreachable(display, f"{type(exc).__name__}: {exc}") from exc
    except HTTPException as exc:  # something that is not HTTP answered
        raise UnexpectedResponse(display, f"{type(exc).__name__}: {exc}") from exc
    if len(body) > MAX_BODY_BYTES:
        raise UnexpectedResponse(display, f"the answer is larger than {MAX_BODY_BYTES} bytes")
    return body


_FIELDS: dict[str, type] = get_type_hints(OrderSummary)
"""Each summary field's type, as the answer must give it."""


def _page(raw: bytes, url: str) -> OrderPage:
    try:
        body = json.loads(raw)
    except ValueError:
        raise UnexpectedResponse(url, "the answer is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("orders"), list) or not (
            body.get("next_cursor") is None or isinstance(body["next_cursor"], str)):
        raise UnexpectedResponse(url, "the answer is not a page of orders ({orders, next_cursor})")
    return OrderPage([_summary(item, url) for item in body["orders"]], body.get("next_cursor"))


def _summary(item: object, url: str) -> OrderSummary:
    if not isinstance(item, dict):
        raise UnexpectedResponse(url, "an order summary is not an object")
    for name, kind in _FIELDS.items():
        value = item.get(name)
        if type(value) is not kind:  # not isinstance: a bool is no count
            raise UnexpectedResponse(url, f"an order summary's {name!r} is not a {kind.__name__}")
    return OrderSummary(**{name: item[name] for name in _FIELDS})
