"""The client's SQLite file: the document log, the outbox, acks, reopening, several connections."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgpack
import pytest
from pycrdt import Doc, Map

from syncline.adapters.client import LocalStore, LocalStoreError, SyncClient
from syncline.adapters.client.local_store import FILENAME

pytestmark = pytest.mark.anyio

DOC = "acme/cart/c-1"


def _updates(count: int) -> list[bytes]:
    """``count`` successive updates of one document, each setting one key."""
    doc = Doc()
    root = doc.get("m", type=Map)
    out = []
    for i in range(count):
        before = doc.get_state()
        root[f"k{i}"] = i
        out.append(doc.get_update(before))
    return out


def test_acknowledging_removes_exactly_a_prefix_of_the_outbox(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    seqs = [store.append(DOC, u, origin="local", writer="w") for u in _updates(5)]
    other = store.append("acme/cart/c-2", _updates(1)[0], origin="local", writer="w")
    assert store.pending(DOC) == 5
    assert store.acknowledge(DOC, seqs[2]) == 3
    assert [e.seq for e in store.outbox(DOC)] == seqs[3:]
    assert store.pending("acme/cart/c-2") == 1, "an ack for one document leaves the others' rows"
    assert store.sync_state(DOC) is not None and store.sync_state(DOC).last_acked_at is not None  # type: ignore[union-attr]
    assert other > seqs[-1]
    store.close()


def test_the_outbox_and_the_document_survive_reopening_the_file(tmp_path: Path) -> None:
    updates = _updates(4)
    store = LocalStore(tmp_path)
    for u in updates:
        store.append(DOC, u, origin="local", writer="w")
    store.acknowledge(DOC, store.outbox(DOC)[0].seq)
    store.close()

    again = LocalStore(tmp_path)
    assert [e.update for e in again.outbox(DOC)] == updates[1:]
    doc = Doc()
    tail = again.tail(DOC, 0)
    for _, blob in tail.updates:
        doc.apply_update(blob)
    assert dict(doc.get("m", type=Map)) == {f"k{i}": i for i in range(4)}, "acked rows stay in the document"
    again.close()


def test_outbox_records_are_msgpack_maps_any_language_can_read(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    update = _updates(1)[0]
    store.append(DOC, update, origin="local", writer="writer-1")
    store.close()
    with sqlite3.connect(tmp_path / FILENAME) as db:
        (record,) = db.execute("SELECT record FROM outbox").fetchone()
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    body = msgpack.unpackb(record, raw=False)
    assert body["u"] == update and body["by"] == "writer-1" and isinstance(body["at"], float)


def test_updates_from_the_relay_are_kept_but_never_queued_to_send(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.append(DOC, _updates(1)[0], origin="relay", writer="w")
    assert store.pending(DOC) == 0
    assert len(store.tail(DOC, 0).updates) == 1
    store.close()


def test_a_second_connection_sees_new_rows_through_data_version_and_tail(tmp_path: Path) -> None:
    first, second = LocalStore(tmp_path), LocalStore(tmp_path)
    version = second.data_version()
    seq = first.append(DOC, _updates(1)[0], origin="local", writer="first")
    assert second.data_version() != version
    tail = second.tail(DOC, 0, skip_writer="second")
    assert [s for s, _ in tail.updates] == [seq] and tail.cursor == seq
    assert first.tail(DOC, 0, skip_writer="first").updates == [], "a writer skips its own rows"
    first.close()
    second.close()


def test_compaction_keeps_the_state_and_a_late_reader_gets_the_snapshot(tmp_path: Path) -> None:
    updates = _updates(10)
    writer, reader = LocalStore(tmp_path), LocalStore(tmp_path)
    doc = Doc()
    for u in updates[:6]:
        writer.append(DOC, u, origin="local", writer="w")
        doc.apply_update(u)
    through = writer.tail(DOC, 0).cursor
    assert writer.compact(DOC, doc.get_update(), through) == 6
    assert writer.compact(DOC, doc.get_update(), through) == 0, "compacting again is a no-op"
    for u in updates[6:]:
        writer.append(DOC, u, origin="local", writer="w")
    assert writer.row_count(DOC) == 4
    assert writer.pending(DOC) == 10, "compaction never touches the outbox"

    tail = reader.tail(DOC, 2)  # this reader had seen two rows before the compaction
    assert tail.snapshot is not None and len(tail.updates) == 4
    late = Doc()
    for blob in [tail.snapshot, *(u for _, u in tail.updates)]:
        late.apply_update(blob)
    assert dict(late.get("m", type=Map)) == {f"k{i}": i for i in range(10)}
    writer.close()
    reader.close()


def test_a_file_that_is_not_sqlite_raises_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_bytes(b"not a database" * 100)
    with pytest.raises(LocalStoreError) as caught:
        LocalStore(tmp_path)
    assert caught.value.path == tmp_path / FILENAME


async def test_an_edit_is_on_disk_before_the_edit_call_returns(tmp_path: Path) -> None:
    async with SyncClient(data_dir=tmp_path) as client:  # no relay at all
        cart = await client.cart(DOC)
        key = cart.add_item("sku-1", 2)
        # No await since the edit: look at the file with a separate connection.
        with sqlite3.connect(tmp_path / FILENAME) as db:
            assert db.execute("SELECT COUNT(*) FROM outbox WHERE doc = ?", (DOC,)).fetchone()[0] == 1
        assert cart.quantity(key) == 2, "applied locally at once"
        assert client.pending == 1
    async with SyncClient(data_dir=tmp_path) as client:
        cart = await client.cart(DOC)
        assert cart.quantity(key) == 2 and client.pending == 1


async def test_an_edit_whose_write_fails_raises_and_is_saved_with_the_next_one(tmp_path: Path) -> None:
    async with SyncClient(data_dir=tmp_path) as client:
        cart = await client.cart(DOC)
        replica = client.replica(DOC)
        real_append = replica.store.append
        failing = True

        def append(*args: object, **kwargs: object) -> int:
            if failing:
                raise LocalStoreError(tmp_path / FILENAME, "disk full (simulated)")
            return real_append(*args, **kwargs)  # type: ignore[arg-type]

        replica.store.append = append  # type: ignore[method-assign]
        with pytest.raises(BaseExceptionGroup) as caught:
            cart.add_item("sku-1", 2)
        assert caught.group_contains(LocalStoreError)
        failing = False
        cart.add_item("sku-2", 1)
        replica.store.append = real_append  # type: ignore[method-assign]
    async with SyncClient(data_dir=tmp_path) as client:
        cart = await client.cart(DOC)
        assert {line.product_id: line.quantity for line in cart.lines()} == {"sku-1": 2, "sku-2": 1}
