"""The relay's hooks, on a relay with no adapter at all: its own routes, served by uvicorn here.

``on_change`` listeners hear each stored update, in the order they were added;
``on_shutdown`` callbacks run once, when the relay starts shutting down, while its peers
are still connected, and the peers are then told 1001 (going away).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pycrdt import Doc, Map
from starlette.applications import Starlette

from syncline.engine import closecodes
from syncline.engine.tokens import issue_token
from syncline.server.endpoints import probe_routes, sync_routes
from syncline.server.metrics import Metrics
from syncline.server.relay import Relay, open_relay
from syncline.server.settings import Settings

from harness.relay_process import SECRET
from harness.ypeer import ypeer

from .loopback import serving

pytestmark = pytest.mark.anyio

NAME = "acme/cart/c-1"


def add_line(doc: Doc) -> None:
    doc.get("lines", type=Map)["tee"] = 1


def add_mug(doc: Doc) -> None:
    doc.get("lines", type=Map)["mug"] = 2


async def test_change_listeners_hear_each_stored_update_in_the_order_they_were_added(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret=SECRET, port=0)
    metrics = Metrics()
    app = Starlette(routes=[*sync_routes(), *probe_routes(metrics)])
    heard: list[tuple[str, str, int]] = []

    def wire(relay: Relay) -> None:
        app.state.relay = relay
        relay.on_change(lambda doc, seq: heard.append(("first", doc, seq)))
        relay.on_change(lambda doc, seq: heard.append(("second", doc, seq)))

    token = issue_token(SECRET, "acme", [NAME])
    async with (
        open_relay(settings, metrics, setup=wire),
        serving(app, settings) as base,
        ypeer(f"{base}/v1/sync/{NAME}?token={token}", acks=True) as peer,
    ):
        assert heard == []
        await peer.edit(add_line)
        await peer.wait_acked(2)
        await peer.edit(add_mug)
        await peer.wait_acked(3)
    assert [who for who, _, _ in heard] == ["first", "second", "first", "second"]
    assert {doc for _, doc, _ in heard} == {NAME}
    seqs = [seq for _, _, seq in heard]
    assert seqs[0] == seqs[1] < seqs[2] == seqs[3]


async def test_shutdown_callbacks_run_once_before_peers_are_told_the_relay_is_going_away(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, secret=SECRET, port=0)
    metrics = Metrics()
    app = Starlette(routes=[*sync_routes(), *probe_routes(metrics)])
    connected_at_shutdown: list[int] = []

    def wire(relay: Relay) -> None:
        app.state.relay = relay
        relay.on_shutdown(lambda: connected_at_shutdown.append(len(relay.connections)))

    token = issue_token(SECRET, "acme", [NAME])
    async with (
        open_relay(settings, metrics, setup=wire) as relay,
        serving(app, settings) as base,
        ypeer(f"{base}/v1/sync/{NAME}?token={token}") as peer,
    ):
        assert connected_at_shutdown == []
        relay.shut_down_peers()  # as the first SIGTERM does; leaving the relay does it again
        await peer.wait_until(lambda _: peer.close_code is not None)
        assert peer.close_code == closecodes.GOING_AWAY
        assert connected_at_shutdown == [1]
    assert connected_at_shutdown == [1]
    assert relay.closing


async def test_leaving_the_relay_runs_the_shutdown_callbacks(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret=SECRET, port=0)
    called: list[str] = []

    def wire(relay: Relay) -> None:
        relay.on_shutdown(lambda: called.append("first"))
        relay.on_shutdown(lambda: called.append("second"))

    async with open_relay(settings, Metrics(), setup=wire) as relay:
        assert called == [] and not relay.closing
    assert called == ["first", "second"]
