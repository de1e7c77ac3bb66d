"""``GET /v1/tenants/{tenant}/catalog``: the tenant's prices, for a storefront's product list.

Any token of the tenant may read it (prices are what every cart of the tenant shows).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .context import RestContext


async def get_catalog(request: Request) -> Response:
    ctx: RestContext = request.app.state.rest
    grant = ctx.grant(request)
    catalog = await ctx.store.catalog(grant.tenant)
    prices = {product: {"unit_price": price.unit_price, "currency": price.currency}
              for product, price in sorted(catalog.items())}
    return JSONResponse({"tenant": grant.tenant, "prices": prices}, headers={"Cache-Control": "no-cache"})
