"""Small helpers shared by the engine tests: syncing replicas and snapshotting documents."""

from __future__ import annotations

from pycrdt import Doc
from syncline.engine import apply_update, encode_diff, state_vector


def send(source: Doc, target: Doc) -> None:
    """One half of the sync handshake: ``target`` tells what it has, ``source`` sends the rest."""
    apply_update(target, encode_diff(source, state_vector(target)))


def sync(*docs: Doc) -> None:
    """Exchange state vectors and diffs between every pair until all replicas hold the same updates."""
    for _ in range(2):
        for a in docs:
            for b in docs:
                if a is not b:
                    send(a, b)


def snapshot(doc: Doc) -> tuple[bytes, bytes]:
    """Everything observable about a document's content: its state vector and full update."""
    return doc.get_state(), doc.get_update()


def copy_doc(doc: Doc, client_id: int) -> Doc:
    """A new replica of ``doc`` with its own Yjs client id."""
    replica = Doc(client_id=client_id)
    apply_update(replica, doc.get_update())
    return replica


def assert_quiet(error: BaseException, *secrets_: str) -> None:
    """Neither the error nor any error it chains quotes a token or a secret."""
    seen: BaseException | None = error
    while seen is not None:
        for text in secrets_:
            assert text not in str(seen)
            assert text not in repr(seen)
        seen = seen.__cause__ or seen.__context__
