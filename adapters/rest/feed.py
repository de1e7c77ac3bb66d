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

Each change gives one or more typed events, derived from the stored update by
:mod:`.feed_events` (``order.created``, ``cart.changed`` with previous and new quantities,
``stock.level_changed`` …; the list is ``engine.changes.FEED_EVENT_TYPES``), with data
``{"seq", "doc", "kind", "id", "action", "at"}`` plus the event's own fields; ``action``
names the REST operation (``cart.add_item``, ``stock.adjust`` …) or is ``"sync"`` for a
WebSocket peer's update. The last event of a change has the id ``{epoch}-{seq}``, the ones
before it ``{epoch}-{seq}.{i}`` (``i`` from 0), so a client resuming in the middle of a
change gets the rest of it, and nothing twice.

Every stream starts with a ``connected`` event (its resume position) and gets a
``heartbeat`` event every ``--sse-heartbeat-seconds``. Filters: ``doc`` (``kind/id``),
``type`` (an event type, ``kind.*``, or ``kind.changed`` for every event of the kind) and
``order`` (events of that order's document, of the cart checked out into it, and stock
levels its sales moved); values of one filter are alternatives, filters combine.

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

from syncline.engine import changes as typed
from syncline.engine.tokens import Grant
from syncline.engine.errors import InvalidDocumentName
from syncline.engine.names import DocName, check_kind, check_part
from syncline.server.store import Change, StoreUnavailable

from .context import RestContext
from .feed_events import Derived, FeedDeriver
from .problems import Problem

STREAM_EVENTS = ("connected", "heartbeat", "reset", "broadcast")
"""The events of the stream itself, sent whatever the filters."""
PAGE = 256
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
        self._deriver: FeedDeriver | None = None

    def deriver(self, ctx: RestContext) -> FeedDeriver:
        """The process's event deriver (made on the first stream)."""
        if self._deriver is None:
            self._deriver = FeedDeriver(ctx.store)
        return self._deriver

    @property
    def made_deriver(self) -> FeedDeriver | None:
        """The deriver, if a stream ever made it."""
        return self._deriver

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
    """Event types, ``kind.*`` or ``kind.changed`` (every event of the kind); empty: all."""
    orders: frozenset[str] = frozenset()
    """Order ids whose events are wanted; empty: all."""

    def wants(self, change: Change, grant: Grant) -> DocName | None:
        """The change's document if events of it may be wanted (the token may read it), else None."""
        try:
            name = DocName.from_string(change.doc)
        except InvalidDocumentName:
            return None
        if not grant.allows(name):
            return None
        if self.docs and f"{name.kind}/{name.doc_id}" not in self.docs:
            return None
        if self.types and not any(t.partition(".")[0] == name.kind for t in self.types):
            return None
        return name

    def wants_event(self, name: DocName, event: Derived) -> bool:
        if self.types and not ({event.type, f"{name.kind}.*", f"{name.kind}.changed"} & self.types):
            return False
        return not self.orders or bool(_orders_of(name, event) & self.orders)


def _orders_of(name: DocName, event: Derived) -> set[str]:
    """The orders an event is about: its order document's, the cart's checkout, the sales' refs."""
    if name.kind == "order":
        return {name.doc_id}
    status = event.fields.get("status")
    if name.kind == "cart" and isinstance(status, dict) and status.get("order"):
        return {str(status["order"])}
    return {str(ref) for ref in event.fields.get("refs", ())}


def _filter(request: Request) -> Filter:
    docs = request.query_params.getlist("doc")
    types = request.query_params.getlist("type")
    orders = request.query_params.getlist("order")
    for key in request.query_params:
        if key not in ("doc", "type", "order", "since", "token"):
            raise Problem("invalid-parameter", f"unknown query parameter {key[:64]!r}", parameter=key[:64])
    for values, parameter in ((docs, "doc"), (types, "type"), (orders, "order")):
        if len(values) > typed.MAX_FEED_FILTERS:
            raise Problem("invalid-parameter", f"at most {typed.MAX_FEED_FILTERS} {parameter} filters",
                          parameter=parameter)
    for doc in docs:
        kind, _, doc_id = doc.partition("/")
        try:
            check_kind(kind)
            check_part("doc_id", doc_id)
        except InvalidDocumentName as exc:
            raise Problem("invalid-parameter", f"doc must be kind/id: {exc.reason}", parameter="doc") from None
    for order in orders:
        try:
            check_part("doc_id", order)
        except InvalidDocumentName as exc:
            raise Problem("invalid-parameter", f"order must be an order id: {exc.reason}", parameter="order") from None
    for kind in types:
        if kind not in typed.FEED_TYPE_FILTERS:
            raise Problem("invalid-parameter", f"type must be one of {', '.join(typed.FEED_TYPE_FILTERS)}",
                          parameter="type")
    return Filter(frozenset(docs), frozenset(types), frozenset(orders))


_EPOCH_ID = re.compile(r"([0-9a-f]{16})-([0-9]{1,19})(?:\.([0-9]{1,4}))?")
_BARE_ID = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True)
class ResumePoint:
    """Where a client resumes: after change ``seq`` of ``epoch`` (None for a bare, old-style seq),
    or, with ``index``, after event ``index`` of that change (its other events still to come)."""

    epoch: str | None
    seq: int
    index: int | None = None


def _resume_point(request: Request) -> ResumePoint | None:
    raw = request.headers.get("last-event-id")
    source = "Last-Event-ID"
    if raw is None:
        raw, source = request.query_params.get("since"), "since"
    if raw is None:
        return None
    if match := _EPOCH_ID.fullmatch(raw):
        index = None if match[3] is None else int(match[3])
        if index is None or int(match[2]) > 0:
            return ResumePoint(match[1], int(match[2]), index)
    elif _BARE_ID.fullmatch(raw):
        return ResumePoint(None, int(raw))
    raise Problem("invalid-header" if source == "Last-Event-ID" else "invalid-parameter",
                  f"{source} must be an event id this feed gave out (EPOCH-SEQ or EPOCH-SEQ.INDEX)")


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
    within the range it named (the last epoch's range ends at the head). ``{epoch}-0``, of any
    epoch, is before every change of every history (a new store's position, whose epoch the next
    opening replaces): everything kept follows it, and the stream resets if some was pruned."""
    if epoch is not None and seq == 0:
        return True
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
    partial: tuple[int, int] | None = None
    if resume is None:
        after, reset = head, False
    elif _followable(epochs, resume.epoch, resume.seq, head):
        after, reset = resume.seq, False  # below the floor, the stream itself sends a reset
        if resume.index is not None:  # in the middle of a change: its later events are still due
            after, partial = resume.seq - 1, (resume.seq, resume.index)
    else:
        # Another history's id (a wiped or restored store, another deployment's, or a bare seq):
        # the client may have missed anything, so it re-reads and gets every event kept.
        after, reset = floor, True
    heartbeat = ctx.settings.sse_heartbeat_seconds
    return EventSourceResponse(
        _stream(ctx, hub, grant, wanted, after, reset=reset, partial=partial),
        ping=heartbeat,
        ping_message_factory=lambda: ServerSentEvent(
            json.dumps({"at": round(time.time() * 1000)}, separators=(",", ":")), event="heartbeat"),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        send_timeout=30,
        shutdown_event=hub.closed,
    )


async def _stream(ctx: RestContext, hub: FeedHub, grant: Grant, wanted: Filter, after: int, *, reset: bool = False,
                  partial: tuple[int, int] | None = None) -> AsyncIterator[ServerSentEvent]:
    last = after
    pending_reset = "the resume point is not from this feed's history" if reset else None
    inbox = hub.inbox(grant.tenant)  # ephemeral events (broadcasts), posted with hub.post
    deriver = hub.deriver(ctx)
    try:
        epochs = await ctx.store.epochs()
    except StoreUnavailable:
        return
    position = event_id(epochs, last) if partial is None else f"{event_id(epochs, partial[0])}.{partial[1]}"
    connected = {"position": position, "epoch": epochs[-1][1], "reset": reset,
                 "heartbeat_seconds": ctx.settings.sse_heartbeat_seconds}
    # The id is the resume point itself, so a reconnect before any other event resumes there;
    # none when a reset is due, so that a reconnect still gets the reset.
    yield ServerSentEvent(json.dumps(connected, separators=(",", ":")), event="connected",
                          id=None if reset else position)
    with deriver.streaming():
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
                name = wanted.wants(change, grant)
                if name is None:
                    continue
                try:
                    derived = await deriver.events(change)
                except StoreUnavailable:
                    return
                start = 0
                if partial is not None and partial[0] == change.seq:
                    # Resumed after event partial[1] of this change: the rest of it (at least its last).
                    start = min(partial[1] + 1, len(derived) - 1)
                for index in range(start, len(derived)):
                    if wanted.wants_event(name, derived[index]):
                        yield _event(change, name, derived, index, epochs)
            if len(changes) < PAGE:
                wait = 60.0  # a missed signal costs at most a minute
                if grant.expires_at is not None:  # as a WebSocket peer's, the stream ends with its token
                    wait = min(wait, max(0.0, grant.expires_at - time.time()))
                with anyio.move_on_after(wait):
                    await signal.wait()


def _event(change: Change, name: DocName, derived: tuple[Derived, ...], index: int,
           epochs: list[tuple[int, str]]) -> ServerSentEvent:
    event = derived[index]
    data = {
        "seq": change.seq,
        "doc": change.doc,
        "kind": name.kind,
        "id": name.doc_id,
        "action": change.action or "sync",
        "at": round(change.at * 1000),
    }
    for key, value in event.fields.items():
        data.setdefault(key, value)  # the change's own fields are never overridden
    ident = event_id(epochs, change.seq)
    if index < len(derived) - 1:
        ident = f"{ident}.{index}"
    return ServerSentEvent(json.dumps(data, separators=(",", ":")), event=event.type, id=ident)
