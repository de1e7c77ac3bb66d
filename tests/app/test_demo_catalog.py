"""Tenant ``demo``'s sample catalog: there in development, never over a catalog someone loaded."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from harness.catalog import load_catalog
from syncline.app.demo_catalog import DEMO_PRICES
from tests.rest.inprocess import InProcessRelay

from .test_pages import served as served  # noqa: F401  (the real `syncline serve` fixture)


def _prices(relay: InProcessRelay) -> dict[str, object]:
    with relay.client(relay.token("demo")) as client:
        response = client.get("/v1/tenants/demo/catalog")
    assert response.status_code == 200
    return dict(response.json()["prices"])


def test_a_development_relay_sells_the_demo_products(served: tuple[str, list[str]]) -> None:
    base, banner = served
    demo = next(line for line in banner if line.lstrip().startswith("Demo"))
    token = parse_qs(urlsplit(demo.split(": ", 1)[1]).fragment)["token"][0]
    response = httpx.get(base + "/v1/tenants/demo/catalog", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["prices"] == {
        product: {"unit_price": price.unit_price, "currency": price.currency} for product, price in DEMO_PRICES.items()
    }


def test_a_relay_with_a_configured_secret_gives_no_sample_prices(tmp_path: Path) -> None:
    relay = InProcessRelay(tmp_path / "relay").start()
    try:
        assert _prices(relay) == {}
    finally:
        relay.stop()


def test_the_sample_never_replaces_a_loaded_catalog(tmp_path: Path) -> None:
    load_catalog(tmp_path / "relay", "demo", {"currency": "USD", "prices": {"lamp": 4200}})
    relay = InProcessRelay(tmp_path / "relay", demo_catalog=True).start()
    try:
        assert _prices(relay) == {"lamp": {"unit_price": 4200, "currency": "USD"}}
    finally:
        relay.stop()
    relay = InProcessRelay(tmp_path / "fresh", demo_catalog=True).start()
    try:
        assert set(_prices(relay)) == set(DEMO_PRICES)
    finally:
        relay.stop()
