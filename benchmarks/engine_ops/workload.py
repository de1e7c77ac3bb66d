"""Engine benchmark workloads: the configuration, fixed-seed cart and ledger scripts, timing."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pycrdt import Doc
from syncline.engine import line_key

CART_ID = "bench/cart/c-1"
LEDGER_ID = "bench/stock/north"
EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

StepKind = Literal["add", "set", "remove", "clear"]
Model = TypeVar("Model")
Step = TypeVar("Step")


@dataclass(frozen=True)
class Config:
    ops: int
    reps: int
    probes: int
    quick: bool
    seed: int = 20_260_101
    lines: int = 50
    skus: int = 200
    writers: tuple[int, ...] = (1, 2, 3)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Document sizes for the single-writer scaling rows."""
        return _distinct((self.ops // 10, self.ops // 4, self.ops))

    @property
    def interleaved_sizes(self) -> tuple[int, ...]:
        """Smaller sizes for two interleaved writers, where some costs grow quadratically."""
        return _distinct((self.ops // 10, self.ops // 5, self.ops * 2 // 5))


def _distinct(values: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted({max(value, 10) for value in values}))


def client_id(writer: int) -> int:
    """Fixed, realistic (32-bit) Yjs client ids, one per writer."""
    return 0x5EED_0000 + 0x1111 * (writer + 1)


def new_doc(writer: int = 0) -> Doc[Any]:
    return Doc(client_id=client_id(writer))


# -- timing ----------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed_loop(
    count: int, op: Callable[[int], object], setup: Callable[[int], object] | None = None
) -> float:
    """Seconds spent in ``op(i)`` for ``i < count``; ``setup(i)`` runs first, untimed."""
    total = 0.0
    for i in range(count):
        if setup is not None:
            setup(i)
        start = time.perf_counter()
        op(i)
        total += time.perf_counter() - start
    return total


def best_seconds(fn: Callable[[], object], reps: int) -> float:
    """The fastest of ``reps`` runs (timeit's convention: the host may be shared)."""
    return min(timed(fn) for _ in range(reps))


def per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


# -- workloads -------------------------------------------------------------------


@dataclass(frozen=True)
class LineSpec:
    product: str
    attributes: dict[str, Any]
    key: str


@dataclass(frozen=True)
class CartStep:
    kind: StepKind
    line: int
    n: int = 0


def make_lines(count: int, prefix: str = "sku") -> list[LineSpec]:
    sizes = ("XS", "S", "M", "L", "XL")
    colors = ("black", "white", "navy", "red")
    specs = []
    for i in range(count):
        attributes = {"size": sizes[i % 5], "color": colors[(i // 5) % 4]}
        product = f"{prefix}-{i:05d}"
        specs.append(LineSpec(product, attributes, line_key(product, attributes)))
    return specs


def cart_script(ops: int, lines: int, rng: random.Random) -> list[CartStep]:
    """A realistic mix: 72% adds over ``lines`` lines, 17% sets, 10.5% removes, 0.5% clears."""
    steps: list[CartStep] = []
    known: list[int] = []
    for _ in range(ops):
        roll = rng.random()
        if not known or roll < 0.72:
            line = rng.randrange(lines)
            if line not in known:
                known.append(line)
            steps.append(CartStep("add", line, rng.randint(1, 3)))
        elif roll < 0.89:
            steps.append(CartStep("set", rng.choice(known), rng.randint(1, 5)))
        elif roll < 0.995:
            steps.append(CartStep("remove", rng.choice(known)))
        else:
            steps.append(CartStep("clear", 0))
    return steps


def ledger_script(ops: int, skus: int, rng: random.Random) -> list[dict[str, Any]]:
    """Adjustment bodies: 75% sales of 1-3, 25% restocks of 5-50, uuid ids, one per second."""
    bodies = []
    for i in range(ops):
        restock = rng.random() < 0.25
        bodies.append({
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "sku": f"sku-{rng.randrange(skus):05d}",
            "delta": rng.randint(5, 50) if restock else -rng.randint(1, 3),
            "reason": "restock" if restock else "sale",
            "actor": f"till-{rng.randrange(8)}",
            "at": EPOCH_MS + i * 1_000,
        })
    return bodies
