"""Flood: one client writes 1 MB updates as fast as the relay takes them; how long do other rooms wait?

    python -m benchmarks.flood [--seconds 15] [--rooms 8] [--quick]

One relay process on a fresh data directory. Other rooms (a writer and a reader each, on
another tenant) make round trips all along: the writer appends a small op, the time until
the reader sees it is one round trip (every 20 ms per room). Three phases of ``--seconds``:

- ``idle``: nobody floods;
- ``flooding``: one client writes 1 MB updates (durable acks on) into its own room, as fast
  as the relay reads them, with one reader of that room that reads and one that never
  reads (a stalled reader);
- ``flooding, unlimited``: the same on a relay started with the byte rate out of reach
  (``--rate-bytes-per-second`` and ``--rate-burst-bytes`` at 10**12), as before the limit
  existed.

Each update replaces the previous one in the flooded document (a Y.Map key), so the document
stays about 1 MB while the store's log grows. Prints per phase the other rooms' round-trip
p50/p95/p99, the flooder's acknowledged MB/s, how the stalled reader was closed, and the
relay's RSS (start, peak, end); saves the run to benchmarks/runs/flood.json and its summary to
benchmarks/results/flood.json. See docs/hardening.md.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from pycrdt import Array, Map
from websockets.exceptions import ConnectionClosed

from benchmarks import common
from harness.probes import MIB, rss_bytes
from harness.hostile import non_reading_peer
from harness.relay_process import RelayProcess
from harness.ypeer import ypeer

UPDATE_BYTES = 1_000_000
UNLIMITED = str(10**12)
FLOODED = "flood/cart/big"
FLOOD_CAP_BYTES = 400 * 1_000_000
"""The flooder stops after this much (the unlimited relay's log would otherwise fill the disk)."""


async def _round_trips(relay: RelayProcess, room: str, seconds: float, out: list[float]) -> None:
    async with ypeer(relay.url_for(room), acks=True) as writer, ypeer(relay.url_for(room)) as reader:
        ops = reader.doc.get("ops", type=Array)
        deadline = time.monotonic() + seconds
        n = len(ops)
        while time.monotonic() < deadline:
            sent = time.monotonic()
            await writer.edit(lambda d, n=n: d.get("ops", type=Array).append(n))
            n += 1
            await reader.wait_until(lambda d, n=n: len(d.get("ops", type=Array)) >= n, timeout=60)
            out.append(time.monotonic() - sent)
            await anyio.sleep(0.02)


async def _flood(relay: RelayProcess, seconds: float, result: dict[str, Any]) -> None:
    """Write 1 MB updates for ``seconds``, never waiting for acks; count what was acknowledged."""
    payload = "x" * (UPDATE_BYTES - 64)
    async with ypeer(relay.url_for(FLOODED), acks=True) as flooder:
        base = flooder.acked
        start = time.monotonic()
        sent = 0
        with anyio.move_on_after(seconds):
            while sent * UPDATE_BYTES < FLOOD_CAP_BYTES and flooder.close_code is None:
                # The send waits while the relay does not read this socket (the byte rate's back-pressure).
                await flooder.edit(lambda d, i=sent: d.get("blob", type=Map).__setitem__("v", f"{i}:{payload}"))
                sent += 1
        elapsed = time.monotonic() - start
        acked = flooder.acked - base
        result.update(sent=sent, acked=acked, seconds=round(elapsed, 2),
                      acked_mb_per_s=round(acked * UPDATE_BYTES / 1e6 / elapsed, 2),
                      flooder_close_code=flooder.close_code)


async def _watch_rss(relay: RelayProcess, peak: list[int]) -> None:
    while True:
        peak[0] = max(peak[0], rss_bytes(relay))
        await anyio.sleep(0.2)


async def _phase(relay: RelayProcess, name: str, seconds: float, rooms: int, flood: bool) -> dict[str, Any]:
    trips: list[float] = []
    result: dict[str, Any] = {"phase": name, "rss_start_mib": round(rss_bytes(relay) / MIB, 1)}
    peak = [rss_bytes(relay)]
    flood_result: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(_watch_rss, relay, peak)
        async with anyio.create_task_group() as load:
            for r in range(rooms):
                load.start_soon(_round_trips, relay, f"calm/cart/room-{r}-{name.split(',')[0]}", seconds, trips)
            if flood:
                async with ypeer(relay.url_for(FLOODED)) as reader, non_reading_peer(relay.url_for(FLOODED)) as stalled:
                    await _flood(relay, seconds, flood_result)
                    flood_result["reader_close_code"] = reader.close_code
                    try:
                        with anyio.move_on_after(5):
                            async for _ in stalled:
                                pass
                    except ConnectionClosed:
                        pass
                    flood_result["stalled_reader_close_code"] = stalled.close_code
        tg.cancel_scope.cancel()
    result.update(round_trips=len(trips), round_trip_ms=common.percentiles(trips, scale=1000, suffix="_ms"),
                  rss_peak_mib=round(peak[0] / MIB, 1), rss_end_mib=round(rss_bytes(relay) / MIB, 1), **flood_result)
    return result


def _run(flags: list[str], phases: list[tuple[str, bool]], seconds: float, rooms: int) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        relay = RelayProcess(Path(tmp) / "relay", flags).start()
        try:
            for name, flood in phases:
                result = anyio.run(_phase, relay, name, seconds, rooms, flood)
                results.append(result)
                trips = result["round_trip_ms"]
                flooded = (f"; flooder {result['acked_mb_per_s']} MB/s acknowledged ({result['acked']} of "
                           f"{result['sent']} sent), stalled reader closed {result['stalled_reader_close_code']}"
                           if flood else "")
                print(f"{name:<22} other rooms' round trip p50 {trips['p50_ms']:.1f} ms, p95 {trips['p95_ms']:.1f} ms, "
                      f"p99 {trips['p99_ms']:.1f} ms ({result['round_trips']}){flooded}; RSS "
                      f"{result['rss_start_mib']} -> peak {result['rss_peak_mib']} -> {result['rss_end_mib']} MiB",
                      flush=True)
        finally:
            relay.stop()
    return results


def main() -> int:
    parser = common.parser("flood", __doc__, quick="5-second phases, 4 rooms")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--rooms", type=int, default=8, help="other rooms making round trips")
    args = parser.parse_args()
    seconds, rooms = (5.0, 4) if args.quick else (args.seconds, args.rooms)
    if seconds <= 0 or rooms < 1:
        parser.error("--seconds must be positive and --rooms at least 1")
    print(f"flood: {rooms} other rooms, phases of {seconds:.0f} s, 1 MB updates", flush=True)
    limited = _run([], [("idle", False), ("flooding", True)], seconds, rooms)
    unlimited = _run(["--rate-bytes-per-second", UNLIMITED, "--rate-burst-bytes", UNLIMITED],
                     [("flooding, unlimited", True)], seconds, rooms)
    idle_p95 = limited[0]["round_trip_ms"]["p95_ms"]
    flood_p95 = limited[1]["round_trip_ms"]["p95_ms"]
    print(f"\nother rooms' p95 while one client floods: {flood_p95:.1f} ms with the byte rate, "
          f"{unlimited[0]['round_trip_ms']['p95_ms']:.1f} ms without; idle {idle_p95:.1f} ms "
          f"(x{flood_p95 / idle_p95:.2f})")
    common.save("flood", {
        "benchmark": "flood", "machine": common.machine_info(),
        "command": " ".join(["python -m benchmarks.flood", *sys.argv[1:]]),
        "seconds": seconds, "rooms": rooms, "update_bytes": UPDATE_BYTES,
        "phases": limited + unlimited, "flood_p95_over_idle_p95": round(flood_p95 / idle_p95, 2),
    }, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
