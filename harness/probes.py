"""Probes for hardening tests and benchmarks: relay memory, the store outside given rooms, a bystander.

``Bystander`` keeps two peers of one room editing and observing each other in a
thread of its own (its own event loop, so a test hammering the relay from its loop
does not slow the bystander's clock): every edit's latency from the writer's send to
the reader's observe is recorded, and every acknowledged edit is kept for audits.
"""

from __future__ import annotations

import re
import sqlite3
import statistics
import threading
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
from pycrdt import Array

from harness.relay_process import RelayProcess
from harness.ypeer import ypeer

MIB = 1024 * 1024


def rss_bytes(relay: RelayProcess) -> int:
    """The relay process's resident set size, from /proc/PID/status."""
    assert relay.process is not None
    status = Path(f"/proc/{relay.process.pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.M)
    assert match is not None, status
    return int(match.group(1)) * 1024


class StoreDelta:
    """What the store gained since a mark, outside ``exclude`` docs, read in time independent of its size.

    ``gained()`` is the log and change-feed rows appended since the mark, as a Counter of
    ``(table, doc, blob or action)``; ``intact()`` says nothing older changed: the counts are the old
    ones plus the gain, and the snapshots and kept responses are as they were.
    """

    def __init__(self, relay: RelayProcess, exclude: tuple[str, ...]) -> None:
        self.relay = relay
        self.exclude = exclude
        self._mark = self._read_mark()

    def _connect(self) -> sqlite3.Connection:
        path = self.relay.data_dir / "syncline.sqlite3"
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)

    def _outside(self) -> str:
        return "doc NOT IN (" + ",".join("?" * len(self.exclude)) + ")" if self.exclude else "1"

    def _read_mark(self) -> tuple[Any, ...]:
        with closing(self._connect()) as db:
            where = self._outside()
            return (
                db.execute("SELECT coalesce(max(seq), 0) FROM updates").fetchone()[0],
                db.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0],
                db.execute(f"SELECT count(*) FROM updates WHERE {where}", self.exclude).fetchone()[0],
                db.execute(f"SELECT count(*) FROM changes WHERE {where}", self.exclude).fetchone()[0],
                sorted(db.execute(f"SELECT doc, seq, blob FROM snapshots WHERE {where}", self.exclude).fetchall()),
                db.execute("SELECT count(*), coalesce(max(created_at), 0) FROM responses").fetchone(),
            )

    def gained(self) -> Counter[tuple[Any, ...]]:
        updates_seq, changes_seq = self._mark[0], self._mark[1]
        where = self._outside()
        with closing(self._connect()) as db:
            rows = [("updates", doc, bytes(blob)) for doc, blob in db.execute(
                f"SELECT doc, blob FROM updates WHERE seq > ? AND {where}", (updates_seq, *self.exclude))]
            rows += [("changes", doc, action) for doc, action in db.execute(
                f"SELECT doc, action FROM changes WHERE seq > ? AND {where}", (changes_seq, *self.exclude))]
        return Counter(rows)

    def intact(self) -> bool:
        now, gained = self._read_mark(), self.gained()
        added_updates = sum(n for row, n in gained.items() if row[0] == "updates")
        added_changes = sum(n for row, n in gained.items() if row[0] == "changes")
        before = self._mark
        return (now[2] == before[2] + added_updates and now[3] == before[3] + added_changes
                and now[4] == before[4] and now[5] == before[5])


def change_rows(relay: RelayProcess) -> int:
    path = relay.data_dir / "syncline.sqlite3"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db:
        return int(db.execute("SELECT count(*) FROM changes").fetchone()[0])


class Bystander:
    """Two peers in ``room`` editing and observing each other every ``period`` seconds, in a thread."""

    def __init__(self, relay: RelayProcess, room: str, *, period: float = 0.05) -> None:
        self.relay = relay
        self.room = room
        self.period = period
        self.latencies: list[float] = []
        self.acknowledged: list[bytes] = []
        self.error: BaseException | None = None
        self._started = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"bystander {room}", daemon=True)

    def __enter__(self) -> Bystander:
        self._thread.start()
        if not self._started.wait(20) or self.error is not None:
            self._stop.set()
            raise AssertionError(f"the bystander in {self.room} could not start: {self.error!r}")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=20)
        assert not self._thread.is_alive(), "the bystander thread did not stop"

    def _run(self) -> None:
        try:
            anyio.run(self._main)
        except BaseException as exc:  # noqa: BLE001 - reported to the test through self.error
            self.error = exc
        finally:
            self._started.set()

    async def _main(self) -> None:
        url = self.relay.url_for(self.room)
        async with ypeer(url, acks=True) as writer, ypeer(url) as reader:
            self._started.set()
            base = len(reader.doc.get("ops", type=Array))
            i = 0
            while not self._stop.is_set():
                sent = time.perf_counter()
                acked = writer.acked
                update = await writer.edit(lambda d, i=i: d.get("ops", type=Array).append({"bystander": i}))
                await reader.wait_until(lambda d, n=base + i + 1: len(d.get("ops", type=Array)) >= n, timeout=10)
                self.latencies.append(time.perf_counter() - sent)
                await writer.wait_acked(acked + 1, timeout=10)
                self.acknowledged.append(update)
                for peer in (writer, reader):
                    assert peer.close_code is None, f"bystander closed with {peer.close_code}"
                i += 1
                await anyio.sleep(self.period)

    def check(self, *, max_latency: float = 2.0, median_latency: float = 0.3, min_edits: int = 3) -> None:
        """The bystander never failed, edited steadily and quickly."""
        assert self.error is None, f"the bystander failed: {self.error!r}"
        assert len(self.latencies) >= min_edits, f"only {len(self.latencies)} bystander edits went through"
        assert max(self.latencies) < max_latency, f"bystander latency up to {max(self.latencies):.3f}s"
        assert statistics.median(self.latencies) < median_latency, (
            f"median bystander latency {statistics.median(self.latencies):.3f}s")

    def summary(self) -> str:
        if not self.latencies:
            return "no edits"
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (f"{len(ordered)} edits, p50 {statistics.median(ordered) * 1000:.1f} ms, "
                f"p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms")
