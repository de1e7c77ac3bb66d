"""The change feed: one Server-Sent Events stream per tenant, resumable with Last-Event-ID.

Events come from the store's ``changes`` table, written in the same transaction as
each update, so an event id is the update's seq, prefixed with the store's epoch for
that seq (``{epoch}-{seq}``): the store's order, the same after a restart, on any node.
A stream reads the table from where the client left off and then waits for the hub's
signal that something new was integrated; nothing is buffered in memory, so a
reconnect with ``Last-Event-ID`` delivers exactly what was missed.

A client resuming from where this feed cannot follow first gets a ``reset`` event
telling it to re-read its documents: below the pruned floor (retention is
``--feed-retention-seconds``), it then gets the events after the floor; with an id of
another history (another epoch: the store was wiped or restored from a backup, or a
seq the epoch never reached, or a bare seq without an epoch), every event kept.

Every event is ``{kind}.changed`` (``cart.changed``, ``stock.changed``) with data
``{"seq", "doc", "kind", "id", "action", "at"}``; ``action`` names the REST
operation (``cart.add_item``, ``stock.adjust`` …) or is ``"sync"`` for a
WebSocket peer's update. Clients re-read the document (with its ETag) to see
what changed, as with CouchDB's ``_changes``.

Ephemeral events posted to a tenant with :meth:`FeedHub.post` (the ``broadcast`` events of
``POST .../live/broadcast``) go to every open stream of the tenant, whatever its filters,
without an id (so they never move a client's Last-Event-ID) and are never stored.
"""

from __future__ import annotations

import json
import re
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from syncline.engine.tokens import Grant
from syncline.engine.errors import InvalidDocumentName
from syncline.engine.names import KINDS, DocName, check_kind, check_part
from syncline.server.store import Change, StoreUnavailable

from .context import RestContext
from .problems import Problem

EVENT_TYPES = tuple(f"{kind}.changed" for kind in KINDS)
PAGE = 256
MAX_FILTERS = 100
INBOX_MAX = 64


class FeedHub:
    """Wakes the streams of a tenant when one of its documents changed.

    ``wait_token(tenant)`` is taken *before* reading the store; ``notify`` replaces
    it, so a change integrated between the read and the wait is never slept through.
    """

    def __init__(self) -> None:
        self._events: dict[str, anyio.Event] = {}
        self.closed = anyio.Event()
        self._inboxes: dict[str, weakref.WeakSet[Inbox]] = {}

    def inbox(self, tenant: str) -> Inbox:
        """A stream's inbox of the ephemeral events posted to ``tenant`` (dropped with the stream)."""
        inbox = Inbox()
        self._inboxes.setdefault(tenant, weakref.WeakSet()).add(inbox)
        return inbox

    def post(self, tenant: str, event: ServerSentEvent) -> int:
        """Send ``event`` (never stored, no id) to the tenant's open streams; return how many."""
        inboxes = list(self._inboxes.get(tenant, ()))
        if not inboxes:
            self._inboxes.pop(tenant, None)
        for inbox in inboxes:
            inbox.append(event)
        signal = self._events.pop(tenant, None)
        if signal is not None:
            signal.set()
        return len(inboxes)

    def notify(self, doc: str, seq: int) -> None:
        tenant = doc.split("/", 1)[0]
        event = self._events.pop(tenant, None)
        if event is not None:
            event.set()

    def wait_token(self, tenant: str) -> anyio.Event:
        event = self._events.get(tenant)
        if event is None:
            event = self._events[tenant] = anyio.Event()
        return event

    def close(self) -> None:
        self.closed.set()
        for event in self._events.values():
            event.set()
        self._events.clear()


class Inbox:
    """Ephemeral events waiting for one stream; past ``INBOX_MAX`` the oldest is dropped."""

    def __init__(self) -> None:
        self._events: deque[ServerSentEvent] = deque(maxlen=INBOX_MAX)

    def append(self, event: ServerSentEvent) -> None:
        self._events.append(event)

    def drain(self) -> list[ServerSentEvent]:
        events = list(self._events)
        self._events.clear()
        return events


@dataclass(frozen=True)
class Filter:
    docs: frozenset[str]
    """``kind/id`` of the documents wanted; empty: all the token may read."""
    types: frozenset[str]

    def wants(self, change: Change, grant: Grant) -> bool:
        try:
            name = DocName.from_string(change.doc)
        except InvalidDocumentName:
            return False
        if not grant.allows(name):
            return False
        if self.docs and f"{name.kind}/{name.doc_id}" not in self.docs:
            return False
        return not self.types or f"{name.kind}.changed" in self.types


def _filter(request: Request) -> Filter:
    docs = request.query_params.getlist("doc")
    types = request.query_params.getlist("type")
    for key in request.query_params:
        if key not in ("doc", "type", "since", "token"):
            raise Problem("invalid-parameter", f"unknown query parameter {key[:64]!r}", parameter=key[:64])
    if len(docs) > MAX_FILTERS or len(types) > MAX_FILTERS:
        raise Problem("invalid-parameter", f"at most {MAX_FILTERS} doc and type filters", parameter="doc")
    for doc in docs:
        kind, _, doc_id = doc.partition("/")
        try:
            check_kind(kind)
            check_part("doc_id", doc_id)
        except InvalidDocumentName as exc:
            raise Problem("invalid-parameter", f"doc must be kind/id: {exc.reason}", parameter="doc") from None
    for kind in types:
        if kind not in EVENT_TYPES:
            raise Problem("invalid-parameter", f"type must be one of {', '.join(EVENT_TYPES)}", parameter="type")
    return Filter(frozenset(docs), frozenset(types))


_EPOCH_ID = re.compile(r"([0-9a-f]{16})-([0-9]{1,19})")
_BARE_ID = re.compile(r"[0-9]{1,19}")


def _resume_point(request: Request) -> tuple[str | None, int] | None:
    """The ``(epoch, seq)`` the client resumes after (epoch None for a bare, old-style seq)."""
    raw = request.headers.get("last-event-id")
    source = "Last-Event-ID"
    if raw is None:
        raw, source = request.query_params.get("since"), "since"
    if raw is None:
        return None
    if match := _EPOCH_ID.fullmatch(raw):
        return match[1], int(match[2])
    if _BARE_ID.fullmatch(raw):
        return None, int(raw)
    raise Problem("invalid-header" if source == "Last-Event-ID" else "invalid-parameter",
                  f"{source} must be an event id this feed gave out (EPOCH-SEQ)")


def epoch_at(epochs: list[tuple[int, str]], seq: int) -> str:
    """The epoch that names ``seq``: the last one starting at or below it (the first for older seqs)."""
    name = epochs[0][1]
    for first, epoch in epochs:
        if first > seq:
            break
        name = epoch
    return name


def event_id(epochs: list[tuple[int, str]], seq: int) -> str:
    return f"{epoch_at(epochs, seq)}-{seq}"


def _followable(epochs: list[tuple[int, str]], epoch: str | None, seq: int, head: int) -> bool:
    """Whether ``{epoch}-{seq}`` is a point of this store's history: a known epoch, and a seq
    within the range it named (the last epoch's range ends at the head)."""
    for i, (first, name) in enumerate(epochs):
        if name == epoch:
            end = epochs[i + 1][0] - 1 if i + 1 < len(epochs) else head
            return (i == 0 or seq >= first - 1) and seq <= end
    return False


async def events(request: Request) -> Response:
    ctx: RestContext = request.app.state.rest
    hub: FeedHub = request.app.state.feed
    grant = ctx.grant(request)
    wanted = _filter(request)
    resume = _resume_point(request)
    try:
        floor = await ctx.store.feed_floor()
        # The newest id given out: the floor when every event is pruned (head() is then 0).
        head = max(await ctx.store.head(), floor)
        epochs = await ctx.store.epochs()
    except StoreUnavailable:
        raise Problem("store-unavailable", headers={"Retry-After": "5"}) from None
    if resume is None:
        after, reset = head, False
    elif _followable(epochs, *resume, head):
        after, reset = resume[1], False  # below the floor, the stream itself sends a reset
    else:
        # Another history's id (a wiped or restored store, another deployment's, or a bare seq):
        # the client may have missed anything, so it re-reads and gets every event kept.
        after, reset = floor, True
    return EventSourceResponse(
        _stream(ctx, hub, grant, wanted, after, reset=reset),
        ping=ctx.settings.sse_heartbeat_seconds,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        send_timeout=30,
        shutdown_event=hub.closed,
    )


async def _stream(ctx: RestContext, hub: FeedHub, grant: Grant, wanted: Filter, after: int, *, reset: bool = False
                  ) -> AsyncIterator[ServerSentEvent]:
    last = after
    pending_reset = "the resume point is not from this feed's history" if reset else None
    inbox = hub.inbox(grant.tenant)  # ephemeral events (broadcasts), posted with hub.post
    while not hub.closed.is_set() and not grant.is_expired():
        signal = hub.wait_token(grant.tenant)
        for note in inbox.drain():
            yield note
        try:
            floor = await ctx.store.feed_floor()
            if last < floor:
                # Events between last and floor were pruned: the client must re-read its documents.
                pending_reset, last = "events before the floor were pruned", floor
            changes = await ctx.store.changes_since(grant.tenant, last, PAGE)
            epochs = await ctx.store.epochs()
        except StoreUnavailable:
            return  # the client reconnects with its Last-Event-ID once the store is back
        if pending_reset is not None:
            yield ServerSentEvent(json.dumps({"floor": last, "reason": pending_reset}), event="reset",
                                  id=event_id(epochs, last))
            pending_reset = None
        for change in changes:
            last = change.seq
            if wanted.wants(change, grant):
                yield _event(change, epochs)
        if len(changes) < PAGE:
            wait = 60.0  # a missed signal costs at most a minute
            if grant.expires_at is not None:  # as a WebSocket peer's, the stream ends with its token
                wait = min(wait, max(0.0, grant.expires_at - time.time()))
            with anyio.move_on_after(wait):
                await signal.wait()


def _event(change: Change, epochs: list[tuple[int, str]]) -> ServerSentEvent:
    name = DocName.from_string(change.doc)
    data = {
        "seq": change.seq,
        "doc": change.doc,
        "kind": name.kind,
        "id": name.doc_id,
        "action": change.action or "sync",
        "at": round(change.at * 1000),
    }
    return ServerSentEvent(json.dumps(data, separators=(",", ":")), event=f"{name.kind}.changed",
                           id=event_id(epochs, change.seq))
