"""An outage as the log shows it: a cluster node whose Redis does not answer, on a PostgreSQL
schema of its own. Each failed attempt is one plain-text line naming the error, no traceback."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from harness.relay_process import SECRET
from harness.services import drop_schema, fresh_schema_name, postgres_dsn, run_async

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def store_url() -> Iterator[str]:
    dsn, schema = postgres_dsn(), fresh_schema_name()

    async def create() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f'CREATE SCHEMA "{schema}"')
        finally:
            await connection.close()

    run_async(create)
    try:
        yield f"{dsn}?search_path={schema}"
    finally:
        drop_schema(dsn, schema)


def _wait_for(log: Path, needle: str, count: int = 1, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [line for line in log.read_text().splitlines() if needle in line]
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"no {count} lines with {needle!r} in:\n{log.read_text()}")


def test_a_node_without_redis_logs_each_failed_attempt_in_one_line_with_its_error(
    store_url: str, tmp_path: Path,
) -> None:
    log = tmp_path / "relay.log"
    with log.open("w") as stderr:
        relay = subprocess.Popen(
            [sys.executable, "-m", "syncline.app.cli", "serve", "--port", "0",
             "--data-dir", str(tmp_path / "data"), "--secret", SECRET, "--store", store_url,
             "--fanout", UNREACHABLE_REDIS],
            stdout=subprocess.DEVNULL, stderr=stderr,
        )
    try:
        lost = _wait_for(log, "WARNING syncline.fanout: ", count=2)
        refused = 'error="ConnectionError: Error 111 connecting to 127.0.0.1:1. Connection refused."'
        assert all(refused in line for line in lost), lost
    finally:
        relay.terminate()
        relay.wait(timeout=15)
    text = log.read_text()
    assert "Traceback" not in text, text
    assert all(line[:4].isdigit() for line in text.splitlines()), text  # each record on one line
