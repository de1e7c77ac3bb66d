"""The public sync client: open documents, edit them offline or online, watch them sync.

::

    async with SyncClient(data_dir="till-data", urls=["ws://127.0.0.1:8787"], token=token) as client:
        cart = await client.cart("acme/cart/c-1")      # the engine's Cart, on the live document
        cart.add_item("sku-1", 2)                       # applied and on disk before it returns
        replica = client.replica("acme/cart/c-1")
        await replica.wait_synced(timeout=10)            # connected and acknowledged by the relay

Every long-lived task belongs to the client's task group, opened by ``__aenter__`` and
cancelled by ``__aexit__``: the device watcher (other processes' commits), and per
document a conflict watcher and a leader/follower loop (see :mod:`.same_device`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from syncline.engine import Cart, Order, StockLedger
from syncline.engine.errors import InvalidDocumentName as EngineNameError
from syncline.engine.names import DocName

from .backoff import Backoff
from .connection import sync_forever
from .errors import ClientClosed, ClientSettingsError, DocumentKindMismatch, InvalidDocumentName
from .feed import ChangeFeed
from .local_store import DocSummary, LocalStore
from .orders import OrderPage
from .orders import list_orders as list_orders_page
from .replica import Replica
from .same_device import watch_device
from .settings import ClientSettings
from .status import Status

_STATUS_ORDER = (Status.DISCONNECTED, Status.RECONNECTING, Status.CONNECTING, Status.CONNECTED)


def parse_name(name: str) -> DocName:
    try:
        return DocName.from_string(name)
    except EngineNameError as exc:
        raise InvalidDocumentName(str(name), exc.reason) from exc


class SyncClient:
    """An offline-first peer: a data directory, a list of relay URLs, and the documents it opened."""

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        data_dir: str | Path | None = None,
        urls: Sequence[str] | str = (),
        token: str | None = None,
        **options: Any,
    ) -> None:
        if settings is None:
            if data_dir is None:
                raise TypeError("SyncClient needs settings or a data_dir")
            settings = ClientSettings(Path(data_dir), tuple([urls] if isinstance(urls, str) else urls), token, **options)
        self.settings = settings
        self.writer = uuid.uuid4().hex
        """This client instance's name in the shared store (rows it wrote, the leader it is)."""
        self._replicas: dict[str, Replica] = {}
        self._store: LocalStore | None = None
        self._tg: TaskGroup | None = None
        self._stack: AsyncExitStack | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> SyncClient:
        stack = AsyncExitStack()
        try:
            self._store = LocalStore(self.settings.data_dir)
            stack.callback(self._close_store)
            stack.callback(self._close_replicas)  # after the task group has finished
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            self._tg.start_soon(watch_device, self._store, self.settings.device_poll_interval, self._device_changed,
                                self._store.data_version())
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:
        assert self._stack is not None and self._tg is not None
        self._tg.cancel_scope.cancel()
        stack, self._stack = self._stack, None
        # The body's own exception propagates as it was raised, not wrapped in the task
        # group's ExceptionGroup: the group only ever ends by our cancellation here.
        await stack.aclose()
        return None

    def _close_replicas(self) -> None:
        self._tg = None
        for replica in self._replicas.values():
            replica.close()

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()

    def _device_changed(self) -> None:
        for replica in tuple(self._replicas.values()):
            replica.device_changed()

    # -- documents ---------------------------------------------------------------------

    async def open(self, name: str) -> Replica:
        """Open (or return the already open) replica of ``name`` and start syncing it."""
        parsed = parse_name(name)
        key = str(parsed)
        if self._tg is None or self._store is None:
            raise ClientClosed("open the client with 'async with' first")
        if key in self._replicas:
            return self._replicas[key]
        replica = Replica(key, parsed.kind, parsed.doc_id, self._store, self.settings, self.writer)
        self._replicas[key] = replica
        self._tg.start_soon(replica.maintain)
        if self.settings.urls:
            replica.set_status(Status.CONNECTING)
            self._tg.start_soon(self._lead_or_follow, replica)
        return replica

    async def cart(self, name: str) -> Cart:
        """The engine's :class:`Cart` on the live document ``{tenant}/cart/{id}``."""
        if parse_name(name).kind != "cart":
            raise DocumentKindMismatch(name, "cart")
        model = (await self.open(name)).model
        assert isinstance(model, Cart)
        return model

    async def stock(self, name: str) -> StockLedger:
        """The engine's :class:`StockLedger` on the live document ``{tenant}/stock/{location}``."""
        if parse_name(name).kind != "stock":
            raise DocumentKindMismatch(name, "stock")
        model = (await self.open(name)).model
        assert isinstance(model, StockLedger)
        return model

    async def order(self, name: str) -> Order:
        """The engine's :class:`Order` on the live document ``{tenant}/order/{id}``."""
        if parse_name(name).kind != "order":
            raise DocumentKindMismatch(name, "order")
        model = (await self.open(name)).model
        assert isinstance(model, Order)
        return model

    async def list_orders(self, tenant: str, *, stage: str | None = None, payment: str | None = None,
                          limit: int | None = None, cursor: str | None = None, timeout: float = 10.0) -> OrderPage:
        """One page of ``tenant``'s orders, asked with this client's token of its relay URLs in
        turn until one answers (each within ``timeout``).

        A list spans documents, so it is a REST query, not a replica: it needs the relay, and
        works with or without ``async with``. See :func:`syncline.adapters.client.list_orders`.
        """
        if not self.settings.urls:
            raise ClientSettingsError("urls", "listing orders needs a relay URL")
        return await list_orders_page(self.settings.urls, self.settings.token, tenant, stage=stage,
                                      payment=payment, limit=limit, cursor=cursor, timeout=timeout)

    def feed(self, tenant: str, *, types: Sequence[str] = (), documents: Sequence[str] = (),
             orders: Sequence[str] = (), since: str | None = None) -> ChangeFeed:
        """The change feed of ``tenant`` from this client's relay URLs with its token (``async with``
        it, then ``async for`` its events); works with or without ``async with`` on the client.
        See :class:`syncline.adapters.client.ChangeFeed`."""
        if not self.settings.urls:
            raise ClientSettingsError("urls", "the change feed needs a relay URL")
        settings = self.settings
        return ChangeFeed(settings.urls, settings.token, tenant, types=types, documents=documents,
                          orders=orders, since=since, connect_timeout=settings.connect_timeout,
                          backoff=Backoff(settings.backoff_base, settings.backoff_cap))

    def replica(self, name: str) -> Replica:
        """The open replica of ``name`` (status, pending count, subscriptions); KeyError if not open."""
        return self._replicas[str(parse_name(name))]

    @property
    def replicas(self) -> Iterable[Replica]:
        return tuple(self._replicas.values())

    def documents(self) -> list[DocSummary]:
        """Every document in the data directory (open or not), with its pending count."""
        if self._store is None:
            raise ClientClosed("open the client with 'async with' first")
        return self._store.documents()

    # -- aggregate state ---------------------------------------------------------------

    @property
    def status(self) -> Status:
        """The least connected status among the open documents (DISCONNECTED with none open)."""
        if not self._replicas:
            return Status.DISCONNECTED
        return min((r.status for r in self._replicas.values()), key=_STATUS_ORDER.index)

    @property
    def pending(self) -> int:
        return sum(r.pending for r in self._replicas.values())

    async def wait_synced(self, timeout: float) -> None:
        """Wait until every open document is synced (see :meth:`Replica.wait_synced`)."""
        with anyio.fail_after(timeout):
            for replica in tuple(self._replicas.values()):
                await replica.wait_synced(timeout)

    # -- the leader/follower loop --------------------------------------------------------

    async def _lead_or_follow(self, replica: Replica) -> None:
        """Sync the document if this client holds its lease; otherwise follow whoever does."""
        while True:
            if replica.lease.try_acquire():
                replica.leader = True
                replica.touch()
                try:
                    await sync_forever(replica)
                finally:
                    with anyio.CancelScope(shield=True):
                        replica.set_status(Status.DISCONNECTED)
                        replica.leader = False
                        replica.lease.release()
                return  # the relay refused this client: let another client here try with its own token
            replica.mirror_leader()
            await anyio.sleep(self.settings.lease_poll_interval)
