"""The leader's link to the relay: one WebSocket per document, re-established with backoff.

One session (:class:`RelaySession`) is the life of one WebSocket:

1. send ``{"op": "hello", "acks": true}`` (type 100) and our sync step 1;
2. on the relay's step 1 (its state vector): drop outbox rows the relay already holds,
   then answer with a step 2 holding only what the relay lacks: an empty update when it
   lacks nothing, else the diff against its state vector (or, past ``max_write_bytes``,
   the outbox rows themselves in batches);
3. apply the relay's step 2 and updates (and write them to the local store);
4. send new outbox rows as they appear, merged into one update per write, with at most
   ``max_inflight_writes`` unacknowledged and at most ``max_writes_per_second`` (rows that
   arrive while the client waits are merged into the next write);
5. on ``{"op": "ack", "n": N}``: the first N writes are durable; delete the outbox rows
   they carried.

Writes leave one sender task in order, so the relay's count N maps to outbox seqs.
:func:`sync_forever` runs sessions against the URLs in turn, with backoff, and gives up
only on close codes that retrying cannot fix.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from pycrdt import get_state, merge_updates
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from syncline.engine import InvalidStateVector, InvalidUpdate, closecodes, encode_diff, protocol, state_vector
from syncline.engine.errors import ProtocolError
from syncline.engine.protocol import Kind
from syncline.engine.sync import decode_state_vector

from .backoff import Backoff
from .errors import (
    AcksUnsupported,
    ClientError,
    Forbidden,
    LocalStoreError,
    RelayRejected,
    TokenExpired,
    Unauthorized,
    UpdateRefused,
)
from .replica import EMPTY_UPDATE, Replica
from .status import Status

log = logging.getLogger("syncline.client")

OUTBOX_READ_ROWS = 2_000
"""Outbox rows read at once when batching writes."""

_RETRYABLE_44XX = frozenset((
    closecodes.SLOW_CONSUMER, closecodes.RATE_LIMITED, closecodes.TOO_MANY_CONNECTIONS, closecodes.TOKEN_CONNECTIONS,
))

_REJECTIONS: dict[int, type[RelayRejected]] = {
    closecodes.UNAUTHORIZED: Unauthorized,
    closecodes.TOKEN_EXPIRED: TokenExpired,
    closecodes.FORBIDDEN: Forbidden,
    closecodes.READ_ONLY: Forbidden,
    closecodes.INVALID_MESSAGE: UpdateRefused,
    closecodes.TOO_LARGE: UpdateRefused,
    closecodes.INVALID_UPDATE: UpdateRefused,
}


def rejection(code: int, reason: str, url: str) -> RelayRejected | None:
    """The typed error for a close code that retrying cannot fix; None when reconnecting may help.

    Reconnect: 1000, 1001, 1006, 1011, 4408, 4429, 4430, 4431, 4503, 4504, 4505, 4506 and other non-44xx codes.
    Give up: every other 44xx code (the same request would fail again).
    """
    if code in _RETRYABLE_44XX:
        return None
    if 4400 <= code <= 4499:
        return _REJECTIONS.get(code, RelayRejected)(code, reason, url)
    return None


class SessionEnded(Exception):
    """Raised inside a session when the relay misbehaved (garbage frame, unusable update); reconnect."""


def covered_by(update: bytes, relay_state: dict[int, int]) -> bool:
    """True when the relay's state vector shows it has integrated every item ``update`` inserts.

    A delete-only update inserts nothing and is never known to be covered: it is sent.
    """
    ends = decode_state_vector(get_state(update))
    return bool(ends) and all(relay_state.get(client, 0) >= clock for client, clock in ends.items())


class WriteRate:
    """A token bucket for live writes (one second of burst), kept under the relay's message rate limit."""

    def __init__(self, per_second: float) -> None:
        self._rate = per_second
        self._tokens = per_second
        self._last = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
        self._last = now

    def wait_time(self) -> float:
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self._rate

    def take(self) -> None:
        self._refill()
        self._tokens -= 1.0


@dataclass
class SessionOutcome:
    synced: bool
    """The relay's step 2 arrived: the link worked, whatever ended it."""
    close_code: int | None = None
    detail: str = ""


class RelaySession:
    """One WebSocket's life for one leader replica."""

    def __init__(self, replica: Replica, ws: ClientConnection, url: str) -> None:
        self.replica = replica
        self.ws = ws
        self.url = url
        self.synced = False
        self._control: deque[tuple[bytes, int]] = deque()
        self._inflight: deque[tuple[int, int]] = deque()
        """(write number, highest outbox seq it carried), oldest first."""
        self._writes = 0
        self._sent_through: int | None = None
        """Highest outbox seq sent; None until our step 2 is queued (live rows wait for it)."""
        self._rate = WriteRate(replica.settings.max_writes_per_second)
        self._relay_step2 = False
        self._step2_acked = False
        self._failure: Exception | None = None
        self._scope = anyio.CancelScope()

    async def run(self) -> None:
        try:
            await self.ws.send(protocol.extension({"op": "hello", "acks": True}))
            await self.ws.send(protocol.sync_step1(state_vector(self.replica.doc)))
        except ConnectionClosed:
            return  # refused at once (a bad token, say): the close code tells why
        async with anyio.create_task_group() as tg:
            self._scope = tg.cancel_scope
            tg.start_soon(self._guard, self._sender)
            tg.start_soon(self._guard, self._handshake_deadline)
            await self._guard(self._receiver)
            tg.cancel_scope.cancel()
        if self._failure is not None:
            raise self._failure  # raised out here, not wrapped in the task group's ExceptionGroup

    async def _guard(self, part: Callable[[], Awaitable[None]]) -> None:
        """Run one part of the session; its failure ends the whole session and is kept for the caller."""
        try:
            await part()
        except (SessionEnded, AcksUnsupported, LocalStoreError) as exc:
            if self._failure is None:
                self._failure = exc
            self._scope.cancel()

    async def _handshake_deadline(self) -> None:
        """A relay that answers pings but never completes the sync handshake counts as down."""
        await anyio.sleep(self.replica.settings.connect_timeout)
        if not self.synced:
            raise SessionEnded(f"no sync handshake within {self.replica.settings.connect_timeout:g} s")

    # -- receiving -------------------------------------------------------------------

    async def _receiver(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, str):
                    raise SessionEnded("the relay sent a text frame")
                self._on_frame(frame)
        except ConnectionClosed:
            return

    def _on_frame(self, frame: bytes) -> None:
        try:
            message = protocol.decode(frame)
            if message.kind is Kind.STEP1:
                self._answer_step1(message.payload)
            elif message.kind is Kind.STEP2:
                self.replica.receive(message.payload)
                self._relay_step2 = True
                self._check_synced()
            elif message.kind is Kind.UPDATE:
                self.replica.receive(message.payload)
            elif message.kind is Kind.EXTENSION:
                self._on_extension(protocol.decode_extension(message.payload))
            # awareness is not used by this client
        except (ProtocolError, InvalidUpdate, InvalidStateVector) as exc:
            raise SessionEnded(f"the relay sent something unusable: {exc}") from exc

    def _on_extension(self, body: dict[str, object]) -> None:
        if body["op"] == "welcome":
            if body.get("acks") is not True:
                raise AcksUnsupported(self.url)
        elif body["op"] == "ack":
            n = body.get("n")
            if not isinstance(n, int):
                raise ProtocolError("ack without an integer n")
            through = 0
            while self._inflight and self._inflight[0][0] <= n:
                through = max(through, self._inflight.popleft()[1])
            self.replica.acknowledged(through)
            self._step2_acked = self._step2_acked or n >= 1
            self._check_synced()
            self.replica.outbox_signal.set()  # room for more writes

    def _check_synced(self) -> None:
        """Connected once both halves of the handshake are done: their step 2 applied, ours acknowledged."""
        if not self.synced and self._relay_step2 and self._step2_acked:
            self.synced = True
            self.replica.set_status(Status.CONNECTED)

    def _answer_step1(self, payload: bytes) -> None:
        """Send only what the relay lacks; forget outbox rows it already holds (durably)."""
        replica = self.replica
        relay_state = decode_state_vector(payload)
        replica.catch_up()  # followers' rows in the doc before we compare
        rows = replica.store.outbox(replica.name)
        held = [row.seq for row in rows if covered_by(row.update, relay_state)]
        replica.store.discard(replica.name, held)
        missing = len(rows) - len(held)
        through = rows[-1].seq if rows else 0
        ahead = any(relay_state.get(c, 0) < clock for c, clock in decode_state_vector(state_vector(replica.doc)).items())
        if not missing and not ahead:
            self._queue(protocol.sync_step2(EMPTY_UPDATE), through)
            self._sent_through = through
            if held:
                replica.touch()
            return
        diff = encode_diff(replica.doc, payload)
        if len(diff) <= replica.settings.max_write_bytes:
            self._queue(protocol.sync_step2(diff), through)
            self._sent_through = through
        else:  # too big for one message: the rows go out in batches, like live edits
            self._queue(protocol.sync_step2(EMPTY_UPDATE), 0)
            self._sent_through = 0

    # -- sending ---------------------------------------------------------------------

    def _queue(self, frame: bytes, covers: int) -> None:
        self._control.append((frame, covers))
        self.replica.outbox_signal.set()

    async def _write(self, frame: bytes, covers: int) -> None:
        self._writes += 1
        self._inflight.append((self._writes, covers))
        await self.ws.send(frame)

    async def _sender(self) -> None:
        replica = self.replica
        try:
            while True:
                while self._control:
                    await self._write(*self._control.popleft())
                if self._sent_through is not None and len(self._inflight) < replica.settings.max_inflight_writes:
                    wait = self._rate.wait_time()
                    if wait > 0:  # rows keep arriving meanwhile and go out merged into one write
                        await anyio.sleep(wait)
                        continue
                    batch = self._next_batch()
                    if batch is not None:
                        update, covers = batch
                        self._rate.take()
                        await self._write(protocol.sync_update(update), covers)
                        self._sent_through = covers
                        continue
                with anyio.move_on_after(1.0):  # belt and braces: a missed wake-up costs a second
                    await replica.outbox_signal.wait()
        except ConnectionClosed:
            return  # the receiver sees the close and ends the session

    def _next_batch(self) -> tuple[bytes, int] | None:
        rows = self.replica.store.outbox(self.replica.name, after=self._sent_through or 0, limit=OUTBOX_READ_ROWS)
        if not rows:
            return None
        limit = self.replica.settings.max_write_bytes
        chosen = [rows[0]]
        size = len(rows[0].update)
        for row in rows[1:]:
            if size + len(row.update) > limit:
                break
            chosen.append(row)
            size += len(row.update)
        update = chosen[0].update if len(chosen) == 1 else merge_updates(*(row.update for row in chosen))
        return update, chosen[-1].seq


def _display(url: str) -> str:
    return url.split("?", 1)[0]


async def run_session(replica: Replica, base_url: str) -> SessionOutcome:
    """Connect to one relay URL and run a session until the connection ends.

    Returns how it ended when reconnecting may help; raises :class:`RelayRejected` or
    :class:`AcksUnsupported` when it cannot.
    """
    settings = replica.settings
    url = f"{base_url}/v1/sync/{replica.name}"
    headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else None
    try:
        with anyio.fail_after(settings.connect_timeout + settings.close_timeout):
            ws = await connect(
                url, additional_headers=headers, open_timeout=settings.connect_timeout,
                ping_interval=settings.ping_interval, ping_timeout=settings.ping_timeout,
                close_timeout=settings.close_timeout, max_size=None, compression=None, proxy=None,
                user_agent_header="syncline-client",
            )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if 400 <= status < 500 and status not in (408, 429):
            raise RelayRejected(status, f"HTTP {status} before the WebSocket opened", _display(url)) from exc
        return SessionOutcome(False, None, f"HTTP {status}")
    except InvalidURI as exc:
        raise RelayRejected(0, f"invalid URL: {exc}", _display(url)) from exc
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        return SessionOutcome(False, None, f"{type(exc).__name__}: {exc}")
    session = RelaySession(replica, ws, _display(url))
    detail = ""
    try:
        try:
            await session.run()
        except SessionEnded as exc:
            detail = str(exc)
            log.warning("closing the connection", extra={"doc": replica.name, "reason": detail})
        except LocalStoreError as exc:
            detail = str(exc)
            log.error("local store failed during a session", extra={"doc": replica.name, "reason": detail})
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(settings.close_timeout * 2):
            await ws.close()
    rcvd = ws.protocol.close_rcvd
    code = rcvd.code if rcvd is not None else ws.close_code
    reason = rcvd.reason if rcvd is not None else ""
    if rcvd is not None:
        refused = rejection(rcvd.code, reason, _display(url))
        if refused is not None:
            raise refused
    return SessionOutcome(session.synced, code, detail or reason)


async def sync_forever(replica: Replica) -> None:
    """Keep the replica connected, trying each URL in turn; return only when the relay refused it."""
    settings = replica.settings
    backoff = Backoff(settings.backoff_base, settings.backoff_cap)
    index = 0
    failures = 0
    ever_connected = False
    while True:
        replica.set_status(Status.RECONNECTING if ever_connected or replica.failed_rounds else Status.CONNECTING)
        try:
            outcome = await run_session(replica, settings.urls[index])
        except (RelayRejected, AcksUnsupported) as exc:
            log.error("the relay refused the document; not reconnecting", extra={"doc": replica.name, "reason": str(exc)})
            replica.set_status(Status.DISCONNECTED, exc)
            return
        except ClientError as exc:  # the local store, say: keep trying, it may come back
            log.error("sync attempt failed", extra={"doc": replica.name, "reason": str(exc)})
            outcome = SessionOutcome(False, None, str(exc))
        if outcome.synced:
            ever_connected = True
            backoff.reset()
            failures = 0
        else:
            failures += 1
            index = (index + 1) % len(settings.urls)
            if failures < len(settings.urls):
                continue  # the next URL at once; back off only after a full round
            failures = 0
            replica.failed_rounds += 1
        replica.set_status(Status.RECONNECTING)
        replica.touch()
        await anyio.sleep(backoff.next_delay())
