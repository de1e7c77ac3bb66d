"""Child process of ``test_store_crash.py``: append to a SQLiteStore until SIGKILLed.

    python _store_crash_child.py PATH SEED bytes|crdt

Prints ``ready`` once the store is open, then one line per acknowledged append, written
and flushed only after ``append`` returned:

- ``bytes``: ``SEQ DOC HEX`` for random blobs from 8 concurrent appenders;
- ``crdt``:  ``SEQ KEY`` for pycrdt map edits to one document from 8 authors, while a
  compactor folds the log into snapshots as fast as it can.

Gives up by itself after 30 s so an orphan never outlives a broken test run.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pycrdt

from syncline.server.store.sqlite import SQLiteStore

APPENDERS = 8
CRDT_DOC = "t/cart/crash"


def ack(line: str) -> None:
    sys.stdout.write(line + "\n")  # one write() per line: a line is whole or absent
    sys.stdout.flush()


async def append_bytes(store: SQLiteStore, seed: str, task: int) -> None:
    rng = random.Random(f"{seed}/{task}")
    doc = f"t/stock/{task % 3}"
    while True:
        blob = rng.randbytes(rng.randrange(1, 400))
        seq = await store.append(doc, blob)
        ack(f"{seq} {doc} {blob.hex()}")


async def append_edits(store: SQLiteStore, seed: str, task: int) -> None:
    author: pycrdt.Doc[Any] = pycrdt.Doc()
    edits = author.get("m", type=pycrdt.Map)
    for i in range(1_000_000):
        key = f"{seed}-{task}-{i}"
        before = author.get_state()
        edits[key] = i
        seq = await store.append(CRDT_DOC, author.get_update(before))
        ack(f"{seq} {key}")


async def compact_forever(store: SQLiteStore) -> None:
    while True:
        stored = await store.load(CRDT_DOC)
        if stored.updates:
            doc: pycrdt.Doc[Any] = pycrdt.Doc()
            if stored.snapshot is not None:
                doc.apply_update(stored.snapshot)
            for _, update in stored.updates:
                doc.apply_update(update)
            await store.compact(CRDT_DOC, doc.get_update(), stored.last_seq)
        await anyio.lowlevel.checkpoint()


async def main(path: Path, seed: str, mode: str) -> None:
    with anyio.move_on_after(30):
        async with SQLiteStore(path) as store, anyio.create_task_group() as tg:
            ack("ready")
            for task in range(APPENDERS):
                tg.start_soon(append_bytes if mode == "bytes" else append_edits, store, seed, task)
            if mode == "crdt":
                tg.start_soon(compact_forever, store)


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1]), sys.argv[2], sys.argv[3], backend="asyncio")
