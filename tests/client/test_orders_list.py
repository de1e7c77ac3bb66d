"""Listing a tenant's orders from the Python client against a real relay: one page, filters,
cursor pages, refusals as typed errors, bad arguments refused before any request, and the CLI.

The module's relay holds five orders placed by REST checkouts and moved over REST; every
test only reads them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from harness.catalog import CATALOG, load_catalog
from harness.relay_process import RelayProcess
from syncline.adapters.client import (
    InvalidQuery,
    OrderSummary,
    RelayUnreachable,
    RestProblem,
    SyncClient,
    all_orders,
    list_orders,
)
from syncline.engine.tokens import issue_token

from .support import REPO, base_url, closed_port

pytestmark = pytest.mark.anyio

TENANT = "/v1/tenants/acme"
CARTS: dict[str, list[tuple[str, int]]] = {
    "lo-1": [("tee", 2)],
    "lo-2": [("mug", 1)],
    "lo-3": [("cap", 1)],
    "lo-4": [("sock", 3)],
    "lo-5": [("tee", 1), ("mug", 1)],
}
MOVES: list[tuple[str, str, dict[str, str]]] = [
    ("lo-2", "stage", {"stage": "confirmed"}),
    ("lo-4", "stage", {"stage": "confirmed"}),
    ("lo-4", "payment", {"status": "paid"}),
    ("lo-5", "payment", {"status": "paid"}),
    ("lo-3", "cancel", {}),
]
EXPECTED = [  # id, stage, payment, total
    ("lo-1", "placed", "pending", 2598),
    ("lo-2", "confirmed", "pending", 450),
    ("lo-3", "cancelled", "pending", 999),
    ("lo-4", "confirmed", "paid", 900),
    ("lo-5", "placed", "paid", 1749),
]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """A relay with the catalog's prices and the five orders of :data:`EXPECTED`."""
    path = tmp_path_factory.mktemp("orders") / "relay"
    load_catalog(path, "acme", CATALOG)
    relay = RelayProcess(path).start()
    try:
        headers = {"Authorization": f"Bearer {relay.token('acme')}"}
        with httpx.Client(base_url=relay.http_url, headers=headers, timeout=10.0) as api:
            for cart, lines in CARTS.items():
                for product, quantity in lines:
                    added = api.post(f"{TENANT}/carts/{cart}/items",
                                     json={"product": product, "quantity": quantity})
                    assert added.status_code in (200, 201), added.text
                placed = api.post(f"{TENANT}/carts/{cart}/checkout",
                                  json={"location": "north", "actor": "till-7"})
                assert placed.status_code == 201, placed.text
            for order, move, body in MOVES:
                moved = api.post(f"{TENANT}/orders/{order}/{move}", json={**body, "actor": "back-office"})
                assert moved.status_code == 200, moved.text
        yield relay
    finally:
        relay.stop()


def _rows(orders: list[OrderSummary]) -> list[tuple[str, str, str, int]]:
    return [(o.id, o.stage, o.payment, o.total) for o in orders]


async def test_one_page_lists_the_tenants_orders_in_id_order_with_their_summaries(shop: RelayProcess) -> None:
    page = await list_orders(base_url(shop), shop.token("acme"), "acme")  # the ws:// address, as a client has
    assert _rows(page.orders) == EXPECTED
    assert page.next_cursor is None
    last = page.orders[4]
    assert last == OrderSummary(id="lo-5", cart="lo-5", location="north", currency="EUR", total=1749,
                                stage="placed", payment="paid", placed_at=last.placed_at, lines=2)
    assert last.placed_at > 1_700_000_000_000


async def test_stage_and_payment_filters_are_applied_by_the_relay(shop: RelayProcess) -> None:
    token = shop.token("acme")
    confirmed = await list_orders(shop.http_url, token, "acme", stage="confirmed")
    assert [o.id for o in confirmed.orders] == ["lo-2", "lo-4"]
    paid = await list_orders(shop.http_url, token, "acme", payment="paid")
    assert [o.id for o in paid.orders] == ["lo-4", "lo-5"]
    both = await list_orders(shop.http_url, token, "acme", stage="confirmed", payment="paid")
    assert [o.id for o in both.orders] == ["lo-4"] and both.next_cursor is None
    none = await list_orders(shop.http_url, token, "acme", stage="ready")
    assert none.orders == [] and none.next_cursor is None


async def test_pages_of_two_followed_by_their_cursors_and_all_orders_equal_the_whole_list(
        shop: RelayProcess) -> None:
    token = shop.token("acme")
    whole = (await list_orders(shop.http_url, token, "acme")).orders
    walked: list[OrderSummary] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await list_orders(f"{base_url(shop)}/v1/sync/", token, "acme", limit=2, cursor=cursor)
        assert len(page.orders) <= 2
        walked += page.orders
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert walked == whole and pages == 3
    assert [o async for o in all_orders(base_url(shop), token, "acme", limit=2)] == whole
    paid = [o.id async for o in all_orders(base_url(shop), token, "acme", payment="paid", limit=1)]
    assert paid == ["lo-4", "lo-5"]


async def test_the_sync_client_lists_through_the_first_of_its_urls_that_answers(shop: RelayProcess,
                                                                                tmp_path: Path) -> None:
    # The first node is down: the page comes from the second, with the client's token.
    client = SyncClient(data_dir=tmp_path / "till", urls=[f"ws://127.0.0.1:{closed_port()}", base_url(shop)],
                        token=shop.token("acme"))
    page = await client.list_orders("acme", stage="confirmed", limit=1)
    assert [o.id for o in page.orders] == ["lo-2"] and page.next_cursor is not None
    rest = await client.list_orders("acme", stage="confirmed", cursor=page.next_cursor)
    assert [o.id for o in rest.orders] == ["lo-4"] and rest.next_cursor is None
    async with client:  # the same inside the client's context
        assert _rows((await client.list_orders("acme")).orders) == EXPECTED


async def test_several_relays_are_asked_in_turn_until_one_answers_and_an_error_answer_is_final(
        shop: RelayProcess) -> None:
    down, also_down = (f"ws://127.0.0.1:{closed_port()}" for _ in range(2))
    token = shop.token("acme")
    page = await list_orders([down, also_down, base_url(shop)], token, "acme", limit=2)
    assert _rows(page.orders) == EXPECTED[:2]
    assert [o.id async for o in all_orders([down, base_url(shop)], token, "acme", limit=2)] == [r[0] for r in EXPECTED]
    with pytest.raises(RestProblem) as refused:  # the relay answered: the next one is not asked
        await list_orders([base_url(shop), down], "forged", "acme")
    assert refused.value.status == 401
    with pytest.raises(RelayUnreachable) as unreachable:  # none answered: the last one's failure
        await list_orders([down, also_down], token, "acme", timeout=2)
    assert unreachable.value.url == f"http://127.0.0.1:{also_down.rsplit(':', 1)[1]}/v1/tenants/acme/orders"
    with pytest.raises(InvalidQuery) as none_given:
        await list_orders([], token, "acme")
    assert none_given.value.field == "base_url"
    with pytest.raises(InvalidQuery) as second_bad:  # every address is checked before any request
        await list_orders([base_url(shop), "ftp://127.0.0.1:1"], token, "acme")
    assert second_bad.value.field == "base_url"


@pytest.mark.parametrize(
    ("token", "status", "problem"),
    [
        (issue_token("another-secret-" + "y" * 40, "acme", ["acme/*"]), 401, "unauthorized"),
        (None, 401, "unauthorized"),
        ("globex", 403, "forbidden"),  # a valid token of another tenant (issued below)
    ],
)
async def test_a_refused_token_raises_rest_problem_with_the_status_and_problem(
        shop: RelayProcess, token: str | None, status: int, problem: str) -> None:
    if token == "globex":
        token = shop.token("globex")
    with pytest.raises(RestProblem) as raised:
        await list_orders(base_url(shop), token, "acme")
    assert raised.value.status == status
    assert raised.value.type == f"https://syncline.dev/problems/{problem}"
    assert raised.value.title and raised.value.url == f"{shop.http_url}/v1/tenants/acme/orders"
    assert shop.token("acme") not in str(raised.value)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"stage": "shipped"}, "stage"),
        ({"payment": "PAID"}, "payment"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": True}, "limit"),
        ({"cursor": ""}, "cursor"),
        ({"tenant": "acme/order"}, "tenant"),
        ({"base_url": "ftp://127.0.0.1:1"}, "base_url"),
        ({"timeout": 0}, "timeout"),
    ],
)
async def test_a_bad_argument_fails_before_any_request(arguments: dict[str, Any], field: str) -> None:
    # Nothing listens on the port: a request would raise RelayUnreachable instead.
    call: dict[str, Any] = {"base_url": f"ws://127.0.0.1:{closed_port()}", "token": "t", "tenant": "acme",
                            **arguments}
    with pytest.raises(InvalidQuery) as raised:
        await list_orders(**call)
    assert raised.value.field == field


async def test_an_unreachable_or_silent_relay_raises_relay_unreachable() -> None:
    url = f"ws://127.0.0.1:{closed_port()}"
    with pytest.raises(RelayUnreachable) as raised:
        await list_orders(url, "t", "acme", timeout=2)
    assert raised.value.url == f"http://127.0.0.1:{url.rsplit(':', 1)[1]}/v1/tenants/acme/orders"
    assert isinstance(raised.value, ConnectionError)
    with socket.socket() as silent:  # accepts connections (the backlog does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(RelayUnreachable, match="no answer within 0.3 s|timed out"):
            await list_orders(f"http://127.0.0.1:{silent.getsockname()[1]}", "t", "acme", timeout=0.3)
        assert time.monotonic() - started < 2


def _orders_cli(relay: RelayProcess, data: Path, *args: str,
                token: str | None = None) -> subprocess.CompletedProcess[str]:
    # A node that is down comes first: the CLI asks the next one.
    return subprocess.run(
        [sys.executable, "-m", "syncline.app.cli", "client", "--url", f"ws://127.0.0.1:{closed_port()}",
         "--url", base_url(relay),
         "--token", token or relay.token("acme"), "--data-dir", str(data), "orders", "list", *args],
        capture_output=True, text=True, timeout=60, cwd=REPO, env=dict(os.environ),
    )


async def test_the_cli_prints_one_line_per_order_and_the_next_cursor(shop: RelayProcess, tmp_path: Path) -> None:
    data = tmp_path / "cli"
    first = await anyio.to_thread.run_sync(lambda: _orders_cli(shop, data, "--tenant", "acme", "--limit", "2"))
    assert first.returncode == 0, first.stderr
    *lines, cursor_line = first.stdout.splitlines()
    assert [tuple(line.split()) for line in lines] == [(i, s, p, str(t), "EUR") for i, s, p, t in EXPECTED[:2]]
    assert cursor_line.startswith("next cursor: ")
    second = await anyio.to_thread.run_sync(lambda: _orders_cli(
        shop, data, "--tenant", "acme", "--limit", "2", "--cursor", cursor_line.removeprefix("next cursor: ")))
    assert [line.split()[0] for line in second.stdout.splitlines()[:2]] == ["lo-3", "lo-4"]
    every = await anyio.to_thread.run_sync(lambda: _orders_cli(shop, data, "--tenant", "acme", "--payment", "paid",
                                                               "--limit", "1", "--all"))
    assert every.returncode == 0, every.stderr
    assert [tuple(line.split()[:3]) for line in every.stdout.splitlines()] == [("lo-4", "confirmed", "paid"),
                                                                              ("lo-5", "placed", "paid")]
    assert not data.exists()  # a REST query: no local replica
    refused = await anyio.to_thread.run_sync(lambda: _orders_cli(shop, data, "--tenant", "acme", token="forged"))
    assert refused.returncode == 3 and "401" in refused.stderr and refused.stdout == ""
