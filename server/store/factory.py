"""Choosing the store a relay runs on, from its settings.

``store = "sqlite"`` (the default) is the embedded file and never needs PostgreSQL;
a ``postgresql://`` URL selects :class:`~syncline.server.store.postgres.PostgresStore`,
imported only then.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MissingDriver
from ..settings import Settings
from .sqlite import SQLiteStore

if TYPE_CHECKING:
    from .postgres import PostgresStore


def create_store(settings: Settings, sqlite_path: Path) -> SQLiteStore | PostgresStore:
    """A new, not yet opened store as ``settings.store`` says (SQLite at ``sqlite_path``)."""
    if settings.store == "sqlite":
        return SQLiteStore(
            sqlite_path, synchronous=settings.sqlite_synchronous, max_batch=settings.group_commit_max_batch
        )
    try:
        from .postgres import PostgresStore
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "asyncpg":
            raise
        raise MissingDriver("--store postgresql://", "PostgreSQL (asyncpg)", "cluster") from None

    return PostgresStore(
        settings.store, max_batch=settings.group_commit_max_batch, timeout=settings.store_timeout_seconds,
        connect_timeout=min(5.0, settings.store_timeout_seconds),
        # One name per relay process, so pg_stat_activity tells the nodes apart.
        application_name=f"syncline:{socket.gethostname()}:{os.getpid()}"[:63],
    )


def describe_store(settings: Settings, sqlite_path: Path) -> str:
    """Where the store is, for banners and logs: the file, or the database without credentials."""
    if settings.store == "sqlite":
        return str(sqlite_path)
    try:
        from .postgres import shown_dsn
    except ModuleNotFoundError:
        return settings.store.split("@")[-1]  # no driver: create_store says so; never show a password
    return shown_dsn(settings.store)
