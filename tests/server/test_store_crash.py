"""kill -9 of a process writing to a SQLiteStore loses nothing it acknowledged.

A child process (``_store_crash_child.py``) appends in a loop and prints each seq
only after ``append`` returned. The parent SIGKILLs it after a random number of
acknowledgements, several times on the same file, then reopens the file: it must
pass ``integrity_check`` and hold every acknowledged update.

SIGKILL proves durability against a process crash (what the OS page cache holds
survives it). Power loss, which ``synchronous=FULL`` is for, needs a machine that
can be unplugged; it is not simulated here.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import anyio
import pycrdt
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from syncline.server.store.sqlite import SQLiteStore

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(20)]

CHILD = Path(__file__).with_name("_store_crash_child.py")
ROUNDS = 5
LINE_TIMEOUT = 10.0  # the child's first line includes interpreter start-up and imports


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiosqlite runs on asyncio


async def run_and_kill(
    path: Path, seed: str, mode: str, kill_after: int, kill_delay: float, log: Path
) -> list[str]:
    """Start the child, SIGKILL it ``kill_delay`` seconds after it acknowledged ``kill_after``
    appends (the delay spreads kills over every phase of the writer), return every ack."""
    acks: list[str] = []
    async with (
        await anyio.open_file(log, "ab") as stderr,
        await anyio.open_process([sys.executable, str(CHILD), str(path), seed, mode], stderr=stderr.wrapped) as child,
    ):
        try:
            assert child.stdout is not None
            lines = BufferedByteReceiveStream(child.stdout)
            try:
                with anyio.fail_after(LINE_TIMEOUT):
                    assert await lines.receive_until(b"\n", 1 << 16) == b"ready"
                while len(acks) < kill_after:
                    with anyio.fail_after(LINE_TIMEOUT):
                        acks.append((await lines.receive_until(b"\n", 1 << 16)).decode())
            except (anyio.EndOfStream, anyio.IncompleteRead) as exc:
                await child.wait()
                raise AssertionError(f"child exited early ({child.returncode}): {log.read_text()[-2000:]}") from exc
            await anyio.sleep(kill_delay)
            child.kill()
            with anyio.fail_after(LINE_TIMEOUT):
                await child.wait()
                # Acks the child printed before the signal landed are acknowledged too.
                while True:
                    try:
                        acks.append((await lines.receive_until(b"\n", 1 << 16)).decode())
                    except (anyio.EndOfStream, anyio.IncompleteRead):
                        break  # a partial last line was never a complete ack
            assert child.returncode == -signal.SIGKILL
        finally:
            if child.returncode is None:  # a failed assertion above: never leave the child running
                child.kill()
    return acks


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


async def test_acknowledged_update_survives_sigkill(tmp_path: Path) -> None:
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    path = tmp_path / "crash.db"
    acked: dict[int, tuple[str, bytes]] = {}
    previous_max = 0
    with anyio.fail_after(18):
        for round_ in range(ROUNDS):
            acks = await run_and_kill(
                path, f"{seed}.{round_}", "bytes", rng.randint(1, 400), rng.uniform(0, 0.02), tmp_path / "log"
            )
            seqs = []
            for line in acks:
                seq, doc, blob = line.split(" ")
                assert int(seq) not in acked, "a seq was handed out twice"
                acked[int(seq)] = (doc, bytes.fromhex(blob))
                seqs.append(int(seq))
            assert min(seqs) > previous_max, "a restart reused a seq"
            previous_max = max(seqs)

        assert integrity(path) == "ok", f"seed {seed}"
        async with SQLiteStore(path) as store:  # runs quick_check on open
            stored = {doc: dict((await store.load(doc)).updates) for doc in await store.documents()}
    missing = [seq for seq, (doc, blob) in acked.items() if stored.get(doc, {}).get(seq) != blob]
    assert not missing, f"seed {seed}: {len(missing)} acknowledged updates lost or changed, e.g. {missing[:5]}"


async def test_sigkill_during_compaction_loses_no_acknowledged_edit(tmp_path: Path) -> None:
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    path = tmp_path / "crash.db"
    acked: dict[str, int] = {}
    with anyio.fail_after(18):
        for round_ in range(ROUNDS):
            acks = await run_and_kill(
                path, f"{seed}.{round_}", "crdt", rng.randint(1, 400), rng.uniform(0, 0.02), tmp_path / "log"
            )
            for line in acks:
                seq, key = line.split(" ")
                acked[key] = int(seq)

        assert integrity(path) == "ok", f"seed {seed}"
        async with SQLiteStore(path) as store:
            stored = await store.load("t/cart/crash")
    assert stored.snapshot is not None, "the child should have compacted at least once"
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    doc.apply_update(stored.snapshot)
    for _, update in stored.updates:
        doc.apply_update(update)
    content = doc.get("m", type=pycrdt.Map).to_py()
    missing = [key for key in acked if key not in content]
    assert not missing, f"seed {seed}: {len(missing)} acknowledged edits lost, e.g. {missing[:5]}"
    assert all(content[key] == int(key.rsplit("-", 1)[1]) for key in acked)
