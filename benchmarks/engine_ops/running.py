"""Running a script over one or more writers, capturing updates, measuring live content."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pycrdt import Array, Doc, Map
from syncline.engine import encode_diff, state_vector

from benchmarks.engine_ops.workload import Model, Step

# -- running a script over one or more writers -------------------------------------


def sync_from(writer: Doc[Any], others: Sequence[Doc[Any]]) -> None:
    for other in others:
        other.apply_update(writer.get_update(other.get_state()))


def run_interleaved(
    models: Sequence[Model],
    steps: Sequence[Step],
    do: Callable[[Model, Step], None],
    docs: Sequence[Doc[Any]],
) -> float:
    """Step ``i`` runs on writer ``i % len(models)``, which then syncs to every other writer."""
    start = time.perf_counter()
    for i, step in enumerate(steps):
        writer = i % len(models)
        do(models[writer], step)
        if len(models) > 1:
            sync_from(docs[writer], [doc for j, doc in enumerate(docs) if j != writer])
    return time.perf_counter() - start


@dataclass
class Captured:
    diffs: list[bytes]
    """Per step: ``encode_diff(doc, state vector before it)``."""
    transaction_bytes: int
    """Total size of the same steps' transaction updates (``Doc.observe``), for comparison."""


def run_captured(
    model: Model, doc: Doc[Any], steps: Sequence[Step], do: Callable[[Model, Step], None]
) -> Captured:
    """One writer; capture each step's update both ways."""
    diffs = []
    sizes: list[int] = []
    subscription = doc.observe(lambda event: sizes.append(len(event.update)))
    try:
        for step in steps:
            before = state_vector(doc)
            do(model, step)
            diffs.append(encode_diff(doc, before))
    finally:
        doc.unobserve(subscription)
    return Captured(diffs, sum(sizes))


def live_bytes(doc: Doc[Any], roots: Mapping[str, type[Array[Any]] | type[Map[Any]]]) -> int:
    """Bytes of a fresh document holding only ``doc``'s visible content (no history)."""
    fresh: Doc[Any] = Doc(client_id=1)
    for name, kind in roots.items():
        if kind is Array:
            items = json.loads(str(doc.get(name, type=Array)))
            if items:
                fresh[name] = Array(items)
        else:
            source = doc.get(name, type=Map)
            entries = {
                k: Map(dict(sorted((v.to_py() or {}).items()))) if isinstance(v, Map) else _plain(v)
                for k, v in sorted(source.items(), key=lambda item: item[0])
            }
            if entries:
                fresh[name] = Map(entries)
    return len(fresh.get_update())


def _plain(value: Any) -> Any:
    """Integral floats (how pycrdt hands back ints) back to ints, so both sides encode alike."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
