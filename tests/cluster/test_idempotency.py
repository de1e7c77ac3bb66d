"""Idempotency keys across relay nodes: one key applies once, whichever nodes its requests hit.

Two real ``syncline serve`` nodes on one PostgreSQL schema and Redis; the same key is
sent to both at the same instant, many times over. The store is the judge: each cart
line must hold exactly one application, and each key exactly one change-feed row.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from syncline.adapters.rest.context import request_fingerprint
from syncline.engine import Cart
from tests.rest.helpers import PROBLEM_BASE, fire_at_once, is_in_use

from .conftest import Cluster

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

KEYS = 20
QUANTITY = 30


def add(n: int) -> dict[str, Any]:
    return {"product": "tee", "quantity": QUANTITY, "attributes": {"n": n}}


@pytest.mark.slow
async def test_one_key_sent_to_two_nodes_at_once_applies_exactly_once(cluster: Cluster) -> None:
    cluster.load_catalog()
    nodes = cluster.start(2)
    token = nodes[0].token("acme")
    for round_ in range(3):
        cart = f"race-{round_}"
        path = f"/v1/tenants/acme/carts/{cart}/items"
        requests = [(node, f"{cart}-key-{n}", add(n)) for n in range(KEYS) for node in (0, 1)]
        results = await fire_at_once(nodes, token, path, requests)
        originals: dict[str, httpx.Response] = {}
        others: dict[str, list[httpx.Response]] = {}
        for (_, key, _), response in zip(requests, results, strict=True):
            assert response.status_code in (200, 409), response.text
            if response.status_code == 200 and "idempotent-replayed" not in response.headers:
                assert key not in originals, f"{key} was applied twice"
                originals[key] = response
            else:
                others.setdefault(key, []).append(response)
        assert sorted(originals) == sorted({key for _, key, _ in requests})
        for key, responses in others.items():
            for response in responses:
                if not is_in_use(response):
                    assert response.headers["idempotent-replayed"] == "true"
                    assert response.content == originals[key].content
        # Every retry, on either node, now replays the original byte for byte.
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            for node, key, body in requests:
                replay = await http.post(nodes[node].http_url + path, json=body, headers={"Idempotency-Key": key})
                assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
                assert replay.content == originals[key].content
        doc = f"acme/cart/{cart}"
        view = Cart(cluster.stored_doc(doc), cart).view()
        assert sorted((line.attributes["n"], line.quantity) for line in view.lines) == \
            [(n, QUANTITY) for n in range(KEYS)]
        assert cluster.stored_changes(doc) == KEYS
        assert len(cluster.sql("SELECT 1 FROM responses WHERE key LIKE $1", f"{cart}-key-%")) == KEYS
    assert cluster.sql("SELECT * FROM claims") == []


@pytest.mark.slow
async def test_a_key_left_claimed_by_a_dead_node_is_refused_until_its_claim_expires(cluster: Cluster) -> None:
    """A node killed mid-write leaves its claim row behind; nothing was applied under it, so once
    ``--idempotency-claim-seconds`` have passed the next request with the key runs (once)."""
    cluster.load_catalog()
    nodes = cluster.start(2, "--idempotency-claim-seconds", "2")
    token = nodes[0].token("acme")
    path = "/v1/tenants/acme/carts/orphan/items"
    body = add(1)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        # The row a node killed while running this very request leaves behind.
        cluster.sql(
            "INSERT INTO claims (tenant, key, fingerprint, holder, created_at)"
            " VALUES ('acme', 'orphan-key', $1, 'dead-node', extract(epoch FROM clock_timestamp()))",
            request_fingerprint("POST", path, body),
        )
        key = {"Idempotency-Key": "orphan-key"}
        for node in nodes:
            assert is_in_use(await http.post(node.http_url + path, json=body, headers=key))
            other = await http.post(node.http_url + path, json=add(2), headers=key)
            assert other.status_code == 422
            assert other.json()["type"] == PROBLEM_BASE + "idempotency-key-reused"
        assert cluster.stored_changes("acme/cart/orphan") == 0
        with anyio.fail_after(10):
            while is_in_use(response := await http.post(nodes[1].http_url + path, json=body, headers=key)):
                await anyio.sleep(0.2)
        assert response.status_code == 200 and "idempotent-replayed" not in response.headers
        replay = await http.post(nodes[0].http_url + path, json=body, headers=key)
        assert replay.headers["idempotent-replayed"] == "true" and replay.content == response.content
    assert cluster.stored_changes("acme/cart/orphan") == 1
    assert cluster.sql("SELECT * FROM claims") == []
