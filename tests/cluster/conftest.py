"""Relay clusters for the tests: ``syncline serve`` processes sharing one PostgreSQL schema and Redis.

Each test gets a fresh schema (dropped afterwards) and its own Redis channel prefix,
so clusters of concurrent test runs never hear each other. Without PostgreSQL or
Redis on loopback the tests skip (fail under ``SYNCLINE_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import anyio.abc
import asyncpg
import pytest
from pycrdt import Doc

from harness.relay_process import RelayProcess

from .gate import Gate
from harness.services import (
    create_schema, drop_schema, fresh_channel_prefix, fresh_schema_name, postgres_dsn, redis_url, run_async,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Cluster:
    """Relay nodes on one PostgreSQL schema and one Redis channel prefix."""

    root: Path
    dsn: str
    schema: str
    redis: str
    prefix: str
    nodes: list[RelayProcess] = field(default_factory=list)

    @property
    def store_url(self) -> str:
        return f"{self.dsn}?search_path={self.schema}"

    def node(self, *extra: str, redis: str | None = None) -> RelayProcess:
        """A relay process of this cluster, not started yet."""
        flags = ["--store", self.store_url, "--fanout", redis or self.redis, "--fanout-prefix", self.prefix,
                 "--room-idle-seconds", "300", *extra]
        process = RelayProcess(self.root / f"node{len(self.nodes) + 1}", flags)
        self.nodes.append(process)
        return process

    async def gated_pair(self, tg: anyio.abc.TaskGroup, service: str) -> tuple[Gate, RelayProcess, RelayProcess]:
        """Two started nodes, the second reaching ``service`` ("redis" or "postgresql") through
        a :class:`Gate` the test can close and reopen; the first reaches it directly."""
        url = self.redis if service == "redis" else self.store_url
        port = urlsplit(url).port or (6379 if service == "redis" else 5432)
        gate = Gate(port)
        await gate.open(tg)
        gated_url = url.replace(f":{port}", f":{gate.port}", 1)
        direct = self.node()
        gated = self.node(redis=gated_url) if service == "redis" else self.node()
        if service != "redis":
            gated.flags[gated.flags.index("--store") + 1] = gated_url
        await anyio.to_thread.run_sync(direct.start)
        await anyio.to_thread.run_sync(gated.start)
        return gate, direct, gated

    def load_catalog(self, prices: dict[str, int] | None = None, tenant: str = "acme") -> None:
        """Load a price catalog (EUR; ``tee`` at 12.99 unless ``prices`` says otherwise) into the
        cluster's store with ``syncline catalog load``, as an operator would."""
        path = self.root / "catalog.json"
        path.write_text(json.dumps({"currency": "EUR", "prices": prices or {"tee": 1299}}))
        subprocess.run(
            [sys.executable, "-m", "syncline.app.cli", "catalog", "load", str(path), "--store", self.store_url,
             "--data-dir", str(self.root / "cli"), "--tenant", tenant],
            check=True, capture_output=True, timeout=60,
        )

    def start(self, count: int, *extra: str) -> list[RelayProcess]:
        """Start ``count`` nodes at once (their start-ups overlap)."""
        nodes = [self.node(*extra) for _ in range(count)]
        with concurrent.futures.ThreadPoolExecutor(count) as pool:
            list(pool.map(RelayProcess.start, nodes))
        return nodes

    def sql(self, query: str, *args: object) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            con = await asyncpg.connect(self.store_url, timeout=5)
            try:
                return list(await con.fetch(query, *args))
            finally:
                await con.close()

        return run_async(run)

    def stored_changes(self, doc: str) -> int:
        """Change-feed rows of ``doc``: one per stored update, never folded by compaction."""
        return int(self.sql("SELECT count(*) AS n FROM changes WHERE doc = $1", doc)[0]["n"])

    def stored_doc(self, doc: str) -> Doc:
        """``doc`` as the store holds it (its snapshot and every log row after it)."""
        rows = self.sql("SELECT blob FROM snapshots WHERE doc = $1", doc)
        rows += self.sql("SELECT blob FROM updates WHERE doc = $1 ORDER BY seq", doc)
        result = Doc()
        for row in rows:
            result.apply_update(bytes(row["blob"]))
        return result

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    dsn = postgres_dsn()
    redis = redis_url()
    schema = fresh_schema_name()
    create_schema(dsn, schema)
    made = Cluster(tmp_path, dsn, schema, redis, fresh_channel_prefix())
    try:
        yield made
    finally:
        made.stop()
        drop_schema(dsn, schema)
