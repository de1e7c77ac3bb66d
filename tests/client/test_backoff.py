"""Reconnection delays: exponential, capped, fully jittered."""

from __future__ import annotations

import pytest

from syncline.adapters.client import Backoff


def test_each_failure_doubles_the_ceiling_until_the_cap() -> None:
    calls: list[tuple[float, float]] = []
    backoff = Backoff(0.1, 1.0, uniform=lambda lo, hi: calls.append((lo, hi)) or hi)
    delays = [backoff.next_delay() for _ in range(7)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert all(lo == 0.0 for lo, _ in calls), "full jitter draws from zero"


def test_real_jitter_stays_within_zero_and_the_ceiling_and_spreads() -> None:
    backoff = Backoff(0.5, 8.0)
    draws = []
    for _ in range(2000):
        backoff.attempt = 4  # ceiling 8.0
        draws.append(backoff.next_delay())
    assert all(0.0 <= d <= 8.0 for d in draws)
    assert min(draws) < 1.0 and max(draws) > 7.0, "draws cover the whole window"


def test_reset_after_success_starts_again_from_the_base() -> None:
    backoff = Backoff(0.1, 10.0, uniform=lambda lo, hi: hi)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.1)


def test_many_failures_never_overflow() -> None:
    backoff = Backoff(0.1, 30.0, uniform=lambda lo, hi: hi)
    backoff.attempt = 10_000
    assert backoff.next_delay() == 30.0


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_nonsense_parameters_are_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base, cap)
