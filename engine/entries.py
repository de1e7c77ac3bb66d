"""The entries of a stock ledger as immutable values: adjustments, counts and resolutions.

Both :mod:`.stock` (which reads and writes them) and :mod:`.conflicts` (which derives
conflicts from adjustments) use these; neither imports the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Strategy = Literal["accept", "compensate", "merge"]
STRATEGIES: tuple[Strategy, ...] = ("accept", "compensate", "merge")


@dataclass(frozen=True)
class Adjustment:
    id: str
    sku: str
    delta: int
    reason: str
    actor: str
    at: int
    ref: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "sku": self.sku, "delta": self.delta,
            "reason": self.reason, "actor": self.actor, "at": self.at,
        }
        if self.ref is not None:
            body["ref"] = self.ref
        return body


@dataclass(frozen=True)
class Count:
    """An absolute count of a sku: what the counter observed on the shelf.

    ``seen`` is the level the counter's replica showed (``counted - seen`` is the discrepancy
    the counter found), ``base`` the sum of the sku's adjustments that replica held, and
    ``after`` the counts of the sku it had seen that no other count it had seen supersedes
    (sorted ids, usually one), so every replica can tell which counts were concurrent.
    """

    id: str
    sku: str
    counted: int
    seen: int
    base: int
    after: tuple[str, ...]
    actor: str
    at: int
    ref: str | None = None

    @property
    def correction(self) -> int:
        """What the count adds to the sum of the sku's adjustments: counted minus base."""
        return self.counted - self.base

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "sku": self.sku, "counted": self.counted, "seen": self.seen,
            "base": self.base, "after": list(self.after), "actor": self.actor, "at": self.at,
        }
        if self.ref is not None:
            body["ref"] = self.ref
        return body


@dataclass(frozen=True)
class Resolution:
    id: str
    conflict: str
    sku: str
    strategy: Strategy
    actor: str
    at: int
    note: str | None = None
    level: int | None = None
    adjustment: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "conflict": self.conflict, "sku": self.sku,
            "strategy": self.strategy, "actor": self.actor, "at": self.at,
        }
        for name in ("note", "level", "adjustment"):
            if getattr(self, name) is not None:
                body[name] = getattr(self, name)
        return body
