"""The single-node fan-out: there is no other node, so there is nothing to do."""

from __future__ import annotations

import anyio
from anyio.abc import TaskStatus

from .base import FanoutListener


class LocalFanout:
    """The default (``--fanout none``): one relay node, rooms never publish or subscribe."""

    node_id = "local"
    shared = False
    available = True
    reason = ""

    def bind(self, listener: FanoutListener) -> None:
        pass

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    async def subscribe(self, room: str) -> bool:
        return True

    async def unsubscribe(self, room: str) -> None:
        pass

    async def publish_update(self, room: str, seq: int, update: bytes) -> None:
        pass

    def publish_awareness(self, room: str, payload: bytes) -> None:
        pass

    def publish_broadcast(self, tenant: str, payload: bytes) -> None:
        pass
