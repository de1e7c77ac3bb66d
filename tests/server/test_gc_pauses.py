"""The garbage collector's pauses in /metrics, and the relay's startup heap frozen out of its reach."""

from __future__ import annotations

import gc
from collections.abc import Callable

import httpx
import pytest
from prometheus_client import generate_latest

from harness.prometheus_text import samples, series
from harness.relay_process import RelayProcess
from syncline.server.gcpauses import BUCKETS, COLLECTION_THRESHOLDS
from syncline.server.metrics import Metrics

def pauses(metrics: Metrics, generation: int) -> tuple[float, float, list[float]]:
    """(count, sum, cumulative bucket counts) of one generation's pause histogram."""
    found = samples(generate_latest(metrics.registry).decode())
    at = str(generation)
    buckets = [found[series("syncline_gc_pause_seconds_bucket", generation=at, le=bound)]
               for bound in [*map(repr, BUCKETS), "+Inf"]]
    return (found[series("syncline_gc_pause_seconds_count", generation=at)],
            found[series("syncline_gc_pause_seconds_sum", generation=at)], buckets)


@pytest.mark.usefixtures("no_automatic_collections")
def test_each_collection_is_counted_once_in_its_generation_whatever_the_number_of_registries() -> None:
    first, second = Metrics(), Metrics()
    before = {generation: pauses(first, generation) for generation in (0, 1, 2)}

    gc.collect(0)
    gc.collect(2)
    gc.collect(2)

    for metrics in (first, second):
        counts = {generation: pauses(metrics, generation)[0] - before[generation][0] for generation in (0, 1, 2)}
        assert counts == {0: 1, 1: 0, 2: 2}
    count, total, buckets = pauses(second, 2)
    assert total > before[2][1]
    assert buckets[-1] == count  # +Inf holds every pause
    assert buckets == sorted(buckets)  # cumulative
    assert pauses(first, 2) == pauses(second, 2)


def test_the_relay_freezes_its_startup_heap_after_one_full_collection(
    relay_factory: Callable[..., RelayProcess],
) -> None:
    relay = relay_factory()
    found = samples(httpx.get(f"{relay.http_url}/metrics", timeout=5).text)
    # The relay's modules, application and store: tens of thousands of objects.
    assert found[series("syncline_gc_frozen_objects")] > 10_000
    assert found[series("syncline_gc_pause_seconds_count", generation="2")] >= 1
    assert found[series("syncline_gc_pause_seconds_sum", generation="2")] > 0


def test_the_relay_collects_young_objects_less_often_than_cpython_does(
    relay_factory: Callable[..., RelayProcess],
) -> None:
    found = samples(httpx.get(f"{relay_factory().http_url}/metrics", timeout=5).text)
    served = [found[series("syncline_gc_threshold", generation=str(g))] for g in range(3)]
    assert served == list(COLLECTION_THRESHOLDS)
    assert served[0] != gc.get_threshold()[0]  # changed from CPython's default, which this process keeps
