"""How long the cyclic garbage collector stops this process, per generation.

A collection runs in whichever thread allocates past a threshold, holding the GIL: for its
whole length the event loop serves no peer. A full (generation 2) collection walks every
tracked object, so its pause grows with the heap; the relay freezes its startup heap
(:func:`freeze_startup_heap`) so that such a pause walks what it made since.

One recorder per process (``gc.callbacks`` is process-wide), installed by the first
:class:`GCPauseCollector`; every registry's collector reads it, as the process collectors do.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["BUCKETS", "GCPauseCollector", "freeze_startup_heap"]

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
"""Upper bounds, in seconds, of the pause histogram's buckets (``+Inf`` follows)."""

_PAUSES = Histogram(
    "syncline_gc_pause_seconds",
    "Time the cyclic garbage collector held the process (and its event loop), per collection.",
    ["generation"], buckets=BUCKETS, registry=None,  # process-wide: each relay's collector yields it
)


class _Recorder:
    """The ``gc.callbacks`` entry: times each collection into its generation's histogram.

    Collections do not nest, so one start time is enough; they run in any thread, always
    holding the GIL."""

    __slots__ = ("_by_generation", "_started")

    def __init__(self) -> None:
        self._by_generation = {generation: _PAUSES.labels(str(generation)) for generation in (0, 1, 2)}
        self._started: float | None = None

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        started, self._started = self._started, None
        histogram = self._by_generation.get(info.get("generation", -1))
        if started is not None and histogram is not None:
            histogram.observe(time.perf_counter() - started)


_recorder: _Recorder | None = None


def _install() -> None:
    global _recorder
    if _recorder is None:
        _recorder = _Recorder()
        gc.callbacks.append(_recorder)


class GCPauseCollector(Collector):
    """``syncline_gc_pause_seconds`` (histogram, label ``generation``),
    ``syncline_gc_frozen_objects`` (objects the collector no longer walks) and
    ``syncline_gc_threshold`` (label ``generation``: the collector's thresholds)."""

    def __init__(self, registry: Any = None) -> None:
        _install()
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterator[Metric]:
        yield from _PAUSES.collect()
        yield GaugeMetricFamily(
            "syncline_gc_frozen_objects",
            "Objects moved out of the garbage collector's reach once the relay had started.",
            value=gc.get_freeze_count(),
        )
        thresholds = GaugeMetricFamily(
            "syncline_gc_threshold",
            "The garbage collector's thresholds: allocations between young collections (generation 0), "
            "then collections of the generation below between collections of this one.",
            labels=["generation"],
        )
        for generation, threshold in enumerate(gc.get_threshold()):
            thresholds.add_metric([str(generation)], threshold)
        yield thresholds


YOUNG_COLLECTION_ALLOCATIONS = 50_000
"""Allocations (less deallocations) between two collections of the young generation; CPython's
default is 700. The relay allocates fast and frees nearly everything by reference counting, so
at 700 it collected hundreds of times a second, each time walking whatever had just survived
and timing the pause. Opening 6,000 connections took 25-30% less CPU at 50,000
(docs/benchmarks.md); what cyclic garbage there is waits a little longer."""
COLLECTION_THRESHOLDS = (YOUNG_COLLECTION_ALLOCATIONS, 20, 10)
"""``gc.set_threshold``: young collections as above; a middle one every 20 young ones, and a
full one considered every 10 middle ones (and run only when it has grown by a quarter)."""


def freeze_startup_heap() -> None:
    """Collect once, then move every object still alive (modules, the application, the
    store) to the permanent generation: a later full collection no longer walks them. From
    then on the collector runs at :data:`COLLECTION_THRESHOLDS`."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECTION_THRESHOLDS)
