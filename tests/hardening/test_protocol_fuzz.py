"""Protocol fuzz against one live relay: every hostile frame gets exactly the answer the codec promises.

Hypothesis drives :func:`harness.fuzzing.make_case` (truncated varints, huge
length prefixes, unknown types and subtypes, garbage and billion-claiming updates,
oversized and non-JSON awareness, text and empty frames, bad msgpack extensions,
mutated valid frames). For every case: the offender gets the exact close code
(or, for a frame that is valid after all, an answer), the store gains exactly the
valid writes and nothing else (log, snapshots, change feed), a bystander room keeps
syncing with low latency the whole time, and the relay's memory stays bounded.
The long version: ``python -m benchmarks.fuzz_relay`` (tens of thousands of cases).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncline.engine import closecodes

from harness.fuzzing import CATEGORIES, Audit, Limits, fuzz_relay_flags, make_case, run_case
from harness.probes import MIB, Bystander
from harness.hostile import assert_alive, gauge, wait_for
from harness.relay_process import RelayProcess
from harness.ypeer import ypeer

LIMITS = Limits()
FUZZ_ROOM = "acme/cart/fuzz"
BYSTANDER_ROOM = "acme/stock/fuzz-bystander"
CASES = 400
RSS_GROWTH_BOUND = 16 * MIB


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    process = RelayProcess(tmp_path_factory.mktemp("fuzz") / "relay", fuzz_relay_flags(LIMITS)).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.slow
def test_hostile_frames_get_their_exact_close_code_and_leave_no_trace(relay: RelayProcess) -> None:
    # Warm up (first connections, first room) before taking the memory baseline.
    for seed in range(20):
        run_case(relay.url_for(FUZZ_ROOM), make_case(random.Random(seed), LIMITS))
    audit = Audit(relay, LIMITS, FUZZ_ROOM, BYSTANDER_ROOM, RSS_GROWTH_BOUND)
    with Bystander(relay, BYSTANDER_ROOM) as bystander:
        audit.bystanders = 2

        @settings(max_examples=CASES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        # Hypothesis picks the category (so each is reached) and the seed the case is drawn from; the
        # same seeds replay in the long run: python -m benchmarks.fuzz_relay --seed N --cases 1.
        @given(category=st.one_of(st.none(), st.sampled_from(CATEGORIES)), seed=st.integers(0, 2**64 - 1))
        def one_case(category: str | None, seed: int) -> None:
            audit.run(make_case(random.Random(seed), LIMITS, category))
            assert bystander.error is None, f"the bystander failed: {bystander.error!r}"

        one_case()
    bystander.check()
    print(f"\nfuzz outcomes: {dict(sorted(audit.outcomes.items()))}\nbystander: {bystander.summary()}, "
          f"relay RSS {audit.baseline_rss / MIB:.1f} -> peak {audit.peak_rss / MIB:.1f} MiB")
    codes = {key.rsplit(" -> ", 1)[1] for key in audit.outcomes}
    for code in (closecodes.INVALID_MESSAGE, closecodes.INVALID_UPDATE, closecodes.TOO_LARGE, "handled"):
        assert str(code) in codes, f"the fuzz never reached {code}: {codes}"
    # The offenders are gone: no connection is left once the bystander has left.
    anyio.run(wait_for, lambda: gauge(relay, "syncline_connections"), 0.0)
    assert_alive(relay)


def test_the_fuzz_relay_s_store_is_intact_after_a_restart(relay: RelayProcess) -> None:
    """Everything the fuzz stored loads again: the relay restarts and serves the fuzz room."""
    relay.restart()

    async def late_joiner() -> None:
        async with ypeer(relay.url_for(FUZZ_ROOM)) as peer:
            assert peer.synced.is_set()

    anyio.run(late_joiner)
    assert_alive(relay)
