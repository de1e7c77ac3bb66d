"""``syncline client``: a small terminal client on the sync client library.

Examples::

    syncline client --url ws://127.0.0.1:8787 --token T --data-dir D cart acme/c-1 add sku-1 2
    syncline client ... cart acme/c-1 show
    syncline client ... stock acme/loc-1 adjust sku-1 -1 --reason sale
    syncline client ... status              # every document here: pending, status, last ack
    syncline client ... sync                # deliver what is pending, then exit
    syncline client ... watch acme/cart/c-1 # live status and remote changes until Ctrl-C
    syncline client ... orders list --tenant acme --stage confirmed [--all]   # asks the relay (REST)
    syncline client ... feed --tenant acme --type 'order.*' [--since ID]       # change events as JSON lines

An edit is applied and stored locally first, then the command tries to deliver it for
up to ``--wait`` seconds. Offline, it exits 0 with ``queued, N pending``; the next
command that reaches the relay (any edit, ``sync`` or ``watch``) delivers the queue.
Exit codes: 0 done (synced or queued), 1 ``sync`` left updates pending, or ``show`` found a
replica that has never synced with the relay (it would show only this device's edits), 2 bad
usage or input, 3 the relay refused the document (token, permissions), 4 the local store failed;
``orders list`` exits 1 when the relay did not answer (unreachable, or 429 or 5xx: retry), 2 when it
refused the query (400, 404, 422), 3 when it refused the token (401, 403). ``feed`` prints one JSON
line per event until interrupted (exit 0) or ``--count`` events; it reconnects by itself, and
exits 2 or 3 for the same refusals.
``show`` first catches up with the relay for up to ``--wait`` seconds.
Flags fall back to ``SYNCLINE_CLIENT_URLS`` (comma-separated), ``SYNCLINE_CLIENT_TOKEN``
and ``SYNCLINE_CLIENT_DATA_DIR``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import anyio

from syncline.engine import Cart, EngineError, Order, StockLedger, line_key
from syncline.engine.order import PAYMENTS, STAGES

from .client import SyncClient, parse_name
from .errors import ClientError, LocalStoreError, RelayRejected, RelayUnreachable, RestProblem, SyncTimeout
from .local_store import LocalStore
from .orders import MAX_ORDER_PAGE, OrderSummary, all_orders, list_orders
from .replica import Replica
from .same_device import DocumentLease
from .settings import ClientSettings
from .status import Change

ENV_URLS = "SYNCLINE_CLIENT_URLS"
ENV_TOKEN = "SYNCLINE_CLIENT_TOKEN"
ENV_DATA_DIR = "SYNCLINE_CLIENT_DATA_DIR"
DEFAULT_DATA_DIR = Path("./syncline-client")
DEFAULT_WAIT = 5.0

EXIT_PENDING = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_STORE = 4
EXIT_UNANSWERED = 1
"""``orders list``: the relay did not answer (unreachable, or busy: 429, 5xx)."""


def add_client_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``client`` and its subcommands to the ``syncline`` parser's subparsers."""
    client = commands.add_parser(
        "client", help="a terminal sync client: edit carts and stock offline or online",
        description="Edit carts and stock through a local replica that syncs with the relay. Edits are "
        "stored locally first and delivered when the relay is reachable.",
    )
    client.add_argument("--url", action="append", dest="urls", metavar="URL",
                        help=f"relay base URL, e.g. ws://127.0.0.1:8787 (repeatable: tried in turn) [env {ENV_URLS}]")
    client.add_argument("--token", default=None, help=f"access token (syncline token ...) [env {ENV_TOKEN}]")
    client.add_argument("--data-dir", type=Path, default=None,
                        help=f"local replica directory [env {ENV_DATA_DIR}; default {DEFAULT_DATA_DIR}]")
    client.add_argument("--wait", type=float, default=DEFAULT_WAIT, metavar="SECONDS",
                        help=f"how long an edit or sync waits for the relay's acknowledgement [default {DEFAULT_WAIT}]")
    client.add_argument("--connect-timeout", type=float, default=3.0, metavar="SECONDS",
                        help="how long one connection attempt may take [default 3]")
    actions = client.add_subparsers(dest="client_command", required=True, metavar="ACTION")

    cart = actions.add_parser("cart", help="show or edit a cart: cart TENANT/ID add|set|remove|show")
    cart.add_argument("doc", metavar="TENANT/ID", help="the cart, e.g. acme/c-1 (or acme/cart/c-1)")
    cart_ops = cart.add_subparsers(dest="op", required=True, metavar="OP")
    add = cart_ops.add_parser("add", help="add QTY (default 1) of a product")
    add.add_argument("sku")
    add.add_argument("quantity", type=int, nargs="?", default=1)
    set_ = cart_ops.add_parser("set", help="set a line's quantity (what this replica has seen)")
    set_.add_argument("sku")
    set_.add_argument("quantity", type=int)
    remove = cart_ops.add_parser("remove", help="remove a line")
    remove.add_argument("sku")
    for sub in (add, set_, remove):
        sub.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE",
                         help="a line attribute (repeatable); same product and attributes = same line")
    cart_ops.add_parser("show", help="print the cart")

    stock = actions.add_parser("stock", help="show a location's stock or post an adjustment")
    stock.add_argument("doc", metavar="TENANT/LOCATION", help="the location, e.g. acme/loc-1 (or acme/stock/loc-1)")
    stock_ops = stock.add_subparsers(dest="op", required=True, metavar="OP")
    adjust = stock_ops.add_parser("adjust", help="record an adjustment: SKU DELTA --reason R")
    adjust.add_argument("sku")
    adjust.add_argument("delta", type=int)
    adjust.add_argument("--reason", required=True)
    adjust.add_argument("--actor", default=None, help="who (default cli@HOSTNAME)")
    adjust.add_argument("--id", dest="adjustment_id", default=None, help="adjustment id (default: a new uuid)")
    adjust.add_argument("--ref", default=None, help="an optional reference (order id, ...)")
    resolve = stock_ops.add_parser("resolve", help="resolve a conflict: CONFLICT_ID accept|compensate|merge")
    resolve.add_argument("conflict")
    resolve.add_argument("strategy", choices=("accept", "compensate", "merge"))
    resolve.add_argument("--level", type=int, default=None, help="the counted level (merge)")
    resolve.add_argument("--actor", default=None)
    stock_ops.add_parser("show", help="print levels and open conflicts")

    order = actions.add_parser("order", help="show or move an order: order TENANT/ID show|stage|pay|cancel")
    order.add_argument("doc", metavar="TENANT/ID", help="the order, e.g. acme/o-1 (or acme/order/o-1)")
    order_ops = order.add_subparsers(dest="op", required=True, metavar="OP")
    order_ops.add_parser("show", help="print the order, its stage, payment and trail")
    stage = order_ops.add_parser("stage", help="move the order forward to STAGE")
    stage.add_argument("stage", choices=STAGES)
    pay = order_ops.add_parser("pay", help="record the payment's new STATUS")
    pay.add_argument("status", choices=PAYMENTS)
    cancel = order_ops.add_parser("cancel", help="cancel the order")
    for move in (stage, pay, cancel):
        move.add_argument("--actor", default=None, help="who (default cli@HOSTNAME)")
        move.add_argument("--note", default=None)

    orders = actions.add_parser("orders", help="ask the relay for a tenant's orders: orders list")
    orders_ops = orders.add_subparsers(dest="op", required=True, metavar="OP")
    listing = orders_ops.add_parser("list", help="one page of the tenant's orders in id order (or --all of them)")
    listing.add_argument("--tenant", required=True, help="the tenant whose orders to list (the token's)")
    listing.add_argument("--stage", choices=STAGES, default=None, help="only orders at this stage")
    listing.add_argument("--payment", choices=PAYMENTS, default=None, help="only orders with this payment status")
    listing.add_argument("--limit", type=int, default=None, metavar="N",
                         help=f"orders per page, 1 to {MAX_ORDER_PAGE} [default: the relay's, 25]")
    listing.add_argument("--cursor", default=None, help="go on after a previous page: the next cursor it printed")
    listing.add_argument("--all", action="store_true", help="follow the cursors to the last page")

    feed = actions.add_parser("feed", help="follow a tenant's change feed: one JSON line per event")
    feed.add_argument("--tenant", required=True, help="the tenant whose changes to follow (the token's)")
    feed.add_argument("--type", dest="types", action="append", default=[], metavar="TYPE",
                      help="only this event type, or kind.* (repeatable)")
    feed.add_argument("--doc", dest="documents", action="append", default=[], metavar="KIND/ID",
                      help="only this document's events (repeatable)")
    feed.add_argument("--order", dest="orders", action="append", default=[], metavar="ID",
                      help="only this order's events (repeatable)")
    feed.add_argument("--since", default=None, metavar="ID", help="resume after this event id")
    feed.add_argument("--count", type=int, default=None, metavar="N", help="exit 0 after N events")

    actions.add_parser("status", help="every document in the data directory: pending, status, last ack")
    actions.add_parser("sync", help="deliver every pending update, then exit (1 if some stay pending)")
    watch = actions.add_parser("watch", help="print status and remote changes live until interrupted")
    watch.add_argument("docs", nargs="*", metavar="DOC", help="full names (tenant/kind/id); default: every document here")
    return client


def run_client(args: argparse.Namespace, environ: Mapping[str, str] | None = None,
               out: TextIO | None = None) -> int:
    """Run one ``syncline client`` command; return the exit code."""
    env = os.environ if environ is None else environ
    out = sys.stdout if out is None else out
    # The library logs why it stopped; this command says it in its one line instead.
    logging.getLogger("syncline.client").addHandler(logging.NullHandler())
    urls = args.urls or [u for u in env.get(ENV_URLS, "").split(",") if u.strip()]
    try:
        settings = ClientSettings(
            data_dir=args.data_dir or Path(env.get(ENV_DATA_DIR, str(DEFAULT_DATA_DIR))),
            urls=tuple(u.strip() for u in urls),
            token=args.token or env.get(ENV_TOKEN) or None,
            connect_timeout=args.connect_timeout,
            backoff_cap=5.0,
        )
        if args.wait < 0:
            raise ValueError("--wait must not be negative")
        return anyio.run(_dispatch, args, settings, out)
    except RelayRejected as exc:
        print(f"syncline client: {exc}; check --token (`syncline token --inspect TOKEN --data-dir "
              "RELAY_DATA_DIR` says why a relay refuses it)", file=sys.stderr)
        return EXIT_REFUSED
    except LocalStoreError as exc:
        print(f"syncline client: {exc}", file=sys.stderr)
        return EXIT_STORE
    except (ClientError, EngineError, ValueError) as exc:
        print(f"syncline client: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _doc_name(short: str, kind: str) -> str:
    parts = short.split("/")
    name = f"{parts[0]}/{kind}/{parts[1]}" if len(parts) == 2 else short
    if parse_name(name).kind != kind:
        raise ValueError(f"{short!r} is not a {kind} name")
    return name


def _attrs(pairs: list[str]) -> dict[str, str]:
    attrs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--attr takes KEY=VALUE, not {pair!r}")
        attrs[key] = value
    return attrs


def _actor(given: str | None) -> str:
    return given or f"cli@{socket.gethostname() or 'localhost'}"


async def _dispatch(args: argparse.Namespace, settings: ClientSettings, out: TextIO) -> int:
    command = args.client_command
    if command == "status":
        return _status(settings, out)
    if command == "orders":
        return await _orders(settings, args, out)  # a REST query: no replica, no data directory
    if command == "feed":
        return await _feed(settings, args, out)  # a stream of the relay's: no replica either
    async with SyncClient(settings) as client:
        if command == "cart":
            return await _cart(client, args, out)
        if command == "stock":
            return await _stock(client, args, out)
        if command == "order":
            return await _order(client, args, out)
        if command == "sync":
            return await _sync(client, args, out)
        return await _watch(client, args, out)


async def _deliver(replica: Replica, wait: float, out: TextIO) -> int:
    if replica.settings.urls and wait > 0 and await replica.flush(wait):
        print(f"synced, {replica.pending} pending", file=out)
    else:
        reason = "no relay URL given" if not replica.settings.urls else "relay unreachable"
        print(f"queued, {replica.pending} pending ({reason})", file=out)
    return 0


async def _try_sync(replica: Replica, wait: float) -> bool:
    """Catch up with the relay for up to ``wait`` seconds before showing a document; True if synced.

    Raises the replica's error (:class:`RelayRejected` for a refused token) if the relay refused it."""
    return bool(replica.settings.urls) and wait > 0 and await replica.flush(wait)


def _shown(replica: Replica, synced: bool, out: TextIO) -> int:
    """The exit status of ``show``: 1, with one line on stderr, when this replica has never synced."""
    if synced:
        return 0
    reason = "no relay URL given" if not replica.settings.urls else "relay unreachable"
    if replica.last_acked_at is None:
        print(f"syncline client: {replica.name} has never synced with a relay ({reason}): this shows only "
              "this device's own edits; run it with a reachable --url and a valid --token", file=sys.stderr)
        return EXIT_PENDING
    print(f"(offline: {reason}; as of the last sync at {_when(replica.last_acked_at)})", file=out)
    return 0


async def _cart(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    name = _doc_name(args.doc, "cart")
    cart = await client.cart(name)
    replica = client.replica(name)
    if args.op == "show":
        synced = await _try_sync(replica, args.wait)
        _print_cart(name, cart, out)
        return _shown(replica, synced, out)
    attrs = _attrs(args.attr)
    key = line_key(args.sku, attrs)
    if args.op == "add":
        cart.add_item(args.sku, args.quantity, attrs)
        print(f"added {args.quantity} x {args.sku} to {name}: quantity {cart.quantity(key)}", file=out)
    elif args.op == "set":
        cart.set_quantity(key, args.quantity)
        print(f"set {args.sku} in {name}: quantity {cart.quantity(key)}", file=out)
    else:
        cart.remove_line(key)
        print(f"removed {args.sku} from {name}: quantity {cart.quantity(key)}", file=out)
    return await _deliver(replica, args.wait, out)


async def _stock(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    name = _doc_name(args.doc, "stock")
    ledger = await client.stock(name)
    replica = client.replica(name)
    if args.op == "show":
        synced = await _try_sync(replica, args.wait)
        _print_stock(name, ledger, out)
        return _shown(replica, synced, out)
    if args.op == "adjust":
        adjustment = ledger.record(args.adjustment_id or uuid.uuid4().hex, args.sku, args.delta,
                                   reason=args.reason, actor=_actor(args.actor), ref=args.ref)
        print(f"recorded {adjustment.id}: {args.sku} {args.delta:+d} ({args.reason}) at {name}: "
              f"level {ledger.level(args.sku)}", file=out)
    else:
        resolution = ledger.resolve(args.conflict, args.strategy, actor=_actor(args.actor), level=args.level)
        print(f"resolved {resolution.conflict} by {resolution.strategy} at {name}", file=out)
    for conflict in ledger.conflicts():
        print(f"conflict {conflict.id}: {conflict.sku} at {conflict.level}", file=out)
    return await _deliver(replica, args.wait, out)


async def _order(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    name = _doc_name(args.doc, "order")
    order = await client.order(name)
    replica = client.replica(name)
    if not order.view().placed and replica.settings.urls and args.wait > 0:
        # A fresh replica learns the checkout from the relay: an order cannot move before that.
        try:
            await replica.wait_synced(args.wait)
        except SyncTimeout:
            pass  # offline: the order shows as not placed, and a move is refused
    if args.op == "show":
        _print_order(name, order, out)
        return 0
    actor = _actor(args.actor)
    if args.op == "stage":
        moved = order.advance(args.stage, by=actor, note=args.note)
    elif args.op == "pay":
        moved = order.record_payment(args.status, by=actor, note=args.note)
    else:
        moved = order.cancel(by=actor, note=args.note)
    view = order.view()
    print(f"{name}: stage {view.stage}, payment {view.payment}" + ("" if moved else " (already there)"), file=out)
    return await _deliver(replica, args.wait, out)


async def _orders(settings: ClientSettings, args: argparse.Namespace, out: TextIO) -> int:
    """``orders list``: one line per order, then the next cursor when there is one."""
    if not settings.urls:
        raise ValueError("orders list needs --url")
    relay, token = settings.urls, settings.token  # asked in turn until one answers
    query = {"stage": args.stage, "payment": args.payment, "limit": args.limit, "cursor": args.cursor}
    cursor = None
    shown = False
    try:
        if args.all:
            async for summary in all_orders(relay, token, args.tenant, **query):
                _print_summary(summary, out)
                shown = True
        else:
            page = await list_orders(relay, token, args.tenant, **query)
            for summary in page.orders:
                _print_summary(summary, out)
                shown = True
            cursor = page.next_cursor
    except RestProblem as exc:
        if exc.status in (401, 403):
            print(f"syncline client: {exc}; check --token and --tenant", file=sys.stderr)
            return EXIT_REFUSED
        print(f"syncline client: {exc}", file=sys.stderr)
        return EXIT_USAGE if 400 <= exc.status < 500 and exc.status not in (408, 429) else EXIT_UNANSWERED
    except RelayUnreachable as exc:
        print(f"syncline client: {exc}", file=sys.stderr)
        return EXIT_UNANSWERED
    if cursor is not None:
        print(f"next cursor: {cursor}", file=out)
    elif not shown:
        print("no orders", file=out)
    return 0


async def _feed(settings: ClientSettings, args: argparse.Namespace, out: TextIO) -> int:
    """``feed``: each event as one JSON line ``{"id", "type", "data"}``, until a signal or ``--count``."""
    if args.count is not None and args.count < 1:
        raise ValueError("--count must be at least 1")
    seen = 0
    refused: RestProblem | None = None
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_stop_on_signal, scope)
            try:
                async with SyncClient(settings).feed(args.tenant, types=args.types, documents=args.documents,
                                                     orders=args.orders, since=args.since) as feed:
                    async for event in feed:
                        _line(out, json.dumps({"id": event.id, "type": event.type, "data": event.data},
                                              separators=(",", ":"), ensure_ascii=False))
                        seen += 1
                        if seen == args.count:
                            break
            except RestProblem as exc:  # caught in here: the task group would wrap it
                refused = exc
            tg.cancel_scope.cancel()
    if refused is not None:
        hint = "; check --token and --tenant" if refused.status in (401, 403) else ""
        print(f"syncline client: {refused}{hint}", file=sys.stderr)
        return EXIT_REFUSED if refused.status in (401, 403) else EXIT_USAGE
    return 0


def _print_summary(summary: OrderSummary, out: TextIO) -> None:
    print(f"{summary.id:<20} {summary.stage:<10} {summary.payment:<10} {summary.total:>9} {summary.currency}", file=out)


def _print_order(name: str, order: Order, out: TextIO) -> None:
    view = order.view()
    if not view.placed:
        print(f"{name}: not placed (this replica holds no checkout for it)", file=out)
        return
    print(f"{name} ({view.stage}, payment {view.payment}): {len(view.lines)} lines, total {view.total} "
          f"{view.currency}, from cart {view.cart} at {view.location}", file=out)
    for line in view.lines:
        print(f"  {line.product_id:<20} {line.quantity:>6} x {line.unit_price:>8} = {line.line_total:>9}", file=out)
    for move in view.trail:
        note = f"  ({move.note})" if move.note else ""
        print(f"  {move.kind} {move.previous} -> {move.to} by {move.by}{note}"
              + ("" if move.effective else "  [overtaken]"), file=out)


def _print_cart(name: str, cart: Cart, out: TextIO) -> None:
    view = cart.view()
    print(f"{name} ({view.status.state}): {len(view.lines)} lines, {view.total_quantity} items", file=out)
    for line in view.lines:
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(line.attributes.items()))
        print(f"  {line.product_id:<20} {line.quantity:>6}" + (f"  [{attrs}]" if attrs else ""), file=out)


def _print_stock(name: str, ledger: StockLedger, out: TextIO) -> None:
    view = ledger.view()
    print(f"{name}: {len(view.levels)} skus, {len(view.adjustments)} adjustments", file=out)
    for sku, level in view.levels.items():
        print(f"  {sku:<20} {level:>6}", file=out)
    for conflict in view.conflicts:
        print(f"  conflict {conflict.id}: {conflict.sku} at {conflict.level}", file=out)


def _when(at: float | None) -> str:
    return "never" if at is None else dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(settings: ClientSettings, out: TextIO) -> int:
    """Read the data directory without connecting (works with the relay down)."""
    store = LocalStore(settings.data_dir)
    try:
        documents = store.documents()
    finally:
        store.close()
    if not documents:
        print(f"no documents in {settings.data_dir}", file=out)
    for doc in documents:
        lease = DocumentLease(settings.data_dir, doc.doc)
        live = not lease.try_acquire()
        lease.release()
        status = doc.state.status if (doc.state is not None and live) else "not syncing (no client running)"
        acked = _when(doc.state.last_acked_at if doc.state else None)
        error = f", error: {doc.state.error}" if doc.state is not None and doc.state.error else ""
        print(f"{doc.doc}: {doc.pending} pending, {status}, last ack {acked}{error}", file=out)
    return 0


async def _sync(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    names = [doc.doc for doc in client.documents() if doc.pending]
    if not names:
        print("nothing pending", file=out)
        return 0
    if not client.settings.urls:
        raise ValueError("sync needs --url")
    replicas = [await client.open(name) for name in names]
    code = 0
    for replica in replicas:
        synced = await replica.flush(args.wait)
        print(f"{replica.name}: {'synced' if synced else 'queued'}, {replica.pending} pending", file=out)
        code = code if synced else EXIT_PENDING
    return code


async def _watch(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    names = args.docs or [doc.doc for doc in client.documents()]
    if not names:
        raise ValueError("watch needs at least one document name")
    replicas = [await client.open(name) for name in names]
    async with anyio.create_task_group() as tg:
        tg.start_soon(_stop_on_signal, tg.cancel_scope)
        for replica in replicas:
            _show(replica, out)
            replica.on_status(lambda status, r=replica: _line(out, f"{r.name}: {status.value}, {r.pending} pending"))
            tg.start_soon(_follow_changes, replica, out)
            tg.start_soon(_follow_conflicts, replica, out)
    return 0


def _line(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


def _show(replica: Replica, out: TextIO) -> None:
    if isinstance(replica.model, Cart):
        _print_cart(replica.name, replica.model, out)
    else:
        _print_stock(replica.name, replica.model, out)
    out.flush()


async def _follow_changes(replica: Replica, out: TextIO) -> None:
    with replica.changes() as changes:
        async for change in changes:
            _describe(change, replica, out)


def _describe(change: Change, replica: Replica, out: TextIO) -> None:
    missed = f" (+{change.missed} more)" if change.missed else ""
    _line(out, f"change from {change.origin}{missed}:")
    _show(replica, out)


async def _follow_conflicts(replica: Replica, out: TextIO) -> None:
    with replica.conflicts() as conflicts:
        async for conflict in conflicts:
            _line(out, f"new conflict {conflict.id}: {conflict.sku} at {conflict.level}")


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return

