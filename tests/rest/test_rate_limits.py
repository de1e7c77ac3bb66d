"""REST rate limits: a token subject's burst then 429 with Retry-After, subjects apart, the tenant's cap."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from syncline.engine.tokens import issue_token
from syncline.server.ratelimit import RateLimiter
from syncline.server.settings import Settings

from harness.relay_process import SECRET
from harness.services import fresh_channel_prefix, redis_url
from tests.rest.conftest import catalogued
from tests.rest.inprocess import InProcessRelay

RATE_LIMITED = "https://syncline.dev/problems/rate-limited"


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[InProcessRelay]:
    """A relay allowing 5 requests at once per subject (0.5 a second), 8 per tenant (0.5 a second)."""
    relay = InProcessRelay(catalogued(tmp_path / "relay"), rest_burst=5, rest_rate_per_second=0.5,
                           rest_tenant_burst=8, rest_tenant_rate_per_second=0.5).start()
    try:
        yield relay
    finally:
        relay.stop()


def _token(tenant: str, subject: str) -> str:
    return issue_token(SECRET, tenant, [f"{tenant}/*"], subject=subject)


def _assert_rate_limited(response: httpx.Response, scope: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == RATE_LIMITED
    assert body["scope"] == scope
    assert int(response.headers["Retry-After"]) == body["retry_after"] >= 1


def test_a_subject_gets_its_burst_then_429_with_retry_after(limited: InProcessRelay) -> None:
    with limited.client(_token("acme", "alice")) as api:
        statuses = [api.post("/v1/tenants/acme/carts/c1/items", json={"product": "mug"}).status_code
                    for _ in range(3)]
        statuses += [api.get("/v1/tenants/acme/carts/c1").status_code for _ in range(2)]
        assert statuses == [200] * 5
        refused = api.post("/v1/tenants/acme/carts/c1/items", json={"product": "mug"})
        _assert_rate_limited(refused, "subject")
        assert int(refused.headers["Retry-After"]) == 2  # one token at 0.5 a second
        _assert_rate_limited(api.get("/v1/tenants/acme/carts/c1"), "subject")
        # The refused write did nothing.
        assert limited.client(_token("acme", "bob")).get("/v1/tenants/acme/carts/c1").json()["total_quantity"] == 3
        metrics = api.get("/metrics").text
    assert 'syncline_rest_rate_limited_total{scope="subject"} 2.0' in metrics


def test_subjects_have_buckets_of_their_own_and_the_tenant_caps_them_all(limited: InProcessRelay) -> None:
    with limited.client(_token("acme", "alice")) as alice, limited.client(_token("acme", "bob")) as bob, \
            limited.client(_token("globex", "carol")) as carol:
        assert [alice.get("/v1/tenants/acme/carts/a").status_code for _ in range(5)] == [200] * 5
        _assert_rate_limited(alice.get("/v1/tenants/acme/carts/a"), "subject")
        # Bob is another subject: his bucket is full; the tenant has 3 of its 8 left.
        assert [bob.get("/v1/tenants/acme/carts/b").status_code for _ in range(3)] == [200] * 3
        _assert_rate_limited(bob.get("/v1/tenants/acme/carts/b"), "tenant")
        # Another tenant is not touched by acme's limits.
        assert [carol.get("/v1/tenants/globex/carts/g").status_code for _ in range(5)] == [200] * 5


def test_requests_without_a_valid_token_take_nothing_and_get_their_401(limited: InProcessRelay) -> None:
    with limited.client() as anonymous, limited.client(_token("acme", "alice")) as alice:
        assert [anonymous.get("/v1/tenants/acme/carts/a").status_code for _ in range(10)] == [401] * 10
        assert [alice.get("/v1/tenants/acme/carts/a").status_code for _ in range(5)] == [200] * 5


def _cluster_settings(redis: str, prefix: str, **extra: object) -> Settings:
    return Settings(store="postgresql://unused@127.0.0.1/unused", fanout=redis, fanout_prefix=prefix,
                    rest_burst=4, rest_rate_per_second=0.01, **extra)  # type: ignore[arg-type]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_limiters_on_one_redis_share_one_budget(anyio_backend: str) -> None:
    settings = _cluster_settings(redis_url(), fresh_channel_prefix())
    one, two = RateLimiter(settings), RateLimiter(settings)
    try:
        decisions = [await limiter.take("acme", "sub:alice") for limiter in (one, two, one, two, one, two)]
        assert [d.allowed for d in decisions] == [True] * 4 + [False] * 2
        assert decisions[-1].scope == "subject" and decisions[-1].retry_after > 1
    finally:
        await one.aclose()
        await two.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_limiter_whose_redis_is_unreachable_limits_with_its_own_buckets(anyio_backend: str) -> None:
    with socket_closed_port() as port:
        limiter = RateLimiter(_cluster_settings(f"redis://127.0.0.1:{port}/0", "x"))
        try:
            with anyio.fail_after(5):
                decisions = [await limiter.take("acme", "sub:alice") for _ in range(6)]
        finally:
            await limiter.aclose()
    assert [d.allowed for d in decisions] == [True] * 4 + [False] * 2


class socket_closed_port:
    """A loopback port nothing listens on (bound, never listening, for the block)."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        return int(self._sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
