"""The ``syncline`` command line: ``serve``, ``token``, ``catalog``, ``client`` and ``demo``.

Every failure a person can cause ends with one line on stderr, ``syncline COMMAND: what is
wrong; what to do``, and one of these exit statuses (``client`` keeps its own, documented
in :mod:`syncline.adapters.client.cli`):

- 0: done;
- 1: the answer is no (``token --inspect`` refused the token), or another failure;
- :data:`EXIT_USAGE` (2): a bad flag, setting or input file;
- :data:`EXIT_ENVIRONMENT` (3): the machine or a service is not as needed: the port is in use,
  the host unknown, the data directory unusable or held by another relay, PostgreSQL or
  Redis unreachable, a driver (the ``cluster`` extra) not installed;
- :data:`EXIT_CORRUPT` (4): stored data is damaged (a store file that is not a database).

``serve`` prints its "listening" banner only once the store is open and the port bound.
Only ``serve`` takes the data directory's lock: ``token`` reads (or creates) the secret and
``catalog`` writes prices through SQLite's own locking, so both work beside a running relay.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import MISSING, fields
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

from syncline.engine.errors import EngineError
from syncline.server.errors import DataDirError, DataDirInUse, ListenError, MissingDriver, SecretFileError, ServerError
from syncline.server.fanout.base import FanoutError
from syncline.server.settings import ENV_PREFIX, Settings, SettingsError
from syncline.server.store.base import StoreCorrupt, StoreError

from .token_command import TokenUsage, add_token_parser, run_token

EXIT_USAGE = 2
"""Exit status of a bad flag, setting or input file."""
EXIT_ENVIRONMENT = 3
"""Exit status when the machine or a service is not as needed (port, host, data directory, database)."""
EXIT_CORRUPT = 4
"""Exit status when stored data is damaged."""
EXIT_DATA_DIR_IN_USE = EXIT_ENVIRONMENT
"""Exit status of ``syncline serve`` refused because another relay holds its data directory."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the command and its --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _version() -> str:
    try:
        return metadata.version("syncline")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


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
    parser = _Parser(prog="syncline", description="Syncline: CRDT sync for carts and stock.")
    parser.add_argument("--version", action="version", version=f"syncline {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the relay on an embedded SQLite store (or a shared PostgreSQL database)",
        description="Run the relay: y-websocket rooms on /v1/sync/{tenant}/{kind}/{id}, stored in "
        "DATA_DIR/syncline.sqlite3, or in PostgreSQL with --store postgresql://... "
        "Every flag can also be set by its SYNCLINE_* variable.",
    )
    _add_settings_flags(serve)

    add_token_parser(commands)

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
    for sub in commands.choices.values():  # an unknown flag is reported by its command's parser
        sub.set_defaults(command_parser=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        if args.command == "serve":
            return _serve(vars(args))
        if args.command == "token":
            return run_token(args, os.environ)
        if args.command == "catalog":
            return _catalog(args)
        if args.command == "client":
            from syncline.adapters.client.cli import run_client

            return run_client(args)
        from syncline.server.demo import run

        run()
        return 0
    except (SettingsError, EngineError, TokenUsage) as exc:
        return _fail(args.command, exc, EXIT_USAGE)
    except StoreCorrupt as exc:
        return _fail(args.command, exc, EXIT_CORRUPT, "move the file aside (or restore a backup) and start again")
    except (DataDirInUse, DataDirError, ListenError, MissingDriver, SecretFileError) as exc:
        return _fail(args.command, exc, EXIT_ENVIRONMENT)
    except StoreError as exc:
        return _fail(args.command, exc, EXIT_ENVIRONMENT, "check --data-dir, or --store and that its database runs")
    except FanoutError as exc:
        return _fail(args.command, exc, EXIT_ENVIRONMENT, "check --fanout and that Redis is running")
    except ServerError as exc:
        return _fail(args.command, exc, EXIT_USAGE)


def _fail(command: str, exc: BaseException | str, status: int, advice: str | None = None) -> int:
    """Print the one line of a failure on stderr (with ``advice`` when the error has none) and return ``status``."""
    text = " ".join(str(exc).split())  # one line, whatever the error's text holds
    print(f"syncline {command}: {text}" + (f"; {advice}" if advice else ""), file=sys.stderr)
    return status


def _catalog(args: argparse.Namespace) -> int:
    import anyio

    from syncline.adapters.rest.catalog import CatalogError, read_catalog
    from syncline.engine.names import check_part
    from syncline.server.relay import STORE_FILE
    from syncline.server.store.factory import create_store
    from syncline.server.store.sqlite import SQLiteStore

    settings = Settings.from_sources({"data_dir": args.data_dir, "store": args.store})
    tenant = check_part("tenant", args.tenant)
    if args.action == "load" and args.file is None:
        return _fail("catalog", "load needs a FILE: syncline catalog load prices.json --tenant T", EXIT_USAGE)
    try:
        prices = read_catalog(args.file) if args.action == "load" else {}
    except CatalogError as exc:
        return _fail("catalog", exc, EXIT_USAGE)

    async def run() -> int:
        store = create_store(settings, settings.data_dir / STORE_FILE)
        if isinstance(store, SQLiteStore):
            store.exclusive = False  # beside a running relay, which holds the file's lock: prices only
        async with store:  # a StoreError reaches main, which says what it is with its exit status
            if args.action == "load":
                written = await store.put_prices(tenant, prices, replace=not args.merge)
                print(f"loaded {written} prices for {tenant}")
                return 0
            for product, price in sorted((await store.catalog(tenant)).items()):
                print(f"{product}\t{price.unit_price}\t{price.currency}")
            return 0

    return anyio.run(run)


def _serve(flags: dict[str, Any]) -> int:
    from syncline.server.serve import run_server

    from .asgi import create_app
    from .pages import BANNER_PAGES

    flags = {name: value for name, value in flags.items() if name not in ("command", "command_parser")}
    return run_server(Settings.from_sources(flags), create_app, BANNER_PAGES)


if __name__ == "__main__":
    raise SystemExit(main())
