"""One relay per data directory, one exclusive store per SQLite file: real processes, real files.

Two relays on one directory both acknowledged writes, and a restart lost those of the
second. Now the second is refused before it opens anything, and the store itself
refuses a second exclusive opener of its file, in another process or in this one.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest
from pycrdt import Array, Doc
from syncline.app.cli import EXIT_DATA_DIR_IN_USE
from syncline.server.lockfile import holder_pid
from syncline.server.serve import LOCK_FILE
from syncline.server.store import StoreLocked, StoreUnavailable
from syncline.server.store.base import Price
from syncline.server.store.sqlite import SQLiteStore

from harness.relay_process import RelayProcess
from harness.ypeer import ypeer

pytestmark = pytest.mark.anyio

REFUSAL_SECONDS = 20.0
"""Deadline for a refused relay to exit: one that is not refused serves until killed."""


def _syncline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncline.app.cli", *args],
                          check=False, capture_output=True, text=True, timeout=REFUSAL_SECONDS)


def _second_relay(relay: RelayProcess) -> subprocess.CompletedProcess[str]:
    """``syncline serve`` on the running relay's data directory *and port*, without a secret.

    Had it bound the port first, it would fail with an address-in-use traceback; had it
    read the secret first, it would have generated ``DATA_DIR/secret``.
    """
    return _syncline("serve", "--host", "127.0.0.1", "--port", str(relay.port), "--data-dir", str(relay.data_dir))


def _ops(doc: Doc) -> list[object]:
    return list(doc.get("ops", type=Array).to_py() or [])


async def _write_acked(relay: RelayProcess, name: str, values: range) -> None:
    async with ypeer(relay.url_for(name), acks=True) as writer:
        base = writer.acked
        for value in values:
            await writer.edit(lambda d, v=value: d.get("ops", type=Array).append(v))
        await writer.wait_acked(base + len(values))


def test_a_second_relay_on_the_same_data_dir_exits_at_once_naming_the_first_relays_pid(
    relay: RelayProcess,
) -> None:
    assert relay.process is not None
    started = time.monotonic()
    done = _second_relay(relay)
    elapsed = time.monotonic() - started
    assert done.returncode == EXIT_DATA_DIR_IN_USE, done.stderr
    assert done.stderr.splitlines() == [
        (f"syncline serve: data directory {relay.data_dir} is in use by another relay "
         f"(pid {relay.process.pid}); stop it or pass another --data-dir")
    ]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""  # no banner, no development token
    assert not (relay.data_dir / "secret").exists()  # refused before it read or generated a secret
    assert elapsed < REFUSAL_SECONDS / 2
    assert httpx.get(f"{relay.http_url}/readyz", timeout=5).status_code == 200  # the first is untouched


async def test_every_write_the_first_relay_acknowledged_survives_a_refused_second_and_a_restart(
    relay: RelayProcess,
) -> None:
    name = "acme/cart/one-writer"
    await _write_acked(relay, name, range(10))
    assert _second_relay(relay).returncode == EXIT_DATA_DIR_IN_USE
    await _write_acked(relay, name, range(10, 20))
    assert _second_relay(relay).returncode == EXIT_DATA_DIR_IN_USE
    assert relay.terminate() == 0
    relay.start()
    async with ypeer(relay.url_for(name)) as late:
        assert _ops(late.doc) == [float(i) for i in range(20)]


async def test_a_relay_starts_right_after_the_previous_one_was_sigkilled(relay: RelayProcess) -> None:
    name = "acme/cart/killed"
    await _write_acked(relay, name, range(5))
    relay.kill()
    relay.start()  # no stale lock: the kernel released both flocks with the dead process
    assert relay.process is not None
    assert holder_pid(relay.data_dir / LOCK_FILE) == relay.process.pid
    assert holder_pid(relay.data_dir / "syncline.sqlite3.lock") == relay.process.pid
    await _write_acked(relay, name, range(5, 8))
    async with ypeer(relay.url_for(name)) as late:
        assert _ops(late.doc) == [float(i) for i in range(8)]


def test_a_data_dir_that_cannot_be_created_is_refused_with_a_message_and_no_traceback(tmp_path: Path) -> None:
    occupied = tmp_path / "a-file"
    occupied.write_text("not a directory")
    done = _syncline("serve", "--port", "0", "--data-dir", str(occupied / "data"))
    assert done.returncode == 3
    assert done.stderr.startswith(f"syncline serve: data directory {occupied / 'data'}: a parent of it is a file")
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_token_and_catalog_work_beside_a_running_relay(relay: RelayProcess, tmp_path: Path) -> None:
    token = _syncline("token", "--data-dir", str(relay.data_dir), "--secret", "s" * 40,
                      "--tenant", "acme", "--doc", "acme/*")
    assert token.returncode == 0, token.stderr
    catalog = tmp_path / "prices.json"
    catalog.write_text('{"currency": "EUR", "prices": {"tee": 1299}}')
    loaded = _syncline("catalog", "load", str(catalog), "--data-dir", str(relay.data_dir), "--tenant", "acme")
    assert loaded.returncode == 0, loaded.stderr
    shown = _syncline("catalog", "show", "--data-dir", str(relay.data_dir), "--tenant", "acme")
    assert (shown.returncode, shown.stdout) == (0, "tee\t1299\tEUR\n")


async def test_a_sqlite_store_refuses_a_file_that_a_relay_holds(relay: RelayProcess) -> None:
    assert relay.process is not None
    await _write_acked(relay, "acme/cart/held", range(3))
    path = relay.data_dir / "syncline.sqlite3"
    with pytest.raises(StoreLocked) as refused:
        async with SQLiteStore(path):
            pytest.fail("opened a file another relay holds")
    assert (refused.value.path, refused.value.pid) == (path, relay.process.pid)
    assert str(relay.process.pid) in str(refused.value)
    # The lock is advisory, on the sidecar file: plain SQLite readers still read.
    assert [doc for doc, _ in relay.stored_rows()] == ["acme/cart/held"] * 3


async def test_a_relay_whose_store_file_another_store_holds_fails_to_start(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "syncline.sqlite3"):
        done = await anyio.to_thread.run_sync(lambda: _syncline(
            "serve", "--port", "0", "--data-dir", str(tmp_path), "--secret", "s" * 40))
    assert done.returncode == 3  # the store could not be opened: an environment failure
    assert f"is in use by another store (pid {os.getpid()})" in done.stderr


async def test_a_second_sqlite_store_on_one_file_is_refused_in_the_same_process(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with SQLiteStore(path) as first:
        assert await first.append("acme/cart/1", b"one") == 1
        with pytest.raises(StoreLocked) as refused:
            async with SQLiteStore(path):
                pytest.fail("opened a file this process already holds")
        assert (refused.value.path, refused.value.pid) == (path, os.getpid())
        assert isinstance(refused.value, StoreUnavailable)  # every existing handler maps it
        assert await first.append("acme/cart/1", b"two") == 2  # the first store is untouched
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as reader:
            assert reader.execute("SELECT count(*) FROM updates").fetchone() == (2,)
    async with SQLiteStore(path) as again:  # closing released the lock
        assert [update for _, update in (await again.load("acme/cart/1")).updates] == [b"one", b"two"]


async def test_a_store_on_another_file_in_the_same_directory_is_not_refused(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "a.db") as a, SQLiteStore(tmp_path / "b.db") as b:
        assert await a.append("acme/cart/1", b"a") == 1
        assert await b.append("acme/cart/1", b"b") == 1


async def test_a_shared_store_writes_prices_beside_the_exclusive_one_but_never_appends(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with SQLiteStore(path) as relay_store, SQLiteStore(path, exclusive=False) as side:
        assert await side.put_prices("acme", {"tee": Price(1299, "EUR")}, replace=True) == 1
        assert await relay_store.prices("acme", ["tee"]) == {"tee": Price(1299, "EUR")}
        with pytest.raises(StoreUnavailable, match="exclusive=False"):
            await side.append("acme/cart/1", b"x")
        assert await relay_store.append("acme/cart/1", b"y") == 1
