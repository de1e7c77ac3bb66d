"""The external services some tests need (PostgreSQL, Redis), found or refused in one place.

Outside CI a missing service skips its tests with a message saying what to start;
with ``SYNCLINE_REQUIRE_SERVICES=1`` (set by ``.ci/run``) it fails them instead, so CI
cannot pass by testing nothing. ``SYNCLINE_TEST_POSTGRES_DSN`` and
``SYNCLINE_TEST_REDIS_URL`` override where PostgreSQL and Redis are looked for.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import threading
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

REQUIRE_ENV = "SYNCLINE_REQUIRE_SERVICES"
POSTGRES_DSN_ENV = "SYNCLINE_TEST_POSTGRES_DSN"
DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL_ENV = "SYNCLINE_TEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

T = TypeVar("T")


def services_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") == "1"


def missing(service: str, reason: str) -> NoReturn:
    """Skip the calling test (or fail it when services are required) because ``service`` is absent."""
    import pytest  # only a test run can skip; a benchmark gets pytest's Skipped exception

    message = f"{service} is not reachable ({reason})"
    if services_required():
        pytest.fail(f"{message}; {REQUIRE_ENV}=1 makes this a failure", pytrace=False)
    pytest.skip(f"{message}; start it, or set {REQUIRE_ENV}=1 to make this a failure")


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end on its own event loop in its own thread.

    For sync fixtures: the test's own event loop is never touched.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(make())
        except BaseException as exc:  # handed to the calling thread, re-raised there
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="harness.services.run_async")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


@functools.cache
def _postgres_problem(dsn: str) -> str | None:
    """None if a connection to ``dsn`` answers a query, else why not (checked once per run)."""
    import asyncpg

    async def probe() -> None:
        con = await asyncpg.connect(dsn, timeout=3)
        try:
            await con.fetchval("SELECT 1")
        finally:
            await con.close()

    try:
        run_async(probe)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def postgres_dsn() -> str:
    """The DSN of the test PostgreSQL server; skips (or fails) the test if it does not answer."""
    dsn = os.environ.get(POSTGRES_DSN_ENV) or DEFAULT_POSTGRES_DSN
    problem = _postgres_problem(dsn)
    if problem is not None:
        missing(f"PostgreSQL at {dsn}", problem)
    return dsn


def fresh_schema_name() -> str:
    return f"syncline_test_{secrets.token_hex(6)}"


def drop_schema(dsn: str, schema: str) -> None:
    """Drop ``schema`` and everything in it (a test's teardown)."""
    import asyncpg

    async def drop() -> None:
        con = await asyncpg.connect(dsn, timeout=5)
        try:
            await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await con.close()

    run_async(drop)


@functools.cache
def _redis_problem(url: str) -> str | None:
    """None if the Redis server at ``url`` answers PING, else why not (checked once per run)."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    async def probe() -> None:
        client = Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        run_async(probe)
    except (OSError, TimeoutError, RedisError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def redis_url() -> str:
    """The URL of the test Redis server; skips (or fails) the test if it does not answer."""
    url = os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL
    problem = _redis_problem(url)
    if problem is not None:
        missing(f"Redis at {url}", problem)
    return url


def fresh_channel_prefix() -> str:
    """A Redis channel prefix no other test (or test run) uses."""
    return f"syncline-test-{secrets.token_hex(6)}"


def create_schema(dsn: str, schema: str) -> None:
    """Create an empty ``schema`` (for relays given ``?search_path=schema``)."""
    import asyncpg

    async def create() -> None:
        con = await asyncpg.connect(dsn, timeout=5)
        try:
            await con.execute(f'CREATE SCHEMA "{schema}"')
        finally:
            await con.close()

    run_async(create)
