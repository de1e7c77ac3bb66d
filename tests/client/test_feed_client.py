"""The Python client's change feed against a real relay subprocess: typed events in order, resuming
after a restart without loss or repetition, a frozen relay noticed by its missing heartbeats,
failover across URLs, token functions, refusals that end the iteration, and bad arguments
refused before any request."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from harness.catalog import CATALOG, load_catalog
from harness.relay_process import RelayProcess
from syncline.adapters.client import Backoff, ChangeFeed, FeedEvent, InvalidQuery, RestProblem, SyncClient
from syncline.adapters.client.feed import feed_url

from .support import REPO, base_url, closed_port

pytestmark = pytest.mark.anyio

TENANT = "/v1/tenants/acme"
FAST = Backoff(0.05, 0.3)


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayProcess]:
    """A relay with the catalog's prices, heartbeats every half second."""
    load_catalog(tmp_path / "relay", "acme", CATALOG)
    process = RelayProcess(tmp_path / "relay", ["--sse-heartbeat-seconds", "0.5"]).start()
    try:
        yield process
    finally:
        process.stop()


async def _add(relay: RelayProcess, cart: str, product: str, quantity: int) -> None:
    async with httpx.AsyncClient(
        base_url=relay.http_url, timeout=10.0, headers={"Authorization": f"Bearer {relay.token('acme')}"}
    ) as api:
        answer = await api.post(
            f"{TENANT}/carts/{cart}/items", json={"product": product, "quantity": quantity}
        )
        assert answer.status_code == 200, answer.text


async def _next(feed: ChangeFeed, timeout: float = 15.0) -> FeedEvent:
    with anyio.fail_after(timeout):
        return await feed.__anext__()


async def _until_open(feed: ChangeFeed, timeout: float = 15.0) -> None:
    with anyio.fail_after(timeout):
        while feed.status != "open":
            await anyio.sleep(0.02)


async def test_events_arrive_typed_in_order_and_last_id_follows_them(relay: RelayProcess) -> None:
    async with ChangeFeed(
        base_url(relay), relay.token("acme"), "acme", types=["cart.changed"], backoff=FAST
    ) as feed:
        await _until_open(feed)
        await _add(relay, "f-1", "tee", 2)
        await _add(relay, "f-1", "mug", 1)
        first, second = await _next(feed), await _next(feed)
    assert [first.type, second.type] == ["cart.changed", "cart.changed"]
    assert first.data["doc"] == "acme/cart/f-1" and first.data["action"] == "cart.add_item"
    assert [(line["product"], line["previous"], line["quantity"]) for line in first.data["lines"]] == [
        ("tee", 0, 2)
    ]
    assert [(line["product"], line["quantity"]) for line in second.data["lines"]] == [("mug", 1)]
    assert second.data["seq"] > first.data["seq"]
    assert first.id is not None and second.id is not None and first.id.endswith(f"-{first.data['seq']}")
    assert feed.last_id == second.id and feed.events_seen == 2
    assert feed.status == "closed" and feed.url == f"{relay.http_url}{TENANT}/events"


async def test_a_restart_is_resumed_from_the_last_event_missing_nothing_and_repeating_nothing(
    relay: RelayProcess,
) -> None:
    async with ChangeFeed(base_url(relay), relay.token("acme"), "acme", backoff=FAST) as feed:
        await _until_open(feed)
        await _add(relay, "r-1", "tee", 1)
        before = await _next(feed)
        relay.terminate()
        assert feed.status in ("open", "reconnecting")
        relay.start()  # same port and data; the feed is backing off meanwhile
        for quantity in (2, 3, 4):
            await _add(relay, "r-1", "tee", quantity)
        after = [await _next(feed) for _ in range(3)]
    seqs = [event.data["seq"] for event in (before, *after)]
    assert seqs == sorted(set(seqs)), seqs  # each change once, in order
    assert [event.data["lines"][0]["quantity"] for event in after] == [3, 6, 10]  # added 2, 3, 4 onto 1
    assert all(event.type == "cart.changed" for event in after)


async def test_a_frozen_relay_is_noticed_by_its_missing_heartbeats_and_followed_again_when_it_wakes(
    relay: RelayProcess,
) -> None:
    assert relay.process is not None
    async with ChangeFeed(
        base_url(relay), relay.token("acme"), "acme", backoff=FAST, connect_timeout=1.0
    ) as feed:
        await _until_open(feed)
        os.kill(relay.process.pid, signal.SIGSTOP)
        try:
            with anyio.fail_after(10):  # three heartbeats of 0.5 s, then the drop
                while feed.status == "open":
                    await anyio.sleep(0.05)
            assert feed.status == "reconnecting"
        finally:
            os.kill(relay.process.pid, signal.SIGCONT)
        await _until_open(feed)
        await _add(relay, "z-1", "cap", 1)
        event = await _next(feed)
    assert event.type == "cart.changed" and event.data["doc"] == "acme/cart/z-1"


async def test_a_down_relay_is_passed_over_for_the_next_url(relay: RelayProcess) -> None:
    down = f"ws://127.0.0.1:{closed_port()}"
    async with ChangeFeed([down, base_url(relay)], relay.token("acme"), "acme", backoff=FAST) as feed:
        await _until_open(feed)
        assert feed.url == f"{relay.http_url}{TENANT}/events"
        await _add(relay, "u-1", "sock", 2)
        assert (await _next(feed)).data["doc"] == "acme/cart/u-1"


async def test_a_token_function_is_asked_before_every_connection(relay: RelayProcess) -> None:
    asked: list[float] = []

    async def token() -> str:
        asked.append(time.monotonic())
        return relay.token("acme")

    async with ChangeFeed(base_url(relay), token, "acme", backoff=FAST) as feed:
        await _until_open(feed)
        relay.restart()
        await _add(relay, "t-1", "tee", 1)
        got = await _next(feed)
        assert got.data.get("doc") == "acme/cart/t-1", got
    assert len(asked) >= 2


@pytest.mark.parametrize(("token", "status"), [("not-a-token", 401), (None, 401), ("other", 403)])
async def test_a_refused_token_ends_the_iteration_with_the_relays_problem(
    relay: RelayProcess, token: str | None, status: int
) -> None:
    if token == "other":
        token = relay.token("globex")
    async with ChangeFeed(base_url(relay), token, "acme", backoff=FAST) as feed:
        with anyio.fail_after(15), pytest.raises(RestProblem) as refused:
            await feed.__anext__()
        assert [event async for event in feed] == []  # ended
    assert refused.value.status == status
    assert feed.status == "closed"


async def test_a_failing_token_function_ends_the_iteration_with_its_error(relay: RelayProcess) -> None:
    def token() -> str:
        raise LookupError("no token in the vault")

    async with ChangeFeed(base_url(relay), token, "acme", backoff=FAST) as feed:
        with anyio.fail_after(15), pytest.raises(LookupError, match="vault"):
            await feed.__anext__()


async def test_closing_a_feed_closes_its_stream_at_once(relay: RelayProcess) -> None:
    started = time.monotonic()
    async with ChangeFeed(base_url(relay), relay.token("acme"), "acme", backoff=FAST) as feed:
        await _until_open(feed)
        assert _connections_to(relay.port) == 1
    assert feed.status == "closed"
    assert _connections_to(relay.port) == 0  # shut down by the close, not left to the thread
    assert time.monotonic() - started < 10


def _connections_to(port: int) -> int:
    """This process's established TCP connections to ``port`` on the loopback."""
    sockets = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            sockets.add(target[len("socket:[") : -1])
    established = 0
    with open("/proc/net/tcp") as table:
        for row in table.read().splitlines()[1:]:
            fields = row.split()
            remote_port, state, inode = int(fields[2].split(":")[1], 16), fields[3], fields[9]
            established += remote_port == port and state == "01" and inode in sockets
    return established


async def test_resuming_from_an_id_of_another_history_starts_with_a_reset(relay: RelayProcess) -> None:
    await _add(relay, "h-1", "tee", 1)
    async with ChangeFeed(
        base_url(relay), relay.token("acme"), "acme", since="0123456789abcdef-1", backoff=FAST
    ) as feed:
        reset = await _next(feed)
        replayed = await _next(feed)
    assert reset.type == "reset" and reset.data["reason"]
    assert replayed.type == "cart.changed" and replayed.data["doc"] == "acme/cart/h-1"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tenant": "ac me"}, "tenant"),
        ({"types": ["cart.exploded"]}, "types"),
        ({"types": "cart.changed"}, "types"),
        ({"documents": ["cart"]}, "documents"),
        ({"documents": ["globex/cart/c-1"]}, "documents"),
        ({"documents": ["cart/../x"]}, "documents"),
        ({"orders": ["o/1"]}, "orders"),
        ({"since": "x" * 65}, "since"),
        ({"since": "caf\u00e9"}, "since"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"connect_timeout": True}, "connect_timeout"),
        ({"token": "two words"}, "token"),
        ({"token": 42}, "token"),
        ({"base_url": "ftp://relay"}, "base_url"),
        ({"base_url": []}, "base_url"),
        ({"base_url": "http://user:pw@127.0.0.1:1"}, "base_url"),
    ],
)
async def test_bad_arguments_are_refused_before_any_request(kwargs: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {
        "base_url": f"http://127.0.0.1:{closed_port()}",
        "token": "t",
        "tenant": "acme",
    }
    arguments.update(kwargs)
    with pytest.raises(InvalidQuery) as refused:
        ChangeFeed(**arguments)  # type: ignore[arg-type]
    assert refused.value.field == field


def test_the_feed_url_carries_the_filters_and_never_the_token() -> None:
    url = feed_url(
        "wss://relay.example/sync-relay/v1/sync",
        "acme",
        types=["order.*"],
        documents=["acme/cart/c-1", "stock/north"],
        orders=["o-1"],
    )
    assert url == (
        "https://relay.example/sync-relay/v1/tenants/acme/events"
        "?type=order.%2A&doc=cart%2Fc-1&doc=stock%2Fnorth&order=o-1"
    )


async def test_the_cli_prints_each_event_as_a_json_line_and_stops_after_count(
    relay: RelayProcess, tmp_path: Path
) -> None:
    command = [
        sys.executable,
        "-m",
        "syncline.app.cli",
        "client",
        "--url",
        f"ws://127.0.0.1:{closed_port()}",
        "--url",
        base_url(relay),
        "--token",
        relay.token("acme"),
        "--data-dir",
        str(tmp_path / "cli"),
        "feed",
        "--tenant",
        "acme",
        "--doc",
        "cart/k-1",
        "--count",
        "2",
    ]
    process = await anyio.open_process(command, cwd=REPO)
    try:
        async with ChangeFeed(base_url(relay), relay.token("acme"), "acme", backoff=FAST) as watcher:
            await _until_open(watcher)
            await anyio.sleep(1.0)  # the CLI's stream is open too by now (it started first)
            await _add(relay, "other", "tee", 1)  # not its document
            for quantity in (1, 2):
                await _add(relay, "k-1", "mug", quantity)
        with anyio.fail_after(30):
            assert await process.wait() == 0
        assert process.stdout is not None
        lines = (await process.stdout.receive()).decode().splitlines()
    finally:
        if process.returncode is None:
            process.kill()
        await process.aclose()
    events = [json.loads(line) for line in lines]
    assert [(e["type"], e["data"]["doc"], e["data"]["lines"][0]["quantity"]) for e in events] == [
        ("cart.changed", "acme/cart/k-1", 1),
        ("cart.changed", "acme/cart/k-1", 3),
    ]
    assert all(e["id"].endswith(f"-{e['data']['seq']}") for e in events)


def test_the_cli_exits_3_when_the_relay_refuses_the_token(relay: RelayProcess, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "syncline.app.cli",
            "client",
            "--url",
            base_url(relay),
            "--token",
            "forged",
            "--data-dir",
            str(tmp_path / "cli"),
            "feed",
            "--tenant",
            "acme",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 3, done.stderr
    assert "401" in done.stderr and "check --token" in done.stderr and done.stdout == ""


async def test_the_sync_clients_feed_uses_its_urls_and_token(relay: RelayProcess, tmp_path: Path) -> None:
    client = SyncClient(
        data_dir=tmp_path / "till",
        urls=[f"ws://127.0.0.1:{closed_port()}", base_url(relay)],
        token=relay.token("acme"),
        backoff_base=0.05,
        backoff_cap=0.3,
    )
    async with client.feed("acme", documents=["acme/cart/s-1"]) as feed:
        await _until_open(feed)
        await _add(relay, "s-2", "tee", 1)
        await _add(relay, "s-1", "tee", 1)
        event = await _next(feed)
    assert event.data["doc"] == "acme/cart/s-1"
    assert feed.url == f"{relay.http_url}{TENANT}/events"


class _Scripted:
    """A loopback HTTP server that answers the n-th feed request with the n-th script's bytes,
    then closes: the relay's misbehaviours a real relay cannot be made to show."""

    def __init__(self, scripts: list[bytes]) -> None:
        self.scripts = scripts
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for script in self.scripts:
            connection, _ = self.listener.accept()
            with connection:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += connection.recv(65536)
                self.requests.append(request)
                connection.sendall(script)
        self.listener.close()


def _stream(*events: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    return head + b"".join(events)


async def test_a_broken_stream_is_dropped_and_reopened_from_the_last_good_event() -> None:
    good = b'id: e-7\nevent: cart.changed\ndata: {"seq": 7}\n\n'
    scripts = [
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n<html>a proxy</html>",
        _stream(
            b'event: connected\nid: e-5\ndata: {"heartbeat_seconds": 15}\n\n',
            b"data: " + b"x" * (1024 * 1024 + 10) + b"\n\n",
        ),  # a line past the limit
        _stream(b"id: e-6\nevent: cart.changed\ndata: {not json\n\n"),
        _stream(b": a comment\r\n", b"event: cart.changed\r\ndata: [1]\r\n\r\n"),  # not an object
        _stream(b"retry: 10\n", good),
    ]
    server = _Scripted(scripts)
    async with ChangeFeed(f"http://127.0.0.1:{server.port}", "t", "acme", backoff=FAST) as feed:
        event = await _next(feed)
    assert (event.id, event.type, event.data) == ("e-7", "cart.changed", {"seq": 7})
    server.thread.join(timeout=5)
    resumed = [
        request.split(b"Last-Event-ID: ")[1].split(b"\r\n")[0] if b"Last-Event-ID" in request else None
        for request in server.requests
    ]
    assert resumed == [None, None, None, b"e-5", b"e-5", b"e-5"]  # connected's position, nothing after it
    assert all(
        b"Authorization: Bearer t\r\n" in request and b"token=" not in request for request in server.requests
    )
