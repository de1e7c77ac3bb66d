"""The JavaScript client and the engine read the same documents the same way.

Both directions run on whole batches, so Node starts a handful of times, not per example:

* fast-check (``adapters/js/interop/documents.ts generate``) draws random operation
  sequences on four JS replicas, with updates delivered late, twice and out of order;
  the engine reads each replica's state and must derive the view the JS client derived;
* hypothesis draws operation sequences on engine replicas; the JS client reads each
  replica's state (``documents.ts read``) and must derive the engine's view.

The script is compiled by ``npm test`` (or ``node adapters/js/build.mjs``); it is built here
when missing or older than its sources.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc

from harness.vectors import CaseRun, render
from syncline.engine import Cart, EngineError, Order, OrderLine, StockLedger, apply_update, encode_diff, state_vector
from syncline.engine.order import PAYMENTS, STAGES

REPO_ROOT = Path(__file__).resolve().parents[2]
JS = REPO_ROOT / "adapters" / "js"
SCRIPT = JS / "build" / "interop" / "documents.js"
NODE_TIMEOUT = 60


@pytest.fixture(scope="module")
def documents_script(node_toolchain: str) -> list[str]:
    """``node build/interop/documents.js``, built first when stale."""
    sources = [*JS.glob("src/**/*.ts"), *JS.glob("interop/*.ts")]
    if not SCRIPT.is_file() or SCRIPT.stat().st_mtime < max(path.stat().st_mtime for path in sources):
        built = subprocess.run([node_toolchain, str(JS / "build.mjs")], capture_output=True, text=True, timeout=180)
        if built.returncode != 0:
            pytest.fail(f"building adapters/js failed:\n{built.stdout}\n{built.stderr}", pytrace=False)
    return [node_toolchain, str(SCRIPT)]


def node(script: list[str], *args: str, stdin: Any = None) -> Any:
    done = subprocess.run(
        [*script, *args], input=None if stdin is None else json.dumps(stdin), capture_output=True, text=True,
        timeout=NODE_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def engine_view(kind: str, model_id: str, update: str) -> dict[str, Any]:
    doc = Doc()
    apply_update(doc, base64.b64decode(update))
    if kind == "order":
        return render(Order(doc, model_id))
    return render(Cart(doc, model_id) if kind == "cart" else StockLedger(doc, model_id))


# -- JavaScript writes, the engine reads ----------------------------------------------


@pytest.mark.parametrize(("kind", "seed"), [("cart", 1), ("cart", 2), ("stock", 3), ("stock", 4)])
def test_the_engine_derives_the_views_js_replicas_derived_from_random_operations(
    documents_script: list[str], kind: str, seed: int
) -> None:
    generated = node(documents_script, "generate", kind, "60", str(seed))
    lines = held_back = 0
    for number, scenario in enumerate(generated["scenarios"]):
        for name, replica in scenario["replicas"].items():
            view = engine_view(kind, replica["id"], replica["update"])
            assert view == replica["view"], f"seed {seed}, scenario {number}, replica {name}"
            lines += len(view.get("lines", view.get("adjustments", [])))
            held_back += replica["pending"]
    assert lines > 100, "the generated scenarios hardly wrote anything"
    assert held_back > 0, "no replica ever got an update before its dependencies: delivery is not out of order"


# -- the engine writes, JavaScript reads ----------------------------------------------

PRODUCTS = ("tee", "mug", "cap")
ATTRIBUTES: tuple[dict[str, Any], ...] = (
    {}, {"size": "M"}, {"w": 1e-7}, {"f": 0.1 + 0.2}, {"z": -0.0}, {"😀": 1, "\ue000": 2},
    {"s": "a\"b\\c\n\u2028"}, {"color": {"name": "blue", "hex": "#00f"}, "dims": [1, 2.5]}, {"w": 2.0},
)
SKUS = ("tee-M", "mug", "sku-😀")

steps = st.lists(
    st.one_of(
        st.tuples(st.just("edit"), st.integers(0, 3), st.integers(0, 9), st.integers(0, 8), st.integers(0, 12),
                  st.integers(0, 3)),
        st.tuples(st.just("sync"), st.integers(0, 3), st.integers(0, 3), st.booleans()),
    ),
    max_size=30,
)


def python_scenario(kind: str, plan: list[tuple[Any, ...]]) -> dict[str, Any]:
    models: list[Cart | StockLedger] = []
    for index in range(4):
        doc = Doc(client_id=2000 + index)
        clock = lambda index=index: 1_700_000_000_000 + index  # noqa: E731
        models.append(StockLedger(doc, "north", clock=clock) if kind == "stock"
                      else Cart(doc, "c-1" if index < 2 else "g-1", clock=clock))
    for step in plan:
        if step[0] == "sync":
            source, target = models[step[1]], models[step[2]]
            if source is target or (isinstance(source, Cart) and source.cart_id != target.cart_id):  # type: ignore[union-attr]
                continue
            update = encode_diff(source.doc, state_vector(target.doc))
            apply_update(target.doc, update)
            if step[3]:
                apply_update(target.doc, update)  # delivered twice
            continue
        try:
            python_edit(models, *step[1:])
        except EngineError:
            pass  # refused edits (a closed cart, an unknown line) write nothing, in both languages
    names = "abcd"
    return {
        "kind": kind,
        "replicas": {
            names[index]: {
                "id": model.cart_id if isinstance(model, Cart) else "north",
                "update": base64.b64encode(model.doc.get_update()).decode(),
                "view": render(model),
            }
            for index, model in enumerate(models)
        },
    }


def python_edit(models: list[Cart | StockLedger], replica: int, action: int, a: int, b: int, c: int) -> None:
    model = models[replica]
    if isinstance(model, Cart):
        lines = model.lines()
        line = lines[b % len(lines)] if lines else None
        kind = action % 6
        if kind in (0, 1):
            model.add_item(PRODUCTS[c % 3], 1 + b, ATTRIBUTES[a % len(ATTRIBUTES)])
        elif kind == 2 and line is not None:
            model.set_quantity(line.key, b % 5)
        elif kind == 3 and line is not None:
            model.remove_line(line.key)
        elif kind == 4 and a % 3 == 0:
            model.clear()
        elif kind == 5:
            target = models[c % 2]
            assert isinstance(target, Cart)
            if target.cart_id != model.cart_id:
                model.merge_into(target)
        return
    conflicts = model.conflicts()
    if action % 5 == 4 and conflicts:
        conflict = conflicts[b % len(conflicts)]
        strategy = ("accept", "compensate", "merge")[c % 3]
        model.resolve(conflict.id, strategy, actor=f"manager-{replica}",  # type: ignore[arg-type]
                      level=a if strategy == "merge" else None)
        return
    if action % 5 == 3:  # a stocktake: concurrent ones on other replicas disagree or agree
        model.count(SKUS[c % 3], b, actor=f"clerk-{replica}", count_id=f"count-{a}" if a % 2 else None,
                    at=1_700_000_000_000 + b)
        return
    delta = -(1 + b % 4) if action % 2 == 0 else 1 + b % 3
    model.record(f"adj-{a}", SKUS[c % 3], delta, reason="sale" if delta < 0 else "restock",
                 actor=f"till-{replica}", at=1_700_000_000_000 + b)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(kind=st.sampled_from(["cart", "stock"]), plans=st.lists(steps, min_size=25, max_size=25))
def test_js_replicas_derive_the_views_the_engine_derived_from_random_operations(
    documents_script: list[str], kind: str, plans: list[list[tuple[Any, ...]]]
) -> None:
    scenarios = [python_scenario(kind, plan) for plan in plans]
    read = node(documents_script, "read", stdin={"scenarios": scenarios})
    for number, (scenario, result) in enumerate(zip(scenarios, read["scenarios"], strict=True)):
        expected = {name: replica["view"] for name, replica in scenario["replicas"].items()}
        assert result["views"] == expected, f"scenario {number}"


# -- the merge key is the bare cart id, in both languages ------------------------------


def test_a_merge_replayed_by_js_after_a_rest_style_merge_counts_the_guest_once(documents_script: list[str]) -> None:
    """The REST adapter merges ``Cart(doc, guest.doc_id)`` into ``Cart(doc, into)``: bare ids. A JS
    client following docs/semantics.md builds its carts with the same ids, so its replay is a no-op."""
    guest, user = Cart.new("g-1", client_id=1), Cart.new("c-1", client_id=2)
    mug = guest.add_item("mug", 2)
    user.add_item("mug", 1)
    guest.merge_into(user)
    assert user.quantity(mug) == 3
    scenario = {
        "kind": "cart",
        "replicas": {
            "guest": {"id": "g-1", "update": base64.b64encode(guest.doc.get_update()).decode()},
            "user": {"id": "c-1", "update": base64.b64encode(user.doc.get_update()).decode()},
        },
        "steps": [{"op": "merge", "replica": "guest", "into": "user"}],
    }
    [result] = node(documents_script, "read", stdin={"scenarios": [scenario]})["scenarios"]
    assert result["outcomes"][0]["replayed"] is True
    assert result["views"]["user"]["lines"][0]["quantity"] == 3
    assert result["views"]["guest"]["status"] == {"state": "merged", "merged_into": "c-1", "merged_at": result[
        "views"]["guest"]["status"]["merged_at"], "order": None, "checked_out_at": None}


def test_a_js_merge_then_an_engine_replay_counts_the_guest_once(documents_script: list[str]) -> None:
    empty = base64.b64encode(Doc().get_update()).decode()
    scenario = {
        "kind": "cart",
        "replicas": {"guest": {"id": "g-1", "client_id": 5, "update": empty},
                     "user": {"id": "c-1", "client_id": 6, "update": empty}},
        "steps": [
            {"op": "add", "replica": "guest", "product": "mug", "quantity": 2},
            {"op": "add", "replica": "user", "product": "mug", "quantity": 1},
            {"op": "merge", "replica": "guest", "into": "user"},
        ],
    }
    # Node returns only views; rebuild the JS state by running the same steps there, then export it.
    js = node(documents_script, "read", stdin={"scenarios": [scenario]})["scenarios"][0]
    assert js["outcomes"][2]["replayed"] is False
    run = CaseRun("cart", {"replicas": {"guest": {"id": "g-1", "client_id": 5}, "user": {"id": "c-1", "client_id": 6}}})
    for step in scenario["steps"]:
        run.step(step)
    assert run.views() == js["views"]
    guest, user = run.models["guest"], run.models["user"]
    assert isinstance(guest, Cart) and isinstance(user, Cart)
    assert guest.merge_into(user).replayed
    assert user.lines()[0].quantity == 3


# -- guest merges: each language merges a part of the guest's history ---------------------


def test_an_engine_merge_and_a_js_merge_of_two_concurrent_guest_adds_sum_in_both_languages(
    documents_script: list[str],
) -> None:
    """The engine's device saw one guest +1 and merged it; the JS device saw the other and merged
    it into its replica of the same user cart. Both languages read 2 (no replay needed)."""
    guest, user = Cart.new("g-1", client_id=1), Cart.new("c-1", client_id=2)
    tee = guest.add_item("tee", 1)
    user_base = user.doc.get_update()
    guest.merge_into(user)
    empty = base64.b64encode(Doc().get_update()).decode()
    scenario = {
        "kind": "cart",
        "replicas": {
            "guest": {"id": "g-1", "client_id": 3, "update": empty},
            "user": {"id": "c-1", "client_id": 4, "update": base64.b64encode(user_base).decode()},
        },
        "steps": [
            {"op": "add", "replica": "guest", "product": "tee", "quantity": 1},
            {"op": "merge", "replica": "guest", "into": "user"},
        ],
    }
    [js] = node(documents_script, "read", stdin={"scenarios": [scenario]})["scenarios"]
    assert js["views"]["user"]["lines"][0]["quantity"] == 1  # the JS device saw only its own +1
    apply_update(user.doc, base64.b64decode(js["updates"]["user"]))
    assert user.quantity(tee) == 2
    back = {"kind": "cart", "replicas": {"user": {"id": "c-1", "update": base64.b64encode(user.doc.get_update()).decode()}}}
    [read] = node(documents_script, "read", stdin={"scenarios": [back]})["scenarios"]
    assert read["views"]["user"] == render(user)
    assert read["views"]["user"]["lines"][0]["quantity"] == 2


# -- orders, both ways ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [5, 6])
def test_the_engine_derives_the_order_views_js_replicas_derived_from_random_moves(
    documents_script: list[str], seed: int
) -> None:
    generated = node(documents_script, "generate", "order", "60", str(seed))
    moves = held_back = 0
    stages: set[str] = set()
    payments: set[str] = set()
    for number, scenario in enumerate(generated["scenarios"]):
        for name, replica in scenario["replicas"].items():
            view = engine_view("order", replica["id"], replica["update"])
            assert view == replica["view"], f"seed {seed}, scenario {number}, replica {name}"
            moves += len(view["trail"])
            held_back += replica["pending"]
            stages.add(view["stage"])
            payments.add(view["payment"])
    assert moves > 100, "the generated scenarios hardly moved an order"
    assert held_back > 0, "no replica ever got an update before its dependencies: delivery is not out of order"
    assert stages == set(STAGES) and payments == set(PAYMENTS), "some stage or payment was never reached"


ORDER_LINES = (
    OrderLine("k-tee", "tee", {"size": "M", "😀": [1, 2.5]}, 2, 1299, 2598),
    OrderLine("k-mug", "mug", {}, 1, 850, 850),
    OrderLine("k-cap", "cap", {"w": 2.0, "f": 0.1 + 0.2}, 3, 0, 0),
)
ORDER_ACTORS = ("till", "kitchen", "manager", "terminal-😀")

order_steps = st.lists(
    st.one_of(
        st.tuples(st.just("edit"), st.integers(0, 3), st.integers(0, 9), st.integers(0, 8), st.integers(0, 12),
                  st.integers(0, 3)),
        st.tuples(st.just("sync"), st.integers(0, 3), st.integers(0, 3), st.booleans()),
    ),
    max_size=30,
)


def place_order(order: Order, variant: int) -> None:
    order.place(cart=f"c-{variant}", location="north", currency="USD" if variant % 2 else "EUR",
                lines=ORDER_LINES[variant % 3:], by=ORDER_ACTORS[variant % 4], at=1_700_000_000_000 + variant)


def python_order_edit(order: Order, action: int, a: int, b: int, c: int) -> None:
    """Action 0 places (again, or concurrently), 1 to 5 move the stage, 6 to 9 the payment."""
    note = f"n-{a} \u2028😀" if a % 3 == 0 else None
    at = 1_700_000_000_000 + b
    if action == 0:
        place_order(order, a)
    elif action <= 5:
        order.advance(STAGES[(b + action) % len(STAGES)], by=ORDER_ACTORS[c], note=note, at=at)
    else:
        order.record_payment(PAYMENTS[(b + action) % len(PAYMENTS)], by=ORDER_ACTORS[c], note=note, at=at)


def python_order_scenario(plan: list[tuple[Any, ...]]) -> dict[str, Any]:
    orders = [Order(Doc(client_id=3000 + index), "o-1") for index in range(4)]
    place_order(orders[0], 0)
    apply_update(orders[1].doc, orders[0].doc.get_update())  # b moves from the start too; c and d wait for syncs
    for step in plan:
        if step[0] == "sync":
            source, target = orders[step[1]], orders[step[2]]
            if source is not target:
                update = encode_diff(source.doc, state_vector(target.doc))
                apply_update(target.doc, update)
                if step[3]:
                    apply_update(target.doc, update)  # delivered twice
            continue
        try:
            python_order_edit(orders[step[1]], *step[2:])
        except EngineError:
            pass  # refused moves and moves of an order not yet seen write nothing, in both languages
    return {
        "kind": "order",
        "replicas": {
            "abcd"[index]: {"id": "o-1", "update": base64.b64encode(order.doc.get_update()).decode(),
                            "view": render(order)}
            for index, order in enumerate(orders)
        },
    }


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(plans=st.lists(order_steps, min_size=25, max_size=25))
def test_js_replicas_derive_the_order_views_the_engine_derived_from_random_moves(
    documents_script: list[str], plans: list[list[tuple[Any, ...]]]
) -> None:
    scenarios = [python_order_scenario(plan) for plan in plans]
    read = node(documents_script, "read", stdin={"scenarios": scenarios})
    for number, (scenario, result) in enumerate(zip(scenarios, read["scenarios"], strict=True)):
        expected = {name: replica["view"] for name, replica in scenario["replicas"].items()}
        assert result["views"] == expected, f"scenario {number}"
