"""Stocktake counts over REST against the relay: the count endpoint, the batch item, the trail,
and concurrent counts from an offline device that disagree (a count_mismatch both sides see)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pycrdt import Doc

from harness.ypeer import ypeer
from syncline.engine import StockLedger
from syncline.engine.conflicts import count_mismatch_id
from tests.rest.helpers import assert_problem, new_id, store_state
from tests.rest.inprocess import InProcessRelay

pytestmark = pytest.mark.timeout(60)

T0 = 1_790_000_000_000


def path(location: str, rest: str) -> str:
    return f"/v1/tenants/acme/stock/{location}{rest}"


def restock(api: httpx.Client, location: str, sku: str, delta: int, adjustment_id: str, at: int) -> None:
    body = {"id": adjustment_id, "sku": sku, "delta": delta, "reason": "restock" if delta > 0 else "sale",
            "actor": "till", "at": at}
    assert api.post(path(location, "/adjustments"), json=body).status_code == 201


def test_a_count_sets_the_level_is_created_once_and_a_changed_count_under_its_id_is_refused(
    module_relay: InProcessRelay, module_api: httpx.Client,
) -> None:
    location = new_id("loc")
    restock(module_api, location, "tee", 8, "in-1", T0)
    body = {"id": "count-1", "sku": "tee", "counted": 5, "actor": "ann", "at": T0 + 1, "ref": "sheet-9"}
    first = module_api.post(path(location, "/counts"), json=body)
    assert first.status_code == 201, first.text
    stored = {**body, "seen": 8, "base": 8, "after": []}
    assert first.json() == {"count": stored, "created": True, "level": 5, "conflicts": []}
    before = store_state(module_relay)
    again = module_api.post(path(location, "/counts"), json=body)
    assert (again.status_code, again.json()) == (200, {"count": stored, "created": False, "level": 5, "conflicts": []})
    assert again.headers["etag"] == first.headers["etag"]
    assert store_state(module_relay) == before
    for changed in ({**body, "counted": 6}, {**body, "sku": "mug"}, {**body, "actor": "bob"}, {**body, "at": T0 + 2}):
        problem = assert_problem(module_api.post(path(location, "/counts"), json=changed), 409, "duplicate-count")
        assert problem["detail"] == "count count-1"
    assert store_state(module_relay) == before
    # A sale after the count applies on top; a second count sees the first and opens no conflict.
    restock(module_api, location, "tee", -2, "sale-1", T0 + 3)
    second = module_api.post(path(location, "/counts"), json={"id": "count-2", "sku": "tee", "counted": 4,
                                                               "actor": "bob", "at": T0 + 4})
    assert second.json()["count"]["seen"] == 3 and second.json()["count"]["after"] == ["count-1"]
    assert module_api.get(path(location, "/levels")).json() == {"location": location, "levels": {"tee": 4},
                                                                "open_conflicts": 0}
    trail = module_api.get(path(location, "/history"), params={"limit": 2}).json()
    rest = module_api.get(path(location, "/history"), params={"cursor": trail["next_cursor"]}).json()
    assert [(e["type"], e["id"]) for e in trail["entries"] + rest["entries"]] == [
        ("adjustment", "in-1"), ("count", "count-1"), ("adjustment", "sale-1"), ("count", "count-2")]


@pytest.mark.parametrize(("change", "field"), [
    ({"counted": -1}, "counted"), ({"counted": 2.5}, "counted"), ({"counted": True}, "counted"),
    ({"counted": "4"}, "counted"), ({"counted": 1_000_000_001}, "counted"), ({"sku": ""}, "sku"),
    ({"id": None}, "id"), ({"actor": " ann"}, "actor"), ({"at": -1}, "at"), ({"seen": 3}, "seen"),
    ({"after": []}, "after"),
])
def test_a_bad_count_is_a_422_problem_and_stores_nothing(
    module_relay: InProcessRelay, module_api: httpx.Client, change: dict[str, Any], field: str,
) -> None:
    location = new_id("loc")
    body = {"id": "c-1", "sku": "tee", "counted": 3, "actor": "ann", **change}
    before = store_state(module_relay)
    problem = assert_problem(module_api.post(path(location, "/counts"), json=body), 422, "validation-error")
    assert problem["errors"][0]["field"] == field
    assert store_state(module_relay) == before


def test_a_batch_counts_in_order_and_a_replay_gives_duplicates(module_relay: InProcessRelay,
                                                               module_api: httpx.Client) -> None:
    location = new_id("loc")
    operations: list[Any] = [
        {"type": "adjust", "id": "in-1", "sku": "mug", "delta": 6, "reason": "restock", "actor": "till", "at": T0},
        {"type": "count", "id": "c-1", "sku": "mug", "counted": 4, "actor": "ann", "at": T0 + 1},
        {"type": "adjust", "id": "sale-1", "sku": "mug", "delta": -1, "reason": "sale", "actor": "till", "at": T0 + 2},
        {"type": "count", "id": "c-1", "sku": "mug", "counted": 5, "actor": "ann", "at": T0 + 1},
        {"type": "count", "id": "c-3", "sku": "mug", "actor": "ann"},
        {"type": "count", "id": "c-1", "sku": "mug", "counted": 4, "actor": "ann", "at": T0 + 1},
    ]
    response = module_api.post(path(location, "/batch"), json={"operations": operations})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["applied", "applied", "applied", "rejected", "rejected",
                                                      "duplicate"]
    assert body["results"][1]["count"] == {"id": "c-1", "sku": "mug", "counted": 4, "seen": 6, "base": 6, "after": [],
                                           "actor": "ann", "at": T0 + 1}
    assert body["results"][3]["problem"]["type"].endswith("/duplicate-count")
    assert body["results"][4]["problem"]["errors"] == [{"field": "operations[4].counted", "reason": "is required"}]
    assert body["levels"] == {"mug": 3}
    before = store_state(module_relay)
    replay = module_api.post(path(location, "/batch"), json={"operations": operations}).json()
    assert [r["status"] for r in replay["results"]] == ["duplicate", "duplicate", "duplicate", "rejected",
                                                        "rejected", "duplicate"]
    assert store_state(module_relay) == before


@asynccontextmanager
async def rest(relay: InProcessRelay) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {relay.token('acme')}"}
    async with httpx.AsyncClient(base_url=relay.http_url, headers=headers, timeout=10.0) as client:
        yield client


@pytest.mark.anyio
async def test_an_offline_count_concurrent_with_a_rest_count_opens_one_mismatch_seen_alike_and_resolved(
    rest_relay: InProcessRelay, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="syncline.rest")
    location = "north"
    url = rest_relay.url_for(f"acme/stock/{location}")
    async with rest(rest_relay) as client:
        restocked = await client.post(path(location, "/adjustments"), json={
            "id": "in-1", "sku": "tee", "delta": 8, "reason": "restock", "actor": "till", "at": T0})
        assert restocked.status_code == 201
        device = Doc()
        async with ypeer(url, acks=True, doc=device) as peer:  # the device syncs, then goes offline
            await peer.wait_until(lambda doc: StockLedger(doc, location).level("tee") == 8)
        bob = StockLedger(device, location).count("tee", 12, actor="bob", count_id="count-bob", at=T0 + 2)
        ann = await client.post(path(location, "/counts"), json={
            "id": "count-ann", "sku": "tee", "counted": 10, "actor": "ann", "at": T0 + 1})
        assert ann.json()["level"] == 10 and ann.json()["conflicts"] == []
        sale = await client.post(path(location, "/adjustments"), json={
            "id": "sale-1", "sku": "tee", "delta": -1, "reason": "sale", "actor": "till", "at": T0 + 3})
        assert sale.status_code == 201
        async with ypeer(url, acks=True, doc=device) as peer:  # back online: both sides merge
            await peer.wait_until(lambda doc: StockLedger(doc, location).level("tee") == 9)
        conflicts = (await client.get(path(location, "/conflicts"))).json()["conflicts"]
        expected_id = count_mismatch_id("tee", ["count-ann", "count-bob"])
        assert [(c["id"], c["kind"], c["level"]) for c in conflicts] == [(expected_id, "count_mismatch", 9)]
        assert [(c["id"], c["counted"], c["seen"]) for c in conflicts[0]["counts"]] == [
            ("count-ann", 10, 8), ("count-bob", 12, 8)]
        assert [c.id for c in StockLedger(device, location).conflicts()] == [expected_id]
        assert bob.seen == 8
        resolved = await client.post(path(location, f"/conflicts/{expected_id}/resolve"), json={
            "strategy": "merge", "level": 11, "actor": "manager", "id": "recount-1"})
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["level"] == 11
        (line,) = [r for r in caplog.records if r.getMessage() == "stock conflict resolved"]
        assert (line.tenant, line.location, line.conflict, line.resolution, line.sku, line.strategy) == (
            "acme", location, expected_id, "recount-1", "tee", "merge")
        assert line.request_id == resolved.headers["x-request-id"]
        levels = (await client.get(path(location, "/levels"))).json()
        assert levels == {"location": location, "levels": {"tee": 11}, "open_conflicts": 0}
