"""Prometheus metrics, one registry per relay so tests can run several in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


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

    def on_commit(self, batch: int, seconds: float) -> None:
        self.commits.inc()
        self.updates_committed.inc(batch)
        self.commit_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
