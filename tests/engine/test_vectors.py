"""The shared conformance vectors (tests/vectors/*.json), run against the engine.

The JavaScript client runs the same files (adapters/js/test/vectors.test.ts); both assert
against the committed expectations, which ``python -m harness.vectors`` wrote once.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.vectors import CaseRun, canonical_outcome, load

CANONICAL = load("canonical.json")
CART = load("cart.json")
STOCK = load("stock.json")


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case.get("name") or repr(case.get("value"))[:40] for case in cases]


@pytest.mark.parametrize("case", CANONICAL["cases"], ids=_ids(CANONICAL["cases"]))
def test_canonical_json_and_line_keys_match_the_vectors(case: dict[str, Any]) -> None:
    assert canonical_outcome(case) == case["expect"]


@pytest.mark.parametrize(
    ("kind", "case"),
    [("cart", case) for case in CART["cases"]] + [("stock", case) for case in STOCK["cases"]],
    ids=[f"cart: {name}" for name in _ids(CART["cases"])] + [f"stock: {name}" for name in _ids(STOCK["cases"])],
)
def test_operations_give_the_outcomes_and_views_of_the_vectors(kind: str, case: dict[str, Any]) -> None:
    run = CaseRun(kind, case)
    for position, step in enumerate(case["steps"]):
        outcome = run.step(step)
        assert outcome == step.get("expect"), f"step {position}: {step['op']}"
    assert run.views() == case["expect"]



ORDERS = load("orders.json")


@pytest.mark.parametrize("case", ORDERS["cases"], ids=_ids(ORDERS["cases"]))
def test_order_operations_give_the_outcomes_and_views_of_the_vectors(case: dict[str, Any]) -> None:
    run = CaseRun("order", case)
    for position, step in enumerate(case["steps"]):
        outcome = run.step(step)
        assert outcome == step.get("expect"), f"step {position}: {step['op']}"
    assert run.views() == case["expect"]
