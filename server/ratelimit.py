"""REST request rate limits: token buckets per token subject and per tenant.

Each request takes one token from two buckets, its subject's (``rest_burst`` at once,
``rest_rate_per_second`` sustained) and its tenant's (``rest_tenant_burst``,
``rest_tenant_rate_per_second``), or from neither: a refused request costs nothing, so a
subject over its own limit does not drain its tenant's budget.

On a single node the buckets live in this process (:class:`LocalBuckets`). In a cluster
(``--fanout redis://``) they live in Redis (:class:`RedisBuckets`), taken by one Lua script
that checks and takes both buckets atomically by Redis's own clock, so the budget holds
across nodes. When Redis cannot be reached the node falls back to its local buckets (each
node then allows the full budget by itself) and tries Redis again a few seconds later; the
change is logged once each way.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .metrics import Metrics
from .settings import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("syncline.ratelimit")

SUBJECT = "subject"
TENANT = "tenant"
LOCAL_KEYS_MAX = 100_000
"""Buckets kept in memory before the full ones (indistinguishable from absent ones) are dropped."""
REDIS_RETRY_SECONDS = 5.0
"""After Redis failed, seconds on local buckets before Redis is tried again."""
REDIS_TIMEOUT_SECONDS = 0.5


@dataclass(frozen=True)
class Limit:
    """``burst`` requests at once, ``rate`` a second sustained."""

    rate: float
    burst: int

    def refill_seconds(self) -> float:
        """Seconds an untouched bucket takes to fill up (how long Redis keeps one)."""
        return self.burst / self.rate


@dataclass(frozen=True)
class Decision:
    """The answer for one request: ``scope`` ("subject" or "tenant") names the bucket that
    refused it (None when allowed); ``retry_after`` is the seconds until it holds a token."""

    scope: str | None = None
    retry_after: float = 0.0

    @property
    def allowed(self) -> bool:
        return self.scope is None

    def retry_after_seconds(self) -> int:
        """``retry_after`` for a ``Retry-After`` header: whole seconds, at least 1."""
        return max(1, math.ceil(self.retry_after))


ALLOWED = Decision()


class LocalBuckets:
    """Token buckets of this process, by key."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def _level(self, key: str, limit: Limit, now: float) -> float:
        held = self._buckets.get(key)
        if held is None:
            return float(limit.burst)
        tokens, at = held
        return min(float(limit.burst), tokens + max(0.0, now - at) * limit.rate)

    def take(self, subject: tuple[str, Limit], tenant: tuple[str, Limit]) -> Decision:
        now = self._clock()
        levels = []
        for scope, (key, limit) in ((SUBJECT, subject), (TENANT, tenant)):
            level = self._level(key, limit, now)
            if level < 1.0:
                return Decision(scope, (1.0 - level) / limit.rate)
            levels.append((key, level))
        if len(self._buckets) >= LOCAL_KEYS_MAX:
            self._forget_full(now, max(subject[1].refill_seconds(), tenant[1].refill_seconds()))
        for key, level in levels:
            self._buckets[key] = (level - 1.0, now)
        return ALLOWED

    def _forget_full(self, now: float, refill: float) -> None:
        """Drop the buckets untouched for longer than a refill: they are full, as absent ones are."""
        for key in [key for key, (_, at) in self._buckets.items() if now - at > refill]:
            del self._buckets[key]


# KEYS: the subject's bucket, the tenant's. ARGV: subject rate, burst, tenant rate, burst.
# Returns {0} when both buckets gave a token, else {1 (subject) or 2 (tenant), seconds to wait}.
# Numbers travel as strings: Redis turns Lua numbers into integers.
TAKE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local levels = {}
for i = 1, 2 do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local held = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local level = burst
  if held[1] then
    level = math.min(burst, tonumber(held[1]) + math.max(0, now - tonumber(held[2])) * rate)
  end
  if level < 1 then
    return {i, tostring((1 - level) / rate)}
  end
  levels[i] = level
end
for i = 1, 2 do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  redis.call('HSET', KEYS[i], 'tokens', tostring(levels[i] - 1), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst / rate * 1000) + 1000)
end
return {0}
"""


class RedisBuckets:
    """Token buckets in Redis, shared by every node using ``prefix``; local ones while Redis is away."""

    def __init__(self, url: str, prefix: str, fallback: LocalBuckets) -> None:
        from redis.asyncio import Redis

        self._client: Redis = Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                             socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
        self._script = self._client.register_script(TAKE_SCRIPT)
        self._prefix = prefix
        self._fallback = fallback
        self._down_until = 0.0
        self.shared = True
        """False while the node counts on its local buckets (Redis unreachable)."""

    async def take(self, subject: tuple[str, Limit], tenant: tuple[str, Limit]) -> Decision:
        from redis.exceptions import RedisError

        if time.monotonic() < self._down_until:
            return self._fallback.take(subject, tenant)
        keys = [f"{self._prefix}:ratelimit:{key}" for key in (subject[0], tenant[0])]
        args = [repr(subject[1].rate), subject[1].burst, repr(tenant[1].rate), tenant[1].burst]
        try:
            answer = await self._script(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._down_until = time.monotonic() + REDIS_RETRY_SECONDS
            if self.shared:
                self.shared = False
                log.warning("rate limits fall back to this node's own buckets: Redis is unreachable",
                            extra={"error": str(exc)})
            return self._fallback.take(subject, tenant)
        if not self.shared:
            self.shared = True
            log.info("rate limits are shared through Redis again")
        if int(answer[0]) == 0:
            return ALLOWED
        return Decision(SUBJECT if int(answer[0]) == 1 else TENANT, float(answer[1]))

    async def aclose(self) -> None:
        await self._client.aclose()


class RateLimiter:
    """The REST rate limits of one node: :meth:`take` for each request."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.subject_limit = Limit(settings.rest_rate_per_second, settings.rest_burst)
        self.tenant_limit = Limit(settings.rest_tenant_rate_per_second, settings.rest_tenant_burst)
        self._metrics = metrics
        self._local = LocalBuckets()
        self._redis = (RedisBuckets(settings.fanout, settings.fanout_prefix, self._local)
                       if settings.fanout != "none" else None)

    async def take(self, tenant: str, subject: str) -> Decision:
        """Take one request of ``subject`` (a token's writer identity, or a client address) of ``tenant``."""
        keys = ((f"s:{tenant}:{subject}", self.subject_limit), (f"t:{tenant}", self.tenant_limit))
        if self._redis is not None:
            decision = await self._redis.take(*keys)
        else:
            decision = self._local.take(*keys)
        if not decision.allowed and self._metrics is not None:
            self._metrics.rest_rate_limited.labels(decision.scope).inc()
        return decision

    def describe(self, scope: str) -> str:
        """The limit of ``scope`` in words, for a refusal's detail."""
        limit = self.subject_limit if scope == SUBJECT else self.tenant_limit
        who = "token subject" if scope == SUBJECT else "tenant"
        return f"at most {limit.burst} requests at once and {limit.rate:g} a second per {who}"

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
