"""The ``syncline`` command line: ``serve``, ``token``, ``catalog``, ``client`` and ``demo``.

Exit status: 0 on success; 2 for a bad flag or setting; 3 when ``serve``'s application
fails to start, e.g. its store cannot be opened (uvicorn's own startup-failure status);
:data:`EXIT_DATA_DIR_IN_USE` when ``serve`` finds another relay holding its data
directory; 1 for other failures. Only ``serve`` takes the data directory's lock: ``token``
reads (or creates) the secret and ``catalog`` writes prices through SQLite's own
locking, so both work beside a running relay.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from syncline.engine.errors import EngineError
from syncline.server.errors import DataDirInUse, ServerError
from syncline.server.settings import ENV_PREFIX, Settings, SettingsError

EXIT_DATA_DIR_IN_USE = 4
"""Exit status of ``syncline serve`` refused because another relay holds its data directory."""


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Settings field, documented with its variable and default."""
    casts = {"int": int, "float": float, "Path": Path, "str": str, "str | None": str}
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        env = ENV_PREFIX + f.name.upper()
        default = None if f.default is MISSING else f.default
        help_text = f"{f.metadata.get('help', '')} [env {env}; default {default}]"
        if str(f.type) == "bool" and f.default is True:  # on by default: --no-... turns it off
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        elif str(f.type) == "bool":
            parser.add_argument(flag, dest=f.name, action="store_const", const=True, default=None,
                                help=help_text)
        elif str(f.type) == "tuple[str, ...]":  # repeatable: each use adds one value
            parser.add_argument(flag, dest=f.name, action="append", default=None, help=help_text,
                                metavar=f.name.upper())
        else:
            parser.add_argument(flag, dest=f.name, type=casts[str(f.type)], default=None, help=help_text,
                                metavar=f.name.upper())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncline", description="Syncline: CRDT sync for carts and stock.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the relay on an embedded SQLite store (or a shared PostgreSQL database)",
        description="Run the relay: y-websocket rooms on /v1/sync/{tenant}/{kind}/{id}, stored in "
        "DATA_DIR/syncline.sqlite3, or in PostgreSQL with --store postgresql://... "
        "Every flag can also be set by its SYNCLINE_* variable.",
    )
    _add_settings_flags(serve)

    token = commands.add_parser("token", help="print a signed access token on stdout")
    token.add_argument("--data-dir", type=Path, default=None, help="directory whose secret signs the token "
                       f"[env {ENV_PREFIX}DATA_DIR; default ./syncline-data]")
    token.add_argument("--secret", default=None,
                       help=f"sign with this secret instead [env {ENV_PREFIX}SECRET]")
    token.add_argument("--tenant", required=True, help="tenant the token belongs to")
    token.add_argument("--doc", action="append", required=True, dest="docs", metavar="PATTERN",
                       help="document pattern, e.g. acme/* or acme/cart/* or acme/cart/c-1 (repeatable)")
    token.add_argument("--read-only", action="store_true", help="the peer may read and receive, never write")
    token.add_argument("--ttl", type=int, default=None, metavar="SECONDS",
                       help="expire after this many seconds")
    token.add_argument("--subject", default=None, metavar="NAME",
                       help="the device or user holding the token (the sub claim): the Yjs client IDs it "
                            "writes are bound to it, so re-issued tokens with the same subject keep them")

    catalog = commands.add_parser(
        "catalog", help="load or show a tenant's price catalog (the REST adapter prices carts from it)",
        description="Prices live in the store file; a running relay sees a load at once.",
    )
    catalog.add_argument("action", choices=("load", "show"), help="load FILE, or show the tenant's prices")
    catalog.add_argument("file", nargs="?", type=Path,
                         help='JSON {"currency": "EUR", "prices": {"sku": 1299}} '
                         "or CSV with columns product,unit_price[,currency]; prices in minor units")
    catalog.add_argument("--data-dir", type=Path, default=None, help="directory of the store "
                         f"[env {ENV_PREFIX}DATA_DIR; default ./syncline-data]")
    catalog.add_argument("--store", default=None, help="the relay's store: sqlite (the file in the data "
                         f"directory) or a postgresql:// URL [env {ENV_PREFIX}STORE; default sqlite]")
    catalog.add_argument("--tenant", required=True, help="tenant whose catalog this is")
    catalog.add_argument("--merge", action="store_true", help="keep products the file does not list "
                         "(default: the file replaces the tenant's catalog)")

    commands.add_parser("demo", help="show two offline replicas of a cart and a stock ledger merging")
    from syncline.adapters.client.cli import add_client_parser

    add_client_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(vars(args))
        if args.command == "token":
            return _token(args)
        if args.command == "catalog":
            return _catalog(args)
        if args.command == "client":
            from syncline.adapters.client.cli import run_client

            return run_client(args)
        from syncline.server.demo import run

        run()
        return 0
    except DataDirInUse as exc:
        print(f"syncline {args.command}: {exc}", file=sys.stderr)
        return EXIT_DATA_DIR_IN_USE
    except (SettingsError, ServerError, EngineError) as exc:
        print(f"syncline {args.command}: {exc}", file=sys.stderr)
        return 2


def _token(args: argparse.Namespace) -> int:
    from syncline.engine.tokens import issue_token
    from syncline.server.auth import load_or_create_secret

    settings = Settings.from_sources({"data_dir": args.data_dir, "secret": args.secret})
    secret = settings.secret or load_or_create_secret(settings.data_dir)
    print(issue_token(secret, args.tenant, args.docs, read_only=args.read_only, ttl_seconds=args.ttl,
                       subject=args.subject))
    return 0


def _catalog(args: argparse.Namespace) -> int:
    import anyio

    from syncline.adapters.rest.catalog import CatalogError, read_catalog
    from syncline.engine.names import check_part
    from syncline.server.relay import STORE_FILE
    from syncline.server.store import StoreUnavailable
    from syncline.server.store.factory import create_store
    from syncline.server.store.sqlite import SQLiteStore

    settings = Settings.from_sources({"data_dir": args.data_dir, "store": args.store})
    tenant = check_part("tenant", args.tenant)
    if args.action == "load" and args.file is None:
        print("syncline catalog: load needs a FILE", file=sys.stderr)
        return 2
    try:
        prices = read_catalog(args.file) if args.action == "load" else {}
    except CatalogError as exc:
        print(f"syncline catalog: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        store = create_store(settings, settings.data_dir / STORE_FILE)
        if isinstance(store, SQLiteStore):
            store.exclusive = False  # beside a running relay, which holds the file's lock: prices only
        try:
            async with store:
                if args.action == "load":
                    written = await store.put_prices(tenant, prices, replace=not args.merge)
                    print(f"loaded {written} prices for {tenant}")
                    return 0
                for product, price in sorted((await store.catalog(tenant)).items()):
                    print(f"{product}\t{price.unit_price}\t{price.currency}")
                return 0
        except StoreUnavailable as exc:
            print(f"syncline catalog: {exc}", file=sys.stderr)
            return 1

    return anyio.run(run)


def _serve(flags: dict[str, Any]) -> int:
    from syncline.server.serve import run_server

    from .asgi import create_app
    from .pages import BANNER_PAGES

    flags = {name: value for name, value in flags.items() if name != "command"}
    return run_server(Settings.from_sources(flags), create_app, BANNER_PAGES)


if __name__ == "__main__":
    raise SystemExit(main())
