"""The long protocol fuzz: tens of thousands of hostile cases against one live relay.

    python -m benchmarks.fuzz_relay [--cases 20000] [--minutes M] [--seed 1] [--category NAME]

The same cases and checks as tests/hardening/test_protocol_fuzz.py (which runs a few
hundred in CI): case ``i`` is drawn from ``random.Random(seed + i)``, so a failure
prints the seed that replays it (``--seed S --cases 1``). Every case must get the
exact close code the codec promises, the store must gain exactly the case's valid
writes, a bystander room must keep syncing, and the relay's RSS must stay within a
bound of its starting value. Prints a progress line every 1,000 cases and saves
the run to benchmarks/runs/fuzz_relay.json and its summary to
benchmarks/results/fuzz_relay.json; exit status 1 on the first failure.
"""

from __future__ import annotations

import logging
import random
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common
from harness.fuzzing import CATEGORIES, Audit, Limits, fuzz_relay_flags, make_case
from harness.hostile import assert_alive
from harness.probes import MIB, Bystander
from harness.relay_process import RelayProcess

ROOM = "acme/cart/fuzz"
BYSTANDER_ROOM = "acme/stock/fuzz-bystander"


def main() -> int:
    parser = common.parser("fuzz_relay", __doc__)
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long even if cases remain")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--category", choices=CATEGORIES, default=None, help="only cases of this category")
    parser.add_argument("--rss-bound-mib", type=float, default=64.0, help="allowed RSS growth over the run")
    args = parser.parse_args()
    # The websockets client logs a traceback when a relay's RST overtakes its close frame (the 1009 cases).
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    limits = Limits()
    deadline = None if args.minutes is None else time.monotonic() + args.minutes * 60
    started = time.perf_counter()
    failure: str | None = None
    done = 0
    with tempfile.TemporaryDirectory() as tmp:
        relay = RelayProcess(Path(tmp) / "relay", fuzz_relay_flags(limits)).start()
        try:
            audit = Audit(relay, limits, ROOM, BYSTANDER_ROOM, int(args.rss_bound_mib * MIB))
            with Bystander(relay, BYSTANDER_ROOM, period=0.1) as bystander:
                audit.bystanders = 2
                for i in range(args.cases):
                    if deadline is not None and time.monotonic() > deadline:
                        break
                    seed = args.seed + i
                    case = make_case(random.Random(seed), limits, args.category)
                    try:
                        audit.run(case)
                        if bystander.error is not None:
                            raise AssertionError(f"the bystander failed: {bystander.error!r}")
                    except AssertionError as exc:
                        failure = f"seed {seed}: {exc}"
                        break
                    done += 1
                    if done % 1000 == 0:
                        rate = done / (time.perf_counter() - started)
                        print(f"{done:>7} cases  {rate:6.0f}/s  RSS {audit.peak_rss / MIB:6.1f} MiB peak "
                              f"(start {audit.baseline_rss / MIB:.1f})  bystander {bystander.summary()}", flush=True)
            if failure is None:
                bystander.check(max_latency=5.0)
                assert_alive(relay)
        except AssertionError as exc:
            failure = failure or str(exc)
        finally:
            relay.stop()
    elapsed = time.perf_counter() - started
    result = {
        "benchmark": "fuzz_relay",
        "machine": common.machine_info(),
        "seed": args.seed, "cases": done, "seconds": round(elapsed, 1),
        "cases_per_second": round(done / elapsed, 1) if elapsed else None,
        "rss_start_mib": round(audit.baseline_rss / MIB, 1), "rss_peak_mib": round(audit.peak_rss / MIB, 1),
        "bystander": bystander.summary(), "outcomes": dict(sorted(audit.outcomes.items())),
        "failure": failure,
    }
    common.save("fuzz_relay", result, args.out)
    print(f"\n{'category -> outcome':<60} {'cases':>7}")
    for key, count in sorted(audit.outcomes.items()):
        print(f"{key:<60} {count:>7}")
    print(f"\n{done} cases in {elapsed:.0f} s; relay RSS {result['rss_start_mib']} -> peak {result['rss_peak_mib']} MiB; "
          f"bystander {bystander.summary()}")
    if failure is not None:
        print(f"FAILED at {failure}", file=sys.stderr)
        return 1
    print("no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
