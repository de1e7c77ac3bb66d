"""The byte throttle's arithmetic, on a clock the test moves: the long-run rate, the burst, and a
frame larger than the burst."""

from __future__ import annotations

import time

import pytest

from syncline.server.throttle import ByteThrottle


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_passes_at_once_and_the_rest_is_read_at_the_rate() -> None:
    clock = FakeClock()
    throttle = ByteThrottle(1_000, 4_000, clock=clock)
    assert [throttle.delay(1_000) for _ in range(4)] == [0.0] * 4
    assert throttle.delay(1_000) == pytest.approx(1.0)
    clock.now += 1.0  # the receive loop waited
    assert throttle.delay(500) == pytest.approx(0.5)
    clock.now += 0.5
    clock.now += 10.0  # idle: the budget refills to the burst, no further
    assert [throttle.delay(2_000) for _ in range(2)] == [0.0, 0.0]
    assert throttle.delay(1) == pytest.approx(0.001)


def test_over_any_span_a_flood_is_read_at_the_rate_plus_one_burst() -> None:
    clock = FakeClock()
    throttle = ByteThrottle(1_000, 4_000, clock=clock)
    sent = 0
    start = clock.now
    for _ in range(100):
        clock.now += throttle.delay(700)
        sent += 700
    assert sent <= 4_000 + 1_000 * (clock.now - start) + 700
    assert clock.now - start == pytest.approx((sent - 4_000) / 1_000, abs=0.7)


def test_a_frame_larger_than_the_burst_waits_for_a_full_burst_then_leaves_a_debt() -> None:
    clock = FakeClock()
    throttle = ByteThrottle(1_000, 4_000, clock=clock)
    assert throttle.delay(3_000) == 0.0
    assert throttle.delay(10_000) == pytest.approx(3.0)  # until 4,000 bytes are back
    clock.now += 3.0
    assert throttle.delay(1_000) == pytest.approx(7.0)  # the 6,000-byte excess, then its own 1,000


def test_a_frame_arriving_before_the_previous_one_was_let_through_waits_for_it() -> None:
    clock = FakeClock()
    throttle = ByteThrottle(1_000, 1_000, clock=clock)
    assert throttle.delay(1_000) == 0.0
    assert throttle.delay(1_000) == pytest.approx(1.0)
    assert throttle.delay(1_000) == pytest.approx(2.0)  # nobody waited: both waits add up


@pytest.mark.anyio
async def test_each_wait_is_reported_and_slept() -> None:
    waits: list[float] = []
    throttle = ByteThrottle(100_000, 1_000, waited=waits.append)
    assert await throttle.admit(1_000) == 0.0
    start = time.monotonic()
    waited = await throttle.admit(2_000)
    assert time.monotonic() - start >= waited * 0.9 and waits == [waited]
    assert waited == pytest.approx(0.01, abs=0.002)


def test_a_throttle_needs_a_positive_rate_and_burst() -> None:
    with pytest.raises(ValueError):
        ByteThrottle(0, 10)
    with pytest.raises(ValueError):
        ByteThrottle(10, 0)
