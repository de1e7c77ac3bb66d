"""The tenant's price catalog over REST: what a storefront lists before anything is in a cart."""

from __future__ import annotations

import pytest

from harness.catalog import CATALOG
from tests.rest.helpers import assert_problem
from tests.rest.inprocess import InProcessRelay

pytestmark = pytest.mark.timeout(60)


def test_any_token_of_the_tenant_reads_every_price(module_relay: InProcessRelay) -> None:
    narrow = module_relay.token("acme", "acme/cart/only-this", read_only=True)
    with module_relay.client(narrow) as client:
        response = client.get("/v1/tenants/acme/catalog")
    assert response.status_code == 200
    body = response.json()
    assert body["tenant"] == "acme"
    assert body["prices"] == {
        product: {"unit_price": cents, "currency": CATALOG["currency"]}
        for product, cents in CATALOG["prices"].items()
    }
    assert list(body["prices"]) == sorted(body["prices"])


def test_a_tenant_without_a_catalog_reads_an_empty_one(module_relay: InProcessRelay) -> None:
    with module_relay.client(module_relay.token("initech")) as client:
        response = client.get("/v1/tenants/initech/catalog")
    assert (response.status_code, response.json()) == (200, {"tenant": "initech", "prices": {}})


def test_another_tenants_catalog_is_refused(module_relay: InProcessRelay) -> None:
    with module_relay.client(module_relay.token("globex")) as client:
        assert_problem(client.get("/v1/tenants/acme/catalog"), 403, "forbidden")
    with module_relay.client() as client:
        assert_problem(client.get("/v1/tenants/acme/catalog"), 401, "unauthorized")
