"""The REST adapter's documents: engine models on the relay's rooms, through the relay's door.

Reads use models on the room's own document; writes use models on the door's replica of
the room (:class:`syncline.server.door.DirectEdit`) and commit through it, so a REST
write is stored, integrated and broadcast exactly like a WebSocket peer's update. This
module only builds the models and maps the door's refusals to problems.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from syncline.engine import Cart, Order, StockLedger
from syncline.engine.names import DocName
from syncline.server.door import DirectEdit, Door
from syncline.server.errors import RoomLimitReached, RoomLoadFailed, UpdateNotIntegrated, WriteRefused
from syncline.server.fanout import FanoutUnavailable
from syncline.server.room import Room
from syncline.server.store import Receipt, StoreUnavailable

from .problems import Problem

log = logging.getLogger("syncline.rest")


@dataclass(eq=False)
class _Models:
    """The read models of one open room (dropped with the room when it is evicted)."""

    cart: Cart | None = None
    ledger: StockLedger | None = None
    order: Order | None = None


class Documents:
    def __init__(self, door: Door) -> None:
        self._door = door
        self._models: weakref.WeakKeyDictionary[Room, _Models] = weakref.WeakKeyDictionary()

    async def open(self, name: DocName) -> Room:
        try:
            return await self._door.open(str(name))
        except RoomLimitReached:
            raise Problem("room-limit", headers={"Retry-After": "5"}) from None
        except (StoreUnavailable, RoomLoadFailed):
            raise Problem("store-unavailable", headers={"Retry-After": "5"}) from None

    async def catch_up(self, *rooms: Room) -> None:
        """Bring ``rooms`` up to what the store holds: in a cluster, what other nodes committed
        that fan-out has not delivered yet."""
        try:
            for room in rooms:
                await self._door.catch_up(room)
        except StoreUnavailable:
            raise Problem("store-unavailable", headers={"Retry-After": "5"}) from None

    def current(self, room: Room) -> bool:
        """True while ``room`` is the open room of its name (not evicted, not replaced)."""
        return self._door.current(room)

    def _read_models(self, room: Room) -> _Models:
        models = self._models.get(room)
        if models is None:
            models = self._models[room] = _Models()
        return models

    def cart(self, room: Room, cart_id: str) -> Cart:
        """The cart on the room's own document: for reads only."""
        models = self._read_models(room)
        if models.cart is None:
            models.cart = Cart(room.doc, cart_id)
        return models.cart

    def ledger(self, room: Room, location_id: str) -> StockLedger:
        """The ledger on the room's own document: for reads only."""
        models = self._read_models(room)
        if models.ledger is None:
            models.ledger = StockLedger(room.doc, location_id)
        return models.ledger

    def order(self, room: Room, order_id: str) -> Order:
        """The order on the room's own document: for reads only."""
        models = self._read_models(room)
        if models.order is None:
            models.order = Order(room.doc, order_id)
        return models.order

    @asynccontextmanager
    async def editing(self, *rooms: Room) -> AsyncIterator[Sequence[Edit]]:
        """One :class:`Edit` per room, in the order given, each room locked (see :meth:`Door.edit`)."""
        async with self._door.edit(*rooms) as edits:
            yield [Edit(edit) for edit in edits]


class Edit:
    """One room under edit: models on the door's replica, then :meth:`commit`."""

    def __init__(self, edit: DirectEdit) -> None:
        self._edit = edit
        self.room = edit.room

    @property
    def changed(self) -> bool:
        return self._edit.changed

    def cart(self, cart_id: str) -> Cart:
        cart = self._edit.models.get("cart")
        if not isinstance(cart, Cart):
            cart = self._edit.models["cart"] = Cart(self._edit.replica, cart_id)
        return cart

    def ledger(self, location_id: str) -> StockLedger:
        ledger = self._edit.models.get("ledger")
        if not isinstance(ledger, StockLedger):
            ledger = self._edit.models["ledger"] = StockLedger(self._edit.replica, location_id)
        return ledger

    def order(self, order_id: str) -> Order:
        order = self._edit.models.get("order")
        if not isinstance(order, Order):
            order = self._edit.models["order"] = Order(self._edit.replica, order_id)
        return order

    async def commit(self, *, action: str, receipt: Receipt | None = None) -> int | None:
        """Store what the edit did (nothing if it did nothing); return its seq, or None.

        Raises :class:`Problem` ``store-unavailable``, ``fanout-unavailable`` or, when the
        relay refused the edit it was built from (its replica's client ID taken, or Yrs did
        not take it whole), ``edit-refused``: the retry runs on a new replica."""
        try:
            return await self._edit.commit(action=action, receipt=receipt)
        except StoreUnavailable:
            raise Problem("store-unavailable", headers={"Retry-After": "5"}) from None
        except FanoutUnavailable:
            raise Problem("fanout-unavailable", headers={"Retry-After": "5"}) from None
        except (WriteRefused, UpdateNotIntegrated) as exc:
            log.error("the room refused a REST edit", extra={"doc": self.room.name, "reason": str(exc)})
            raise Problem("edit-refused", headers={"Retry-After": "1"}) from None
