"""REST adapter benchmarks: cart reads and adds per second with latency, and REST-write-to-WebSocket-peer latency.

Run from the repository root (the project's virtualenv with the dev extras)::

    python -m benchmarks.rest                 # the default run, about a minute on 2 cores
    python -m benchmarks.rest --quick         # smoke run, under 20 seconds
    python -m benchmarks.rest --workers 32 --duration 10 --out /tmp/rest.json

It prints one markdown table per section and saves everything, with machine info, as JSON
(default ``benchmarks/runs/rest.json``; summary in ``benchmarks/results/rest.json``).
The relay is a real ``syncline serve`` subprocess
on a loopback port (``harness/relay_process.py``) with a price catalog loaded by the real
``syncline catalog load`` command; the store is SQLite with ``synchronous=FULL`` (the default:
every write is fsynced, with group commit, before it is answered). Every workload is bounded in
count and in time. Sections:

1. ``http``: W concurrent workers, each an ``httpx.AsyncClient`` with its own keep-alive
   connection, issuing requests back to back for D seconds (at most N requests in all):

   - ``read``: ``GET`` a priced cart of 5 lines;
   - ``read_304``: the same with ``If-None-Match`` (revalidation, answered 304);
   - ``add``: ``POST .../items`` (+1 on a line), each worker on its own carts (a new cart every
     50 adds), so writes contend only for the store;
   - ``add_idempotent``: the same with a fresh ``Idempotency-Key`` per request (the response is
     stored with the update, in the same transaction);
   - ``add_one_cart``: every worker adds to the same cart: the adapter serialises edits of one
     document, so this is the per-document write ceiling.

   Reported: requests per second, latency p50/p95/p99/max (ms, from request sent to response
   read), non-2xx answers, and the CPU seconds of the relay and of this (client) process over the
   run: on a 2-core machine the Python client competes with the relay for the CPUs, so the
   numbers are a floor for what the relay serves to clients on other machines. Before each
   section the benchmark waits (at most ``quiet_wait`` s) until other processes use under 0.3
   cores, and records how busy the machine was.
2. ``rest_to_ws``: one WebSocket peer (a pycrdt ``Doc`` kept in sync over the y-websocket
   protocol, as ``harness/ypeer.py``) on a cart; a REST client adds to that cart, one add at
   a time; the latency is from just before the POST is sent to the moment the peer's document
   shows the new quantity. The relay broadcasts the update before it writes the HTTP answer,
   but the peer still has to decode the frame, integrate it and derive the cart in Python, so
   the REST client usually has its response first; that latency is reported beside it, with how
   often the peer was first. A new cart (and new peers) every 50 adds, so that carts stay the size
   real ones have: a cart's cost grows with its history. Also with P more idle peers in the room.
"""

from __future__ import annotations

import asyncio
import itertools
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from syncline.engine import Cart, line_key

from benchmarks import common
from benchmarks.common import percentiles, table
from benchmarks.procs import cpu_seconds, wait_for_quiet
from harness.catalog import load_catalog
from harness.relay_process import RelayProcess
from harness.ypeer import YPeer, ypeer

TENANT = "bench"
CATALOG = {"currency": "EUR", "prices": {f"p{i}": 100 + i for i in range(20)}}
SECTIONS = ("http", "rest_to_ws")


@dataclass(frozen=True)
class Config:
    workers: int = 16
    duration: float = 6.0
    max_requests: int = 50_000
    warmup: float = 1.0
    read_lines: int = 5
    adds_per_cart: int = 50
    ws_samples: int = 400
    ws_idle_peers: int = 20
    quiet_wait: float = 60.0  # seconds to wait, before each section, for other processes to calm down
    quick: bool = False


QUICK = Config(workers=8, duration=1.5, max_requests=5_000, warmup=0.3, ws_samples=60, ws_idle_peers=5,
               quiet_wait=0.0, quick=True)


# -- the http section -------------------------------------------------------------------------


Request = Callable[[httpx.AsyncClient, int, int], Awaitable[httpx.Response]]
"""(client, worker, n) -> response: the n-th request of a worker."""


async def closed_loop(relay: RelayProcess, token: str, workers: int, seconds: float, cap: int,
                      request: Request, warmup: float) -> dict[str, Any]:
    """``workers`` clients sending ``request`` back to back; latencies after ``warmup`` seconds."""
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    issued = itertools.count()
    counting = False
    stop_at = 0.0

    async def worker(w: int, client: httpx.AsyncClient) -> None:
        n = 0
        while time.perf_counter() < stop_at and next(issued) < cap:
            t0 = time.perf_counter()
            response = await request(client, w, n)
            elapsed = time.perf_counter() - t0
            n += 1
            if counting:
                latencies.append(elapsed)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    clients = [httpx.AsyncClient(base_url=relay.http_url, headers=headers, timeout=30.0,
                                 limits=httpx.Limits(max_connections=1)) for _ in range(workers)]
    try:
        # Warm-up: connections opened, rooms loaded, caches filled; not counted.
        stop_at = time.perf_counter() + warmup
        await asyncio.gather(*(worker(w, c) for w, c in enumerate(clients)))
        issued = itertools.count()
        counting = True
        assert relay.process is not None
        relay_cpu0, client_cpu0 = cpu_seconds(relay.process.pid), _own_cpu()
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(*(worker(w, c) for w, c in enumerate(clients)))
        elapsed = time.perf_counter() - started
        relay_cpu, client_cpu = cpu_seconds(relay.process.pid) - relay_cpu0, _own_cpu() - client_cpu0
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    ok = sum(count for status, count in statuses.items() if status < 300 or status == 304)
    return {
        "workers": workers,
        "requests": len(latencies),
        "seconds": round(elapsed, 3),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "latency_ms": _ms(percentiles(latencies)),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "non_2xx": len(latencies) - ok,
        "relay_cpu_seconds": round(relay_cpu, 2),
        "client_cpu_seconds": round(client_cpu, 2),
        "requests_per_relay_cpu_second": round(len(latencies) / relay_cpu, 1) if relay_cpu > 0 else None,
    }


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _ms(p: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (round(v * 1000, 3) if isinstance(v, float) and k != "count" else v) for k, v in p.items()}


async def bench_http(cfg: Config, relay: RelayProcess) -> dict[str, Any]:
    token = relay.token(TENANT)
    base = f"/v1/tenants/{TENANT}/carts"
    async with httpx.AsyncClient(base_url=relay.http_url, headers={"Authorization": f"Bearer {token}"}) as client:
        for i in range(cfg.read_lines):
            response = await client.post(f"{base}/read/items", json={"product": f"p{i}", "quantity": i + 1,
                                                                     "attributes": {"size": "M", "n": i}})
            response.raise_for_status()
        etag = (await client.get(f"{base}/read")).headers["etag"]

    async def read(c: httpx.AsyncClient, w: int, n: int) -> httpx.Response:
        return await c.get(f"{base}/read")

    async def read_304(c: httpx.AsyncClient, w: int, n: int) -> httpx.Response:
        return await c.get(f"{base}/read", headers={"If-None-Match": etag})

    async def add(c: httpx.AsyncClient, w: int, n: int) -> httpx.Response:
        return await c.post(f"{base}/w{w}-{n // cfg.adds_per_cart}/items", json={"product": f"p{n % 7}"})

    run = f"{time.time_ns()}"

    async def add_idempotent(c: httpx.AsyncClient, w: int, n: int) -> httpx.Response:
        return await c.post(f"{base}/i{w}-{n // cfg.adds_per_cart}/items", json={"product": f"p{n % 7}"},
                            headers={"Idempotency-Key": f"{run}-{w}-{n}"})

    async def add_one_cart(c: httpx.AsyncClient, w: int, n: int) -> httpx.Response:
        return await c.post(f"{base}/hot-{n // cfg.adds_per_cart}/items", json={"product": f"p{w % 7}"})

    workloads: dict[str, Request] = {"read": read, "read_304": read_304, "add": add,
                                     "add_idempotent": add_idempotent, "add_one_cart": add_one_cart}
    out: dict[str, Any] = {}
    for name, request in workloads.items():
        print(f"  http/{name} ...", file=sys.stderr, flush=True)
        out[name] = await closed_loop(relay, token, cfg.workers, cfg.duration, cfg.max_requests, request, cfg.warmup)
    # One worker: the latency of a request with nothing queued in front of it.
    for name in ("read", "add"):
        out[f"{name}_1_worker"] = await closed_loop(relay, token, 1, cfg.duration / 2, cfg.max_requests,
                                                    workloads[name], cfg.warmup / 2)
    return out


# -- the rest_to_ws section -----------------------------------------------------------------------


async def rest_to_peer(relay: RelayProcess, samples: int, idle_peers: int, prefix: str,
                       per_cart: int = 50) -> dict[str, Any]:
    """Time REST adds until a peer sees them; a new cart (and new peers) every ``per_cart`` adds,
    so that carts stay the size real ones have (a cart's cost grows with its history)."""
    token = relay.token(TENANT)
    key = line_key("p1", {})
    to_peer: list[float] = []
    to_response: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=relay.http_url, headers=headers, timeout=30.0) as client:
        for block in range(-(-samples // per_cart)):
            cart_id = f"{prefix}-{block}"
            name = f"{TENANT}/cart/{cart_id}"
            path = f"/v1/tenants/{TENANT}/carts/{cart_id}/items"
            async with ypeer(relay.url_for(name)) as peer, AsyncExitStack() as idle:
                for _ in range(idle_peers):
                    await idle.enter_async_context(ypeer(relay.url_for(name)))
                count = min(per_cart, samples - block * per_cart)
                for n in range(count + 1):  # the first add warms up (room load)
                    answered: list[float] = []

                    async def add() -> httpx.Response:
                        response = await client.post(path, json={"product": "p1"})
                        answered.append(time.perf_counter())
                        return response

                    t0 = time.perf_counter()
                    post = asyncio.ensure_future(add())
                    await _seen(peer, cart_id, key, n + 1)
                    t_peer = time.perf_counter()
                    (await post).raise_for_status()
                    if n >= 1:
                        to_peer.append(t_peer - t0)
                        to_response.append(answered[0] - t0)
    return {
        "samples": len(to_peer),
        "idle_peers": idle_peers,
        "adds_per_cart": per_cart,
        "post_to_peer_ms": _ms(percentiles(to_peer)),
        "post_to_http_response_ms": _ms(percentiles(to_response)),
        "peer_before_response": sum(1 for a, b in zip(to_peer, to_response, strict=True) if a < b),
    }


async def _seen(peer: YPeer, cart_id: str, key: str, quantity: int) -> None:
    await peer.wait_until(lambda doc: Cart(doc, cart_id).quantity(key) >= quantity, timeout=10)


async def bench_rest_to_ws(cfg: Config, relay: RelayProcess) -> dict[str, Any]:
    return {
        "one_peer": await rest_to_peer(relay, cfg.ws_samples, 0, "ws-1"),
        "with_idle_peers": await rest_to_peer(relay, cfg.ws_samples, cfg.ws_idle_peers, "ws-2"),
    }


# -- printing and main ------------------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    c = results["config"]
    out = [f"# REST adapter benchmarks ({m['timestamp']}, {m['cpus_usable']} CPUs, {m['cpu_model']}, "
           f"Python {m['python']}, SQLite {m['sqlite']})", ""]
    for section, load in results.get("machine_load", {}).items():
        out.append(f"- before `{section}`: other processes used {load['background_cores']:.2f} cores "
                   f"(waited {load['waited_seconds']:.0f} s{'' if load['quiet'] else ', never quiet'})")
    out.append("")
    if "http" in results:
        out += [f"## HTTP: {c['workers']} concurrent workers (keep-alive), {c['duration']} s each "
                "(latency in ms)", ""]
        rows = []
        for name, r in results["http"].items():
            lat = r["latency_ms"]
            rows.append([name, r["workers"], r["requests"], r["requests_per_second"], lat["p50"], lat["p95"],
                         lat["p99"], lat["max"], r["non_2xx"], r["relay_cpu_seconds"], r["client_cpu_seconds"]])
        out.append(table(["workload", "workers", "requests", "req/s", "p50", "p95", "p99", "max", "non-2xx",
                          "relay CPU s", "client CPU s"], rows))
        out.append("")
    if "rest_to_ws" in results:
        out += ["## REST write -> WebSocket peer (ms, one add at a time)", ""]
        rows = []
        for name, r in results["rest_to_ws"].items():
            p, h = r["post_to_peer_ms"], r["post_to_http_response_ms"]
            rows.append([name, r["idle_peers"], r["samples"], p["p50"], p["p95"], p["p99"], p["max"], h["p50"],
                         h["p95"], f"{r['peer_before_response']}/{r['samples']}"])
        out.append(table(["run", "other peers", "samples", "to peer p50", "p95", "p99", "max",
                          "to HTTP response p50", "p95", "peer first"], rows))
        out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.parser("rest", __doc__, quick="smoke run, under 20 seconds")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only these sections (repeatable)")
    parser.add_argument("--workers", type=int, help="concurrent HTTP workers")
    parser.add_argument("--duration", type=float, help="seconds per HTTP workload")
    parser.add_argument("--keep", action="store_true", help="keep the relay's data directory")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    cfg = replace(cfg, **{k: getattr(args, k) for k in ("workers", "duration") if getattr(args, k) is not None})
    sections = args.only or list(SECTIONS)
    results: dict[str, Any] = {"machine": common.machine_info(), "config": asdict(cfg), "sections": sections}
    work = Path(tempfile.mkdtemp(prefix="syncline-rest-bench-"))
    started = time.perf_counter()
    relay = None
    try:
        load_catalog(work / "relay", TENANT, CATALOG)
        relay = RelayProcess(work / "relay").start()
        results["relay_flags"] = relay.flags
        runners = {"http": bench_http, "rest_to_ws": bench_rest_to_ws}
        for section in SECTIONS:
            if section in sections:
                print(f"[{section}] ...", file=sys.stderr, flush=True)
                results.setdefault("machine_load", {})[section] = wait_for_quiet(cfg.quiet_wait)
                results[section] = asyncio.run(runners[section](cfg, relay))
        assert relay.process is not None
        results["relay_exit_code"] = relay.terminate(timeout=30)
        results["relay_errors_logged"] = sum(1 for line in relay.log().splitlines() if '"ERROR"' in line
                                             or "Traceback" in line)
    finally:
        if relay is not None:
            relay.stop()
        if args.keep:
            print(f"data kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = round(time.perf_counter() - started, 1)
    print(render(results))
    common.save("rest", results, args.out)
    print(f"\n{results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
