"""The relay runs on uvloop by default and on plain asyncio when asked, syncing the same on both."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pycrdt import Array

from harness.relay_process import RelayProcess
from harness.ypeer import ypeer

pytestmark = pytest.mark.anyio


def uses_uvloop(relay: RelayProcess) -> bool:
    assert relay.process is not None
    with open(f"/proc/{relay.process.pid}/maps") as maps:
        return any("uvloop" in line for line in maps)


@pytest.mark.parametrize("flags, expect_uvloop", [((), True), (("--event-loop", "asyncio"), False),
                                                  (("--event-loop", "uvloop"), True)])
async def test_the_relay_syncs_on_the_event_loop_it_was_given(
    relay_factory: Callable[..., RelayProcess], flags: tuple[str, ...], expect_uvloop: bool
) -> None:
    relay = relay_factory(*flags)
    assert uses_uvloop(relay) is expect_uvloop
    name = "acme/cart/loop"
    async with ypeer(relay.url_for(name), acks=True) as writer, ypeer(relay.url_for(name)) as reader:
        await writer.edit(lambda doc: doc.get("ops", type=Array).append({"n": 1}))
        await writer.wait_acked(2)
        await reader.wait_until(lambda doc: len(doc.get("ops", type=Array)) == 1)
