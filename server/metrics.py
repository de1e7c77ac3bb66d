"""Prometheus metrics, one registry per relay so tests can run several in one process.

The per-tenant gauges (``syncline_tenant_connections`` and ``syncline_tenant_rooms``, label
``tenant``) are read from the relay at each scrape (:meth:`Metrics.track_tenants`), so a
tenant that has gone leaves no stale series. Their cardinality is bounded: the ``limit``
tenants with the most connections (then rooms, then name) get a series each; the others are
summed under ``tenant="_other"`` (an underscore cannot start a tenant name, so it is never one).

Each registry also holds the process, platform (Python version) and garbage-collector
collectors (prometheus-client's counts, and the collector's pauses of :mod:`.gcpauses`),
and no counter has a ``_created`` series (:func:`disable_created_metrics`).
HTTP requests are labelled by route template (``/v1/tenants/{tenant}/carts/{cart_id}``),
never the raw path, so ids cannot multiply the series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from .gcpauses import GCPauseCollector
from .looplag import BUCKETS as LAG_BUCKETS

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "OTHER_TENANTS"]

disable_created_metrics()  # a _created series per counter doubles the series for nothing a scraper uses

OTHER_TENANTS = "_other"
"""The ``tenant`` label of the tenants past the limit, summed."""

TenantCounts = Callable[[], dict[str, tuple[int, int]]]
"""``{tenant: (connections, open rooms)}`` now."""


class _TenantGauges(Collector):
    def __init__(self, source: TenantCounts, limit: int) -> None:
        self._source = source
        self._limit = limit

    def collect(self) -> Iterator[GaugeMetricFamily]:
        connections = GaugeMetricFamily(
            "syncline_tenant_connections", "Open WebSocket connections of a tenant on this node.", labels=["tenant"])
        rooms = GaugeMetricFamily(
            "syncline_tenant_rooms", "Rooms (documents) of a tenant open in memory on this node.", labels=["tenant"])
        counts = self._source()
        ranked = sorted(counts.items(), key=lambda item: (-item[1][0], -item[1][1], item[0]))
        for tenant, (open_connections, open_rooms) in ranked[:self._limit]:
            connections.add_metric([tenant], open_connections)
            rooms.add_metric([tenant], open_rooms)
        rest = ranked[self._limit:]
        if rest:
            connections.add_metric([OTHER_TENANTS], sum(count[0] for _, count in rest))
            rooms.add_metric([OTHER_TENANTS], sum(count[1] for _, count in rest))
        yield connections
        yield rooms

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # no description: never collected at registration, only at scrapes


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("syncline_connections", "Open WebSocket connections.", registry=r)
        self.rooms = Gauge("syncline_rooms", "Rooms (documents) open in memory.", registry=r)
        self.messages = Counter(
            "syncline_messages", "WebSocket messages by direction.", ["direction"], registry=r
        )
        self.bytes = Counter("syncline_bytes", "WebSocket payload bytes by direction.", ["direction"], registry=r)
        self.updates_committed = Counter(
            "syncline_updates_committed", "Updates durably committed to the store.", registry=r
        )
        self.commits = Counter("syncline_commits", "Store transactions committed (group commits).", registry=r)
        self.event_loop_lag = Histogram(
            "syncline_event_loop_lag_seconds",
            "How much later than due the event loop woke a timer (sampled every 50 ms): what a busy "
            "or stalled loop makes every peer wait.",
            buckets=LAG_BUCKETS, registry=r,
        )
        self.commit_seconds = Histogram(
            "syncline_commit_seconds",
            "Time to commit one group of updates.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.rejected = Counter(
            "syncline_rejected", "Connections or messages refused, by reason.", ["reason"], registry=r
        )
        self.compactions = Counter("syncline_compactions", "Room logs folded into snapshots.", registry=r)
        self.fanout_available = Gauge(
            "syncline_fanout_available", "1 while this node can fan out writes (always 1 on a single node).", registry=r
        )
        self.fanout_messages = Counter(
            "syncline_fanout_messages", "Fan-out envelopes published (out) and received from other nodes (in).",
            ["direction"], registry=r,
        )
        self.fanout_resyncs = Counter(
            "syncline_fanout_resyncs", "Rooms re-read from the store to catch up on missed fan-out.", registry=r
        )

        self.broadcasts = Counter(
            "syncline_broadcasts", "Tenant broadcasts sent from this node (REST live/broadcast).", registry=r
        )
        self.rest_rate_limited = Counter(
            "syncline_rest_rate_limited", "REST requests refused with 429, by the bucket that was empty "
            "(subject or tenant).", ["scope"], registry=r,
        )
        self.carts_swept = Counter(
            "syncline_carts_swept", "Abandoned guest carts deleted by the cart sweep.", registry=r
        )
        self.cart_sweeps = Counter("syncline_cart_sweeps", "Cart sweeps run.", registry=r)
        self.throttled_seconds = Counter(
            "syncline_throttled_seconds", "Seconds receive loops waited for a connection's byte rate.", registry=r
        )
        self._tenant_gauges: _TenantGauges | None = None

        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        GCPauseCollector(registry=r)
        self.http_requests = Counter(
            "syncline_http_requests", "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"], registry=r,
        )
        self.http_request_seconds = Histogram(
            "syncline_http_request_duration_seconds", "Time to answer an HTTP request, by route template and method "
            "(a change feed stream counts until it ends).", ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=r,
        )
        self.room_load_seconds = Histogram(
            "syncline_room_load_seconds", "Time to load a room (document) from the store when it is opened.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0), registry=r,
        )
        self.cart_merges = Counter(
            "syncline_cart_merges", "Guest carts merged into another cart over REST (replays included).", registry=r
        )
        self.cart_merge_failures = Counter(
            "syncline_cart_merge_failures", "Cart merges refused or failed, by cause (the problem type).", ["cause"],
            registry=r,
        )
        self.checkouts = Counter(
            "syncline_checkouts", "Carts checked out into orders over REST, by outcome (placed or replayed).",
            ["outcome"], registry=r,
        )
        self.checkout_failures = Counter(
            "syncline_checkout_failures", "Checkouts refused or failed, by cause (the problem type).", ["cause"],
            registry=r,
        )

    def track_tenants(self, source: TenantCounts, limit: int) -> None:
        """Export ``source()`` as the per-tenant gauges, at most ``limit`` tenants by name (see above);
        a later call replaces the source (a relay restarted on the same metrics)."""
        if self._tenant_gauges is not None:
            self.registry.unregister(self._tenant_gauges)
        self._tenant_gauges = _TenantGauges(source, limit)
        self.registry.register(self._tenant_gauges)

    def on_commit(self, batch: int, seconds: float) -> None:
        self.commits.inc()
        self.updates_committed.inc(batch)
        self.commit_seconds.observe(seconds)

    def on_http(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_request_seconds.labels(route, method).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
