"""Helpers for the sync client tests: fast client settings, ports, and reading the relay's store."""

from __future__ import annotations

import os
import queue
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pycrdt import Doc

from syncline.adapters.client import SyncClient
from syncline.engine import Cart, StockLedger
from harness.relay_process import RelayProcess

REPO = Path(__file__).resolve().parents[2]

FAST: dict[str, Any] = {
    "connect_timeout": 2.0,
    "ping_interval": 1.0,
    "ping_timeout": 1.0,
    "close_timeout": 0.5,
    "backoff_base": 0.05,
    "backoff_cap": 0.5,
    "lease_poll_interval": 0.05,
}
"""Client settings that keep reconnection and take-over within test deadlines."""


def base_url(relay: RelayProcess) -> str:
    return f"ws://127.0.0.1:{relay.port}"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client(data_dir: Path, urls: list[str] | str, token: str | None, **overrides: Any) -> SyncClient:
    return SyncClient(data_dir=data_dir, urls=urls, token=token, **{**FAST, **overrides})


def stored_doc(relay: RelayProcess, name: str) -> Doc:
    """The document as the relay's store holds it (log and snapshots), read from its file."""
    doc = Doc()
    for row_doc, blob in relay.stored_rows():
        if row_doc == name:
            doc.apply_update(blob)
    return doc


def stored_cart(relay: RelayProcess, name: str) -> Cart:
    return Cart(stored_doc(relay, name), name.rsplit("/", 1)[1])


def stored_ledger(relay: RelayProcess, name: str) -> StockLedger:
    return StockLedger(stored_doc(relay, name), name.rsplit("/", 1)[1])


def redundant_rows(relay: RelayProcess, name: str) -> int:
    """Stored rows of ``name`` that add nothing to the rows before them: updates sent twice.

    Only meaningful on an uncompacted log (a snapshot hides which rows it folded), so a
    document with a snapshot fails the test: raise the relay's ``--compaction-updates``.
    """
    path = relay.data_dir / "syncline.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        if db.execute("SELECT COUNT(*) FROM snapshots WHERE doc = ?", (name,)).fetchone()[0]:
            raise AssertionError(f"{name} was compacted: duplicates can no longer be counted")
        blobs = [row[0] for row in db.execute("SELECT blob FROM updates WHERE doc = ? ORDER BY seq", (name,))]
    doc = Doc()
    redundant = 0
    for blob in blobs:
        before = doc.get_update()
        doc.apply_update(blob)
        if doc.get_update() == before:
            redundant += 1
    return redundant


class Child:
    """A Python module run from the repository root as a child process; its stdout read by a thread."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def read_until(self, prefix: str, timeout: float) -> str:
        """Wait (at most ``timeout`` s) for a line starting with ``prefix``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"child did not print {prefix!r} within {timeout} s; saw {self.seen[-5:]}") from None
            if line is None:
                raise AssertionError(f"child exited ({self.process.wait(5)}) before {prefix!r}:\n{self.stderr()}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def stderr(self) -> str:
        return self.process.stderr.read() if self.process.stderr and self.process.poll() is not None else ""

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
