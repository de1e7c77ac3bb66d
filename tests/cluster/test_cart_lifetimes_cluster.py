"""Cart lifetimes on a cluster: an access on one node is the cart's access on every node, and
an abandoned guest cart is swept from the shared PostgreSQL store."""

from __future__ import annotations

import time

import asyncpg
import httpx

from harness.services import run_async

from .conftest import Cluster

LIFETIMES = ["--guest-tenant", "acme", "--cart-idle-seconds", "1", "--cart-retention-seconds", "2",
             "--cart-sweep-seconds", "0.2", "--room-idle-seconds", "0.3"]


def stored_rows(cluster: Cluster, doc: str) -> int:
    async def count() -> int:
        con = await asyncpg.connect(cluster.dsn, timeout=5)
        try:
            schema = cluster.schema
            return int(await con.fetchval(
                f'SELECT (SELECT count(*) FROM "{schema}".updates WHERE doc = $1)'
                f' + (SELECT count(*) FROM "{schema}".snapshots WHERE doc = $1)'
                f' + (SELECT count(*) FROM "{schema}".doc_access WHERE doc = $1)', doc))
        finally:
            await con.close()

    return run_async(count)


def test_an_edit_on_one_node_is_the_carts_access_everywhere_and_the_sweep_clears_the_shared_store(
    cluster: Cluster,
) -> None:
    cluster.load_catalog()
    one, two = cluster.start(2, *LIFETIMES)
    with httpx.Client(base_url=one.http_url, timeout=10) as on_one, \
            httpx.Client(base_url=two.http_url, timeout=10) as on_two:
        session = on_one.post("/v1/tenants/acme/guest-sessions").json()
        cart, guest = session["cart"], {"Authorization": f"Bearer {session['token']}"}
        written = on_two.post(f"/v1/tenants/acme/carts/{cart}/items", json={"product": "tee"}, headers=guest)
        assert written.status_code == 200, written.text
        accessed = written.json()["last_accessed_at"]
        read = on_one.get(f"/v1/tenants/acme/carts/{cart}", headers=guest).json()
        assert read["total_quantity"] == 1 and abs(read["last_accessed_at"] - accessed) < 1000
        deadline = time.monotonic() + 15
        while stored_rows(cluster, f"acme/cart/{cart}"):
            assert time.monotonic() < deadline, "the abandoned guest cart was not swept"
            time.sleep(0.1)
