"""Stock over REST against a real relay: adjustments, levels, paged history, offline batches, conflicts."""

from __future__ import annotations

import base64
import logging
from typing import Any

import httpx
import pytest

from syncline.engine.conflicts import negative_level_id
from tests.rest.helpers import assert_problem, new_id, store_state
from tests.rest.inprocess import InProcessRelay

pytestmark = pytest.mark.timeout(60)

T0 = 1_790_000_000_000


def stock_path(location: str, rest: str) -> str:
    return f"/v1/tenants/acme/stock/{location}{rest}"


def adjustment(adjustment_id: str, sku: str, delta: int, at: int, *, reason: str = "count", actor: str = "ann",
               ref: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": adjustment_id, "sku": sku, "delta": delta, "reason": reason, "actor": actor,
                            "at": at}
    if ref is not None:
        body["ref"] = ref
    return body


def post(api: httpx.Client, location: str, body: dict[str, Any]) -> httpx.Response:
    return api.post(stock_path(location, "/adjustments"), json=body)


def test_an_adjustment_is_created_once_and_a_changed_body_under_its_id_is_refused(
    module_relay: InProcessRelay, module_api: httpx.Client,
) -> None:
    location = new_id("loc")
    body = adjustment("a-1", "tee", 5, T0, reason="restock", ref="po-7")
    first = post(module_api, location, body)
    assert first.status_code == 201
    assert first.json() == {"adjustment": body, "created": True, "level": 5}
    before = store_state(module_relay)
    again = post(module_api, location, body)
    assert again.status_code == 200
    assert again.json() == {"adjustment": body, "created": False, "level": 5}
    assert again.headers["etag"] == first.headers["etag"]
    assert store_state(module_relay) == before  # the same adjustment again stores nothing
    for changed in ({**body, "delta": 6}, {**body, "sku": "mug"}, {**body, "at": T0 + 1}, {**body, "actor": "bob"}):
        problem = assert_problem(post(module_api, location, changed), 409, "duplicate-adjustment")
        assert problem["detail"] == "adjustment a-1"
    assert store_state(module_relay) == before
    assert module_api.get(stock_path(location, "/levels/tee")).json() == {"location": location, "sku": "tee",
                                                                          "level": 5}


def test_a_retry_without_a_timestamp_is_recognised_as_the_same_adjustment(module_api: httpx.Client) -> None:
    location = new_id("loc")
    body = {"id": "sale-1", "sku": "mug", "delta": -1, "reason": "sale", "actor": "till-3"}
    first = post(module_api, location, {**body, "delta": 4, "id": "in-1"})
    assert first.status_code == 201
    created = post(module_api, location, body)
    assert created.status_code == 201
    stamped = created.json()["adjustment"]
    assert stamped == {**body, "at": stamped["at"]} and stamped["at"] > T0
    retried = post(module_api, location, body)
    assert (retried.status_code, retried.json()) == (200, {"adjustment": stamped, "created": False, "level": 3})


def test_levels_of_every_sku_and_of_one(module_api: httpx.Client) -> None:
    location = new_id("loc")
    empty = module_api.get(stock_path(location, "/levels"))
    assert empty.json() == {"location": location, "levels": {}, "open_conflicts": 0}
    post(module_api, location, adjustment("a", "tee", 10, T0))
    post(module_api, location, adjustment("b", "tee", -3, T0 + 1, reason="sale"))
    post(module_api, location, adjustment("c", "mug", 4, T0 + 2))
    post(module_api, location, adjustment("d", "cap", 2, T0 + 3))
    post(module_api, location, adjustment("e", "cap", -2, T0 + 4, reason="sale"))
    levels = module_api.get(stock_path(location, "/levels"))
    assert levels.status_code == 200
    assert levels.json() == {"location": location, "levels": {"cap": 0, "mug": 4, "tee": 7}, "open_conflicts": 0}
    assert list(levels.json()["levels"]) == ["cap", "mug", "tee"]
    for sku, level in (("tee", 7), ("mug", 4), ("cap", 0), ("never-seen", 0)):
        response = module_api.get(stock_path(location, f"/levels/{sku}"))
        assert response.json() == {"location": location, "sku": sku, "level": level}
        assert response.headers["etag"] == levels.headers["etag"]
    assert_problem(module_api.get(stock_path(location, "/levels/" + "x" * 129)), 400, "invalid-parameter")


def test_history_pages_cover_every_entry_exactly_once_in_order(module_api: httpx.Client) -> None:
    location = new_id("loc")
    entries = []
    # Posted out of order, some at the same millisecond (the id breaks the tie).
    for index, at in enumerate([5, 1, 3, 3, 3, 9, 0, 7, 7, 2, 8, 4, 6]):
        body = adjustment(f"adj-{index:02d}", "tee" if index % 3 else "mug", index + 1, T0 + at)
        assert post(module_api, location, body).status_code == 201
        entries.append({"type": "adjustment", **body})
    expected = sorted(entries, key=lambda e: (e["at"], e["id"]))
    whole = module_api.get(stock_path(location, "/history"))
    assert whole.json() == {"location": location, "entries": expected, "next_cursor": None}
    for limit in (1, 4, 5, 13, 500):
        seen: list[dict[str, Any]] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor is not None:
                params["cursor"] = cursor
            page = module_api.get(stock_path(location, "/history"), params=params)
            assert page.status_code == 200, page.text
            body = page.json()
            assert len(body["entries"]) <= limit
            seen += body["entries"]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == expected, limit
        assert pages == -(-len(expected) // limit)
    only_mug = module_api.get(stock_path(location, "/history"), params={"sku": "mug", "limit": 2})
    mug = [entry for entry in expected if entry["sku"] == "mug"]
    assert only_mug.json()["entries"] == mug[:2]
    rest = module_api.get(stock_path(location, "/history"),
                          params={"sku": "mug", "cursor": only_mug.json()["next_cursor"]})
    assert rest.json() == {"location": location, "entries": mug[2:], "next_cursor": None}


@pytest.mark.parametrize("query", [
    {"cursor": "not-a-cursor!"},
    {"cursor": "%%%"},
    {"cursor": base64.urlsafe_b64encode(b"[1,3,\"a\"]").decode()},
    {"cursor": base64.urlsafe_b64encode(b"{\"at\":1}").decode()},
    {"cursor": base64.urlsafe_b64encode(b"[1.5,0,\"a\"]").decode()},
    {"cursor": base64.urlsafe_b64encode(b"\xff\xfe").decode()},
    {"cursor": "A" * 2000},
    {"limit": "0"},
    {"limit": "501"},
    {"limit": "-1"},
    {"limit": "ten"},
    {"limit": "1.5"},
    {"limit": "9" * 5000},
    {"limit": "１"},
    {"sku": ""},
    {"sku": "x" * 129},
    {"page": "2"},
    {"offset": "0"},
])
def test_a_bad_history_query_is_a_400_problem(module_api: httpx.Client, query: dict[str, str]) -> None:
    body = assert_problem(module_api.get(stock_path("loc-q", "/history"), params=query), 400, "invalid-parameter")
    assert body["parameter"] == next(iter(query))


def batch(api: httpx.Client, location: str, operations: list[Any], **headers: str) -> httpx.Response:
    return api.post(stock_path(location, "/batch"), json={"operations": operations}, headers=headers)


def test_an_offline_batch_answers_one_result_per_operation_in_order(module_relay: InProcessRelay,
                                                                    module_api: httpx.Client) -> None:
    location = new_id("loc")
    post(module_api, location, adjustment("before", "cap", 3, T0))
    first = adjustment("q-1", "tee", 10, T0 + 1)
    operations: list[Any] = [
        {"type": "adjust", **first},
        {"type": "adjust", **adjustment("q-2", "tee", -4, T0 + 2, reason="sale")},
        {"type": "adjust", **adjustment("before", "cap", 3, T0)},          # already known: duplicate
        {"type": "adjust", **adjustment("q-1", "tee", 11, T0 + 1)},        # same id, other body
        {"type": "adjust", "id": "q-5", "sku": "tee", "delta": 0, "reason": "x", "actor": "a"},
        {"type": "teleport", "id": "q-6"},
        "not an object",
        {"type": "adjust", **adjustment("q-8", "mug", 2, T0 + 3), "extra": 1},
        {"type": "adjust", **adjustment("q-9", "mug", 2, T0 + 3)},
        {"type": "adjust", **adjustment("q-1", "tee", 10, T0 + 1)},        # repeated within the batch
    ]
    response = batch(module_api, location, operations)
    assert response.status_code == 200
    body = response.json()
    results = body["results"]
    assert [r["index"] for r in results] == list(range(len(operations)))
    assert [r["status"] for r in results] == ["applied", "applied", "duplicate", "rejected", "rejected",
                                              "rejected", "rejected", "rejected", "applied", "duplicate"]
    assert results[0]["adjustment"] == first
    assert results[2]["adjustment"] == adjustment("before", "cap", 3, T0)
    problems = {r["index"]: r["problem"] for r in results if r["status"] == "rejected"}
    base = "https://syncline.dev/problems/"
    assert problems[3] == {"type": base + "duplicate-adjustment", "status": 409, "detail": "adjustment q-1",
                           "title": "An adjustment with this id exists with a different body"}
    assert problems[4]["type"] == base + "validation-error"
    assert problems[4]["errors"] == [{"field": "operations[4].delta", "reason": "must not be zero"}]
    assert problems[5]["errors"] == [{"field": "operations[5].type", "reason": "must be one of adjust, count, resolve"}]
    assert problems[6]["errors"] == [{"field": "operations[6]", "reason": "must be an object, not a string"}]
    assert problems[7]["errors"][0]["field"] == "operations[7].extra"
    assert body["levels"] == {"cap": 3, "mug": 2, "tee": 6}
    assert module_api.get(stock_path(location, "/levels")).json()["levels"] == {"cap": 3, "mug": 2, "tee": 6}
    # Replaying the batch: everything that was applied is now a duplicate; nothing is stored.
    before = store_state(module_relay)
    replay = batch(module_api, location, operations).json()
    assert [r["status"] for r in replay["results"]] == ["duplicate", "duplicate", "duplicate", "rejected",
                                                        "rejected", "rejected", "rejected", "rejected",
                                                        "duplicate", "duplicate"]
    assert replay["levels"] == {"cap": 3, "mug": 2, "tee": 6}
    assert store_state(module_relay) == before


def test_replaying_a_clean_batch_gives_all_duplicates_and_keeps_the_levels(module_relay: InProcessRelay,
                                                                           module_api: httpx.Client) -> None:
    location = new_id("loc")
    operations = [{"type": "adjust", "id": f"o-{n}", "sku": "sock", "delta": n, "reason": "offline", "actor": "pos"}
                  for n in range(1, 21)]
    first = batch(module_api, location, operations).json()
    assert [r["status"] for r in first["results"]] == ["applied"] * 20
    assert first["levels"] == {"sock": 210}
    levels = module_api.get(stock_path(location, "/levels"))
    before = store_state(module_relay)
    for _ in range(2):
        replay = batch(module_api, location, operations).json()
        assert [r["status"] for r in replay["results"]] == ["duplicate"] * 20
        assert [r["adjustment"] for r in replay["results"]] == [r["adjustment"] for r in first["results"]]
        assert replay["levels"] == {"sock": 210}
    assert store_state(module_relay) == before
    after = module_api.get(stock_path(location, "/levels"))
    assert after.json() == levels.json() and after.headers["etag"] == levels.headers["etag"]


def test_a_batch_with_no_or_too_many_operations_is_refused(module_relay: InProcessRelay,
                                                          module_api: httpx.Client) -> None:
    location = new_id("loc")
    before = store_state(module_relay)
    operation = {"type": "adjust", "id": "x", "sku": "tee", "delta": 1, "reason": "r", "actor": "a"}
    for operations in ([], [operation] * 501):
        body = assert_problem(batch(module_api, location, operations), 422, "validation-error")
        assert body["errors"] == [{"field": "operations", "reason": "must hold 1 to 500 operations"}]
    body = assert_problem(module_api.post(stock_path(location, "/batch"), json={"operations": {"0": operation}}),
                          422, "validation-error")
    assert body["errors"] == [{"field": "operations", "reason": "must be an array, not an object"}]
    assert store_state(module_relay) == before


def oversell(api: httpx.Client, location: str, sku: str) -> dict[str, Any]:
    """Stock 2 of ``sku``, sell 3 and 1 (concurrent sales, as two tills would): one open conflict."""
    post(api, location, adjustment(f"{sku}-in", sku, 2, T0))
    post(api, location, adjustment(f"{sku}-s1", sku, -3, T0 + 1, reason="sale"))
    post(api, location, adjustment(f"{sku}-s2", sku, -1, T0 + 2, reason="sale"))
    conflicts = api.get(stock_path(location, "/conflicts")).json()["conflicts"]
    mine = [c for c in conflicts if c["sku"] == sku]
    assert mine == [{"id": negative_level_id(sku, [f"{sku}-s1", f"{sku}-s2"]), "kind": "negative_level",
                     "sku": sku, "level": -2, "adjustments": [f"{sku}-s1", f"{sku}-s2"], "counts": []}]
    return mine[0]


def resolve(api: httpx.Client, location: str, conflict_id: str, body: dict[str, Any]) -> httpx.Response:
    return api.post(stock_path(location, f"/conflicts/{conflict_id}/resolve"), json=body)


def test_overselling_opens_a_conflict_and_accepting_it_keeps_the_level(module_api: httpx.Client) -> None:
    location = new_id("loc")
    assert module_api.get(stock_path(location, "/conflicts")).json() == {"location": location, "conflicts": []}
    conflict = oversell(module_api, location, "tee")
    assert module_api.get(stock_path(location, "/levels")).json()["open_conflicts"] == 1
    response = resolve(module_api, location, conflict["id"],
                       {"strategy": "accept", "actor": "mgr", "note": "backorder", "at": T0 + 10, "id": "r-1"})
    assert response.status_code == 200
    resolution = {"id": "r-1", "conflict": conflict["id"], "sku": "tee", "strategy": "accept", "actor": "mgr",
                  "at": T0 + 10, "note": "backorder"}
    assert response.json() == {"resolution": resolution, "level": -2}
    assert module_api.get(stock_path(location, "/conflicts")).json()["conflicts"] == []
    assert module_api.get(stock_path(location, "/levels")).json() == {"location": location, "levels": {"tee": -2},
                                                                      "open_conflicts": 0}
    history = module_api.get(stock_path(location, "/history")).json()["entries"]
    assert history[-1] == {"type": "resolution", **resolution}
    assert [e["id"] for e in history] == ["tee-in", "tee-s1", "tee-s2", "r-1"]
    # The conflict is no longer open: resolving it again is a 404; the same resolution id replays.
    assert_problem(resolve(module_api, location, conflict["id"], {"strategy": "accept", "actor": "mgr"}),
                   404, "unknown-conflict")
    replay = resolve(module_api, location, conflict["id"],
                     {"strategy": "accept", "actor": "mgr", "note": "backorder", "at": T0 + 10, "id": "r-1"})
    assert replay.json() == {"resolution": resolution, "level": -2}
    assert_problem(resolve(module_api, location, conflict["id"],
                           {"strategy": "accept", "actor": "other", "id": "r-1"}), 409, "duplicate-resolution")


def test_compensating_a_conflict_records_the_adjustment_that_brings_it_to_zero(
    module_api: httpx.Client,
) -> None:
    location = new_id("loc")
    conflict = oversell(module_api, location, "mug")
    response = resolve(module_api, location, conflict["id"], {"strategy": "compensate", "actor": "mgr",
                                                              "at": T0 + 20})
    assert response.status_code == 200
    body = response.json()
    assert body["level"] == 0
    resolution = body["resolution"]
    assert resolution == {"id": resolution["id"], "conflict": conflict["id"], "sku": "mug",
                          "strategy": "compensate", "actor": "mgr", "at": T0 + 20,
                          "adjustment": f"resolve:{conflict['id']}"}
    assert module_api.get(stock_path(location, "/conflicts")).json()["conflicts"] == []
    history = module_api.get(stock_path(location, "/history"), params={"sku": "mug"}).json()["entries"]
    assert history[-2:] == [
        {"type": "adjustment", "id": f"resolve:{conflict['id']}", "sku": "mug", "delta": 2,
         "reason": "conflict-compensate", "actor": "mgr", "at": T0 + 20, "ref": conflict["id"]},
        {"type": "resolution", **resolution},
    ]


def test_merging_a_conflict_adopts_the_given_level_and_needs_one(module_relay: InProcessRelay,
                                                                  module_api: httpx.Client) -> None:
    location = new_id("loc")
    conflict = oversell(module_api, location, "cap")
    before = store_state(module_relay)
    body = assert_problem(resolve(module_api, location, conflict["id"], {"strategy": "merge", "actor": "mgr"}),
                          422, "validation-error")
    assert body["errors"] == [{"field": "level", "reason": "the merge strategy needs the level to adopt"}]
    for bad in ({"strategy": "accept", "actor": "mgr", "level": 3}, {"strategy": "merge", "actor": "mgr", "level": -1},
                {"strategy": "merge", "actor": "mgr", "level": 1.5}, {"strategy": "undo", "actor": "mgr"},
                {"strategy": "merge", "level": 3}, {"strategy": "merge", "actor": "mgr", "level": True}):
        assert_problem(resolve(module_api, location, conflict["id"], bad), 422, "validation-error")
    assert store_state(module_relay) == before
    response = resolve(module_api, location, conflict["id"],
                       {"strategy": "merge", "actor": "mgr", "level": 7, "at": T0 + 30, "note": "recount"})
    assert response.status_code == 200
    assert response.json()["level"] == 7
    assert response.json()["resolution"]["level"] == 7
    assert module_api.get(stock_path(location, "/levels/cap")).json()["level"] == 7
    assert module_api.get(stock_path(location, "/conflicts")).json()["conflicts"] == []
    history = module_api.get(stock_path(location, "/history")).json()["entries"]
    assert [(e["type"], e["id"]) for e in history[-2:]] == [("adjustment", f"resolve:{conflict['id']}"),
                                                            ("resolution", response.json()["resolution"]["id"])]
    assert history[-2]["delta"] == 9 and history[-2]["reason"] == "conflict-merge"


def test_a_further_sale_after_a_resolution_opens_a_new_conflict(module_api: httpx.Client) -> None:
    location = new_id("loc")
    conflict = oversell(module_api, location, "sock")
    resolve(module_api, location, conflict["id"], {"strategy": "accept", "actor": "mgr"})
    post(module_api, location, adjustment("sock-s3", "sock", -1, T0 + 40, reason="sale"))
    conflicts = module_api.get(stock_path(location, "/conflicts")).json()["conflicts"]
    assert conflicts == [{"id": negative_level_id("sock", ["sock-s1", "sock-s2", "sock-s3"]),
                          "kind": "negative_level", "sku": "sock", "level": -3,
                          "adjustments": ["sock-s1", "sock-s2", "sock-s3"], "counts": []}]


def test_resolving_an_unknown_conflict_is_a_404(
    module_relay: InProcessRelay, module_api: httpx.Client,
) -> None:
    location = new_id("loc")
    oversell(module_api, location, "tee")
    before = store_state(module_relay)
    body = assert_problem(resolve(module_api, location, "negative_level:000000000000000000000000",
                                  {"strategy": "accept", "actor": "mgr"}), 404, "unknown-conflict")
    assert body["detail"] == "conflict negative_level:000000000000000000000000"
    assert store_state(module_relay) == before
    assert len(module_api.get(stock_path(location, "/conflicts")).json()["conflicts"]) == 1


def test_a_batch_can_resolve_a_conflict_and_replays_as_duplicates(module_relay: InProcessRelay,
                                                                   module_api: httpx.Client,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncline.rest")
    location = new_id("loc")
    sales = [{"type": "adjust", **adjustment("in", "tee", 1, T0)},
             {"type": "adjust", **adjustment("s1", "tee", -2, T0 + 1, reason="sale")}]
    conflict_id = negative_level_id("tee", ["s1"])
    operations = [*sales, {"type": "resolve", "id": "res-1", "conflict": conflict_id, "strategy": "compensate",
                           "actor": "mgr", "at": T0 + 2},
                  {"type": "resolve", "conflict": conflict_id, "strategy": "accept", "actor": "mgr"},
                  {"type": "resolve", "id": "res-2", "conflict": "nope", "strategy": "accept", "actor": "mgr"}]
    body = batch(module_api, location, operations).json()
    assert [r["status"] for r in body["results"]] == ["applied", "applied", "applied", "rejected", "rejected"]
    assert body["results"][3]["problem"]["errors"] == [{"field": "operations[3].id", "reason": "is required"}]
    assert body["results"][4]["problem"] == {"type": "https://syncline.dev/problems/unknown-conflict",
                                             "title": "No open conflict has this id", "status": 404,
                                             "detail": "conflict nope"}
    assert body["results"][2]["resolution"]["adjustment"] == f"resolve:{conflict_id}"
    assert body["levels"] == {"tee": 0}

    def resolved_lines() -> list[tuple[str, str, str, str]]:
        return [(r.location, r.conflict, r.resolution, r.strategy) for r in caplog.records
                if r.getMessage() == "stock conflict resolved" and r.location == location]

    assert resolved_lines() == [(location, conflict_id, "res-1", "compensate")]  # the applied one, once
    before = store_state(module_relay)
    replay = batch(module_api, location, operations[:3]).json()
    assert [r["status"] for r in replay["results"]] == ["duplicate"] * 3
    assert replay["levels"] == {"tee": 0}
    assert store_state(module_relay) == before
    assert len(resolved_lines()) == 1, "a duplicate resolution is not logged again"


def test_a_ledger_etag_is_computed_once_per_view_and_keeps_no_view_alive() -> None:
    # Regression: an ETag cache once held the last 256 views, each a whole parsed ledger (100 MiB on a large one).
    import gc
    import weakref

    from syncline.adapters.rest.etags import ledger_etag
    from syncline.engine import StockLedger

    ledger = StockLedger.new("l-cache")
    ledger.record("a-0", "tee", 1, reason="restock", actor="t")
    first = ledger.view()
    tag = ledger_etag(first)
    assert "digest" in vars(first)  # cached on the view itself
    assert ledger_etag(first) == tag
    watch = weakref.ref(first)
    for n in range(1, 20):
        ledger.record(f"a-{n}", "tee", 1, reason="restock", actor="t")
        assert ledger_etag(ledger.view()) != tag
    del first
    gc.collect()
    assert watch() is None
    other = StockLedger.new("l-other")
    other.record("a-0", "tee", 1, reason="restock", actor="t", at=ledger.view().adjustments[0].at)
    assert ledger_etag(other.view()) == tag  # equal content, equal tag
