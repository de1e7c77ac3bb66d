"""Soak: mixed WebSocket and REST load on one relay, SIGKILLed and restarted periodically, then a full audit.

    python -m benchmarks.soak [--minutes 10] [--quick] [--cycle-seconds 30] [--seed 1]
    python -m benchmarks.soak --memory [--minutes 10] [--quick]

Each cycle starts the relay on the same data directory and runs, concurrently:
WebSocket writers adding cart lines through the engine (durable acks on), REST
writers adding cart lines and recording stock adjustments, REST readers, and
WebSocket readers following the writers' carts. At a random moment in the cycle's
second half the relay is SIGKILLed. The relay's RSS is sampled all along.

The audit, on a clean restart after the last kill:
- every acknowledged update is present: each WebSocket write the relay acknowledged
  and each REST write answered 2xx shows in the document (and nothing appears that
  was never sent);
- every replica converged: two fresh WebSocket peers of each document hold the same
  state, and the REST view equals the view derived from a WebSocket peer's document;
- memory does not grow across cycles: each cycle's peak RSS stays within a bound of
  the first cycle's;
- the relay never logged a traceback and never answered 5xx.

Prints a line per cycle, a table at the end, saves the run to benchmarks/runs/soak.json
and its summary to benchmarks/results/soak.json;
exit status 1 if the audit fails. Not part of the test suite (see docs/hardening.md).

``--memory``: one relay, never killed, under the same mix of WebSocket and REST writers and
readers, on documents of bounded size: each writer moves to a new cart after
:data:`MEMORY_LINES` lines (a new stock location after :data:`MEMORY_ADJUSTMENTS`
adjustments), so finished documents are evicted (``--room-idle-seconds 2``). The relay's RSS
is sampled every 2 s; the slope of a least-squares line through the samples after the first
quarter of the run (MiB/min) must stay under :data:`MEMORY_SLOPE_LIMIT`. Saved as
benchmarks/runs/soak-memory.json and benchmarks/results/soak-memory.json.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
from pycrdt import Doc
from syncline.engine import Cart, StockLedger
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from benchmarks import common
from harness.catalog import CATALOG, load_catalog
from harness.probes import MIB, rss_bytes
from harness.relay_process import RelayProcess
from harness.ypeer import ypeer

TENANT = "soak"
WS_CARTS = 4
REST_CARTS = 2
REST_STOCK = 1
RSS_GROWTH_FACTOR = 1.5
RSS_GROWTH_SLACK = 32 * MIB
TRANSPORT_ERRORS = (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, httpx.TransportError)


@dataclass
class Ledger:
    """What was sent and what was acknowledged, across all cycles."""

    ws_sent: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    ws_acked: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    rest_sent: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    rest_acked: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    adjustments_sent: dict[str, set[str]] = field(default_factory=dict)
    adjustments_acked: dict[str, set[str]] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    reads: int = 0


@dataclass
class Cycle:
    number: int
    seconds: float = 0.0
    ws_acked: int = 0
    rest_acked: int = 0
    reads: int = 0
    rss_start_mib: float = 0.0
    rss_peak_mib: float = 0.0
    killed_after: float = 0.0


def _ws_cart(w: int, cycle: int) -> str:
    """Carts change every other cycle: documents stay of a similar size, and every other cycle resumes
    the carts a SIGKILL interrupted."""
    return f"{TENANT}/cart/ws-{w}-g{cycle // 2}"


def _rest_cart(k: int, cycle: int) -> str:
    return f"{TENANT}/cart/rest-{k}-g{cycle // 2}"


def _stock(k: int) -> str:
    return f"{TENANT}/stock/loc-{k}"


async def _ws_writer(relay: RelayProcess, w: int, cycle: int, ledger: Ledger, counter: list[int]) -> None:
    """Add one line per edit (attributes name the writer, the cycle and the edit) until the relay dies."""
    name = _ws_cart(w, cycle)
    cart_id = name.rsplit("/", 1)[1]
    sent, acked = ledger.ws_sent.setdefault(name, set()), ledger.ws_acked.setdefault(name, set())
    mine: list[tuple[int, int]] = []
    try:
        async with ypeer(relay.url_for(name), acks=True) as peer:
            base = peer.acked
            for i in range(1_000_000):
                tag = (cycle, i)
                await peer.edit(lambda d, tag=tag: Cart(d, cart_id).add_item("tee", 1, {"c": tag[0], "i": tag[1]}))
                sent.add(tag)
                mine.append(tag)
                newly = mine[: peer.acked - base]
                counter[0] += len(newly) - len(acked & set(newly))
                acked.update(newly)
                if peer.close_code is not None:
                    return
                await anyio.sleep(0.005)
    except (*TRANSPORT_ERRORS, ExceptionGroup):
        return


async def _ws_reader(relay: RelayProcess, w: int, cycle: int) -> None:
    """A peer that only follows a writer's cart (it must never be disturbed by the load)."""
    try:
        async with ypeer(relay.url_for(_ws_cart(w, cycle))) as peer:
            while peer.close_code is None:
                peer.changed = anyio.Event()
                await peer.changed.wait()
    except (*TRANSPORT_ERRORS, ExceptionGroup):
        return


async def _rest_writer(relay: RelayProcess, http: httpx.AsyncClient, k: int, cycle: int, ledger: Ledger,
                       counter: list[int]) -> None:
    cart = _rest_cart(k, cycle)
    cart_id = cart.rsplit("/", 1)[1]
    sent, acked = ledger.rest_sent.setdefault(cart, set()), ledger.rest_acked.setdefault(cart, set())
    stock = _stock(k % REST_STOCK)
    adj_sent = ledger.adjustments_sent.setdefault(stock, set())
    adj_acked = ledger.adjustments_acked.setdefault(stock, set())
    try:
        for i in range(1_000_000):
            tag = (cycle, i)
            sent.add(tag)
            response = await http.post(f"/v1/tenants/{TENANT}/carts/{cart_id}/items",
                                       json={"product": "mug", "attributes": {"c": cycle, "i": i}})
            if response.status_code == 200:
                acked.add(tag)
                counter[0] += 1
            else:
                ledger.server_errors.append(f"POST items {response.status_code} {response.text[:200]}")
            if i % 3 == 0:
                adjustment_id = f"r{k}-c{cycle}-{i}"
                adj_sent.add(adjustment_id)
                response = await http.post(
                    f"/v1/tenants/{TENANT}/stock/loc-{k % REST_STOCK}/adjustments",
                    json={"id": adjustment_id, "sku": "tee", "delta": 1, "reason": "soak", "actor": f"rest-{k}"})
                if response.status_code in (200, 201):
                    adj_acked.add(adjustment_id)
                    counter[0] += 1
                else:
                    ledger.server_errors.append(f"POST adjustments {response.status_code} {response.text[:200]}")
    except TRANSPORT_ERRORS:
        return


async def _rest_reader(http: httpx.AsyncClient, cycle: int, ledger: Ledger, counter: list[int]) -> None:
    try:
        for i in range(1_000_000):
            path = (f"/v1/tenants/{TENANT}/carts/{_ws_cart(i % WS_CARTS, cycle).rsplit('/', 1)[1]}" if i % 2 else
                    f"/v1/tenants/{TENANT}/stock/loc-{i % REST_STOCK}/levels")
            response = await http.get(path)
            if response.status_code != 200:
                ledger.server_errors.append(f"GET {path} {response.status_code} {response.text[:200]}")
            counter[0] += 1
            await anyio.sleep(0.02)
    except TRANSPORT_ERRORS:
        return


async def _cycle(relay: RelayProcess, number: int, seconds: float, rng: random.Random, ledger: Ledger) -> Cycle:
    cycle = Cycle(number)
    started = time.monotonic()
    relay.start()
    cycle.rss_start_mib = rss_bytes(relay) / MIB
    peak = [rss_bytes(relay)]
    ws_counter, rest_counter, read_counter = [0], [0], [0]
    kill_at = seconds * rng.uniform(0.6, 1.0)

    async def sample_rss() -> None:
        while True:
            try:
                peak[0] = max(peak[0], rss_bytes(relay))
            except (OSError, AssertionError):
                return
            await anyio.sleep(0.25)

    headers = {"Authorization": f"Bearer {relay.token(TENANT)}"}
    async with httpx.AsyncClient(base_url=relay.http_url, headers=headers, timeout=10) as http:
        with anyio.fail_after(seconds + 60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sample_rss)
                for w in range(WS_CARTS):
                    tg.start_soon(_ws_writer, relay, w, number, ledger, ws_counter)
                    tg.start_soon(_ws_reader, relay, w, number)
                for k in range(REST_CARTS):
                    tg.start_soon(_rest_writer, relay, http, k, number, ledger, rest_counter)
                tg.start_soon(_rest_reader, http, number, ledger, read_counter)
                await anyio.sleep(kill_at)
                peak[0] = max(peak[0], rss_bytes(relay))
                relay.kill()
                cycle.killed_after = time.monotonic() - started
                tg.cancel_scope.cancel()
    cycle.seconds = time.monotonic() - started
    cycle.ws_acked, cycle.rest_acked, cycle.reads = ws_counter[0], rest_counter[0], read_counter[0]
    cycle.rss_peak_mib = peak[0] / MIB
    return cycle


# -- the audit ------------------------------------------------------------------------------------------


def _cart_tags(view_lines: Any) -> dict[tuple[int, int], int]:
    tags: dict[tuple[int, int], int] = {}
    for line in view_lines:
        attributes = line["attributes"] if isinstance(line, dict) else line.attributes
        quantity = line["quantity"] if isinstance(line, dict) else line.quantity
        tags[(int(attributes["c"]), int(attributes["i"]))] = quantity
    return tags


async def _peer_doc(relay: RelayProcess, name: str) -> Doc:
    async with ypeer(relay.url_for(name)) as peer:
        return peer.doc


async def _audit(relay: RelayProcess, ledger: Ledger) -> dict[str, Any]:
    relay.start()
    problems: list[str] = []
    checked = {"ws_acked": 0, "rest_acked": 0, "adjustments_acked": 0, "documents": 0}
    headers = {"Authorization": f"Bearer {relay.token(TENANT)}"}
    async with httpx.AsyncClient(base_url=relay.http_url, headers=headers, timeout=30) as http:
        carts = [(name, sent, ledger.ws_acked.get(name, set())) for name, sent in ledger.ws_sent.items()]
        carts += [(name, sent, ledger.rest_acked.get(name, set())) for name, sent in ledger.rest_sent.items()]
        for name, sent, acked in carts:
            cart_id = name.rsplit("/", 1)[1]
            first, second = await _peer_doc(relay, name), await _peer_doc(relay, name)
            view_one, view_two = Cart(first, cart_id).view(), Cart(second, cart_id).view()
            if view_one != view_two:
                problems.append(f"{name}: two WebSocket peers derive different views")
            response = await http.get(f"/v1/tenants/{TENANT}/carts/{cart_id}")
            rest_lines = {(line["id"], line["quantity"]) for line in response.json()["lines"]}
            if rest_lines != {(line.key, line.quantity) for line in view_one.lines}:
                problems.append(f"{name}: the REST view differs from the WebSocket peers' view")
            present = _cart_tags(view_one.lines)
            missing = acked - set(present)
            if missing:
                problems.append(f"{name}: {len(missing)} acknowledged writes missing, e.g. {sorted(missing)[:3]}")
            unknown = set(present) - sent
            if unknown:
                problems.append(f"{name}: {len(unknown)} lines nobody sent")
            doubled = [tag for tag, quantity in present.items() if quantity != 1]
            if doubled:
                problems.append(f"{name}: {len(doubled)} lines applied more than once")
            checked["ws_acked" if "/ws-" in name else "rest_acked"] += len(acked)
            checked["documents"] += 1
        for k in range(REST_STOCK):
            name, location = _stock(k), f"loc-{k}"
            acked, sent = ledger.adjustments_acked.get(name, set()), ledger.adjustments_sent.get(name, set())
            first, second = await _peer_doc(relay, name), await _peer_doc(relay, name)
            ledger_one, ledger_two = StockLedger(first, location), StockLedger(second, location)
            if ledger_one.view() != ledger_two.view():
                problems.append(f"{name}: two WebSocket peers derive different ledgers")
            levels = (await http.get(f"/v1/tenants/{TENANT}/stock/{location}/levels")).json()["levels"]
            if levels != dict(ledger_one.levels()):
                problems.append(f"{name}: REST levels {levels} differ from the peers' {dict(ledger_one.levels())}")
            ids = {adjustment.id for adjustment in ledger_one.view().adjustments}
            if acked - ids:
                problems.append(f"{name}: {len(acked - ids)} acknowledged adjustments missing")
            if ids - sent:
                problems.append(f"{name}: {len(ids - sent)} adjustments nobody sent")
            checked["adjustments_acked"] += len(acked)
            checked["documents"] += 1
    log = relay.log()
    for sign in ("Traceback", "Exception in ASGI application"):
        if sign in log:
            problems.append(f"the relay logged {sign!r}")
    problems += [f"server answered: {error}" for error in ledger.server_errors[:5]]
    relay.stop()
    return {"problems": problems, "checked": checked}


def main() -> int:
    parser = common.parser("soak", __doc__, quick="one minute, 15-second cycles")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--cycle-seconds", type=float, default=None, help="load between kills (default 30; 15 quick)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--memory", action="store_true",
                        help="no kills: bounded documents under steady load, report the RSS slope (MiB/min)")
    args = parser.parse_args()
    if args.memory:
        out = args.out if args.out != common.raw_path("soak") else common.raw_path("soak-memory")
        return memory_main(1.0 if args.quick else args.minutes, out)
    minutes = 1.0 if args.quick else args.minutes
    cycle_seconds = args.cycle_seconds or (15.0 if args.quick else 30.0)
    cycles = max(2, round(minutes * 60 / cycle_seconds))
    rng = random.Random(args.seed)
    ledger = Ledger()
    results: list[Cycle] = []
    started = time.perf_counter()
    print(f"soak: {cycles} cycles of up to {cycle_seconds:.0f} s, SIGKILL at a random moment in each", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "relay"
        load_catalog(data_dir, TENANT, CATALOG)
        relay = RelayProcess(data_dir, ["--room-idle-seconds", "5"])
        try:
            for number in range(1, cycles + 1):
                cycle = anyio.run(_cycle, relay, number, cycle_seconds, rng, ledger)
                results.append(cycle)
                print(f"cycle {number:>3}/{cycles}: killed after {cycle.killed_after:5.1f} s; WS acked "
                      f"{cycle.ws_acked:>6} ({cycle.ws_acked / cycle.killed_after:6.0f}/s), REST 2xx writes "
                      f"{cycle.rest_acked:>5}, reads {cycle.reads:>5}; RSS {cycle.rss_start_mib:5.1f} -> peak "
                      f"{cycle.rss_peak_mib:5.1f} MiB", flush=True)
            print("audit: restarting the relay and reading every document back", flush=True)
            audit = anyio.run(_audit, relay, ledger)
        finally:
            relay.stop()
    elapsed = time.perf_counter() - started
    first_peak = results[0].rss_peak_mib
    bound = first_peak * RSS_GROWTH_FACTOR + RSS_GROWTH_SLACK / MIB
    worst = max(cycle.rss_peak_mib for cycle in results)
    if worst > bound:
        audit["problems"].append(f"RSS peak {worst:.1f} MiB exceeds {bound:.1f} MiB (first cycle {first_peak:.1f})")
    totals = {
        "ws_acked": sum(c.ws_acked for c in results), "rest_acked": sum(c.rest_acked for c in results),
        "reads": sum(c.reads for c in results), "kills": len(results),
        "ws_sent": sum(len(s) for s in ledger.ws_sent.values()),
        "rest_sent": sum(len(s) for s in ledger.rest_sent.values())
        + sum(len(s) for s in ledger.adjustments_sent.values()),
    }
    print(f"\n{'cycle':>5} {'seconds':>8} {'WS acked':>9} {'REST 2xx':>9} {'reads':>6} {'RSS start':>10} {'RSS peak':>9}")
    for c in results:
        print(f"{c.number:>5} {c.killed_after:>8.1f} {c.ws_acked:>9} {c.rest_acked:>9} {c.reads:>6} "
              f"{c.rss_start_mib:>10.1f} {c.rss_peak_mib:>9.1f}")
    print(f"\n{elapsed / 60:.1f} min, {totals['kills']} SIGKILLs; acknowledged: {totals['ws_acked']} WebSocket writes, "
          f"{totals['rest_acked']} REST writes (of {totals['ws_sent']} and {totals['rest_sent']} sent); "
          f"audited {audit['checked']}")
    print(f"RSS peaks per cycle: median {statistics.median(c.rss_peak_mib for c in results):.1f} MiB, "
          f"max {worst:.1f} MiB (bound {bound:.1f})")
    result = {
        "benchmark": "soak",
        "machine": common.machine_info(),
        "command": " ".join(["python -m benchmarks.soak", *sys.argv[1:]]),
        "seconds": round(elapsed, 1), "cycle_seconds": cycle_seconds, "seed": args.seed,
        "cycles": [c.__dict__ for c in results], "totals": totals, "audit": audit,
        "rss_bound_mib": round(bound, 1), "passed": not audit["problems"],
    }
    common.save("soak", result, args.out)
    if audit["problems"]:
        print("AUDIT FAILED:\n  " + "\n  ".join(audit["problems"]), file=sys.stderr)
        return 1
    print("audit passed: every acknowledged update present, every replica converged, memory flat across cycles")
    return 0



# -- memory mode ----------------------------------------------------------------------------------------

MEMORY_LINES = 40
"""Lines a writer adds to one cart before it moves to the next: every document stays small."""
MEMORY_ADJUSTMENTS = 60
"""Adjustments recorded at one stock location before the writer moves to the next."""
MEMORY_SLOPE_LIMIT = 0.5
"""MiB per minute of RSS growth (after the warm-up) above which the run fails."""
RSS_SAMPLE_SECONDS = 2.0


@dataclass
class MemoryLoad:
    current: dict[str, str] = field(default_factory=dict)
    """What each writer is writing now (for the readers): writer name -> cart or location id."""
    writes: int = 0
    reads: int = 0
    documents: int = 0
    errors: list[str] = field(default_factory=list)


async def _memory_ws_writer(relay: RelayProcess, w: int, load: MemoryLoad) -> None:
    for generation in range(1_000_000):
        cart_id = f"mem-ws-{w}-{generation}"
        load.current[f"ws-{w}"], load.documents = cart_id, load.documents + 1
        try:
            async with ypeer(relay.url_for(f"{TENANT}/cart/{cart_id}"), acks=True) as peer:
                for i in range(MEMORY_LINES):
                    await peer.edit(lambda d, i=i: Cart(d, cart_id).add_item("tee", 1, {"i": i}))
                    await anyio.sleep(0.01)
                await peer.wait_acked(MEMORY_LINES + 1, timeout=30)
                load.writes += MEMORY_LINES
        except TRANSPORT_ERRORS as exc:
            load.errors.append(f"ws writer {w}: {exc!r}")


async def _memory_rest_writer(http: httpx.AsyncClient, k: int, load: MemoryLoad) -> None:
    adjustments = 0
    for generation in range(1_000_000):
        cart_id = f"mem-rest-{k}-{generation}"
        load.current[f"rest-{k}"], load.documents = cart_id, load.documents + 1
        for i in range(MEMORY_LINES):
            response = await http.post(f"/v1/tenants/{TENANT}/carts/{cart_id}/items",
                                       json={"product": "mug", "attributes": {"i": i}})
            if response.status_code != 200:
                load.errors.append(f"POST items {response.status_code} {response.text[:200]}")
            load.writes += 1
            if i % 3 == 0:
                location = f"mem-{k}-{adjustments // MEMORY_ADJUSTMENTS}"
                if adjustments % MEMORY_ADJUSTMENTS == 0:
                    load.documents += 1
                load.current[f"stock-{k}"] = location
                response = await http.post(
                    f"/v1/tenants/{TENANT}/stock/{location}/adjustments",
                    json={"id": f"a-{adjustments}", "sku": "tee", "delta": 1, "reason": "soak", "actor": f"rest-{k}"})
                if response.status_code not in (200, 201):
                    load.errors.append(f"POST adjustments {response.status_code} {response.text[:200]}")
                adjustments += 1
                load.writes += 1


async def _memory_rest_reader(http: httpx.AsyncClient, load: MemoryLoad) -> None:
    for i in range(1_000_000):
        if not load.current:
            await anyio.sleep(0.05)
            continue
        writer = sorted(load.current)[i % len(load.current)]
        target = load.current[writer]
        path = (f"/v1/tenants/{TENANT}/stock/{target}/levels" if writer.startswith("stock-")
                else f"/v1/tenants/{TENANT}/carts/{target}")
        response = await http.get(path)
        if response.status_code != 200:
            load.errors.append(f"GET {path} {response.status_code} {response.text[:200]}")
        load.reads += 1
        await anyio.sleep(0.02)


def rss_slope(samples: list[tuple[float, float]]) -> float:
    """The slope of the least-squares line through ``(seconds, MiB)`` samples, in MiB per minute."""
    mean_t = statistics.fmean(t for t, _ in samples)
    mean_m = statistics.fmean(m for _, m in samples)
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    return 60 * sum((t - mean_t) * (m - mean_m) for t, m in samples) / spread if spread else 0.0


async def _memory_run(relay: RelayProcess, seconds: float) -> tuple[MemoryLoad, list[tuple[float, float]]]:
    load = MemoryLoad()
    samples: list[tuple[float, float]] = []
    start = time.monotonic()

    async def sample() -> None:
        while True:
            samples.append((time.monotonic() - start, rss_bytes(relay) / MIB))
            await anyio.sleep(RSS_SAMPLE_SECONDS)

    headers = {"Authorization": f"Bearer {relay.token(TENANT)}"}
    async with httpx.AsyncClient(base_url=relay.http_url, headers=headers, timeout=10) as http:
        with anyio.move_on_after(seconds):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sample)
                for w in range(WS_CARTS):
                    tg.start_soon(_memory_ws_writer, relay, w, load)
                for k in range(REST_CARTS):
                    tg.start_soon(_memory_rest_writer, http, k, load)
                tg.start_soon(_memory_rest_reader, http, load)
    samples.append((time.monotonic() - start, rss_bytes(relay) / MIB))
    return load, samples


def memory_main(minutes: float, out: Path) -> int:
    seconds = minutes * 60
    print(f"soak --memory: {minutes:.1f} min of mixed load on documents of at most {MEMORY_LINES} lines", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "relay"
        load_catalog(data_dir, TENANT, CATALOG)
        relay = RelayProcess(data_dir, ["--room-idle-seconds", "2"]).start()
        try:
            load, samples = anyio.run(_memory_run, relay, seconds)
            log = relay.log()
        finally:
            relay.stop()
    steady = [(t, m) for t, m in samples if t >= seconds / 4]
    slope = rss_slope(steady)
    problems = [f"RSS grew {slope:.2f} MiB/min after the warm-up (limit {MEMORY_SLOPE_LIMIT})"] \
        if slope > MEMORY_SLOPE_LIMIT else []
    problems += [f"client saw: {error}" for error in load.errors[:5]]
    problems += [f"the relay logged {sign!r}" for sign in ("Traceback", "Exception in ASGI application") if sign in log]
    for t, m in samples[:: max(1, len(samples) // 12)]:
        print(f"  {t:6.0f} s  RSS {m:6.1f} MiB", flush=True)
    print(f"{load.writes} writes, {load.reads} reads over {load.documents} documents; RSS {samples[0][1]:.1f} -> "
          f"{samples[-1][1]:.1f} MiB (max {max(m for _, m in samples):.1f}); slope after the first quarter "
          f"{slope:+.2f} MiB/min")
    common.save("soak-memory", {
        "benchmark": "soak-memory", "machine": common.machine_info(),
        "command": " ".join(["python -m benchmarks.soak", *sys.argv[1:]]),
        "seconds": round(seconds, 1), "lines_per_cart": MEMORY_LINES, "adjustments_per_location": MEMORY_ADJUSTMENTS,
        "writes": load.writes, "reads": load.reads, "documents": load.documents,
        "rss_mib": [[round(t, 1), round(m, 1)] for t, m in samples],
        "rss_slope_mib_per_min": round(slope, 3), "problems": problems, "passed": not problems,
    }, out)
    if problems:
        print("MEMORY SOAK FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("memory flat: RSS slope under the limit, no errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
