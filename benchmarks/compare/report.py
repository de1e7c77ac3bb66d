"""Markdown tables for ``python -m benchmarks.compare`` results."""

from __future__ import annotations

from statistics import median
from typing import Any

from benchmarks.common import fmt, ratio, table
from benchmarks.peers import LABELS
from benchmarks.relay.report import fanout_table

REFERENCES = ("node", "pycrdt")


def r2(x: float | None) -> str:
    """A ratio: two decimals, more when it is small (0.0025 is not 0.00)."""
    if x is None:
        return "-"
    return f"{x:.2f}" if x >= 0.1 else f"{x:.2g}"


def render(results: dict[str, Any]) -> str:
    out: list[str] = []
    m = results["machine"]
    out.append(f"Machine: {m['cpu_count']} CPUs ({m['cpu_model']}), {m['memory_mib']:,} MiB, {m['platform']}; "
               f"Python {m['python']}, Node {m['node']}; pycrdt {m['pycrdt']}, pycrdt-websocket {m.get('pycrdt-websocket')}, "
               f"pycrdt-store {m.get('pycrdt-store')}, uvicorn {m['uvicorn']}; yjs {m['yjs']}, y-websocket {m['y-websocket']}, "
               f"@y/websocket-server {m['@y/websocket-server']}; {m['timestamp']}")
    out.append(f"Pinning: {results.get('pinning', 'not pinned')}")
    out.append(f"Command: `{results['command']}`; open files limit (RLIMIT_NOFILE, inherited by every server and "
               f"client): soft {results['nofile']['soft']:,}, hard {results['nofile']['hard']:,}")
    if "fanout" in results:
        out += render_fanout(results["fanout"], results["config"])
    if "saturation" in results:
        out += render_saturation(results["saturation"])
    if "capacity" in results:
        out += render_capacity(results["capacity"])
    if "cold_start" in results:
        out += render_cold(results["cold_start"])
    if "memory" in results:
        out += render_memory(results["memory"], results.get("capacity"))
    if "durability" in results:
        out += render_durability(results["durability"])
    if results.get("plots"):
        out.append("\nPlots: " + ", ".join(f"`{p}`" for p in results["plots"]))
    elif "plots" in results and results["plots"] is None:
        out.append("\nPlots: none (matplotlib is not installed: `pip install -e '.[bench]'`)")
    return "\n".join(out)


LOAD_GENERATOR_BUSY = 0.85
"""Cores of its one CPU past which the load generator's own queueing shows in every server's latency."""


def load_generator_note(runs: list[dict[str, Any]]) -> str | None:
    """A line saying so when the load generator was near the end of its CPU in any of ``runs``."""
    cores = [r["machine_during_run"].get("client_cores") for r in runs]
    busiest = max((c for c in cores if c is not None), default=None)
    if busiest is None or busiest < LOAD_GENERATOR_BUSY:
        return None
    return (f"The load generator used up to {busiest:.2f} of its CPU in these runs: past {LOAD_GENERATOR_BUSY} its own "
            "queueing adds to every server's latency, so there latencies compare the server and load generator "
            "together, and delivery may be capped by what the generator sends.")


def _median_or_none(values: list[float | None]) -> float | None:
    return None if not values or None in values else median(values)  # type: ignore[type-var]


def median_line(all_runs: dict[str, list[dict[str, Any]]]) -> str:
    """Each server's median p99 and CPU per delivery over its runs, against the Node reference's:
    a tail that swings from run to run on a shared machine is judged on more than one pair."""
    medians = {k: (median(r["latency_ms"]["p99"] for r in rs), median(r["server"]["cpu_us_per_delivery"] for r in rs),
                   _median_or_none([r["server"].get("main_thread_cpu_us_per_delivery") for r in rs]))
               for k, rs in all_runs.items() if rs}
    parts = [f"{LABELS[k]} p99 {fmt(p99)} ms, CPU {fmt(cpu)} us/delivery (main thread {fmt(main)})"
             for k, (p99, cpu, main) in medians.items()]
    line = "\nMedian over each server's runs: " + "; ".join(parts)
    if "syncline" in medians and "node" in medians:
        (sp, sc, sm), (np_, nc, nm) = medians["syncline"], medians["node"]
        line += (f" (Syncline / Node reference: p99 {r2(ratio(sp, np_))}x, CPU {r2(ratio(sc, nc))}x, "
                 f"main thread CPU {r2(ratio(sm, nm))}x)")
    return line


def render_fanout(f: dict[str, Any], c: dict[str, Any]) -> list[str]:
    out = [f"\n## 1. Fan-out: {c['rooms']} rooms x {c['clients']} Yjs clients, {fmt(c['rate'], 0)} edits/s each for "
           f"{fmt(c['duration'], 0)} s (Syncline commits every update with fsync before broadcasting it; "
           "pycrdt-websocket broadcasts, then writes to SQLiteYStore; Node keeps rooms in memory)\n"]
    head = f["headline"]
    out.append(fanout_table([(LABELS[k], r) for k, r in head.items()]))
    rows = []
    for ref, a in f["against"].items():
        ra, v = a["ratios"], a["verdict"]
        rows.append([f"Syncline / {LABELS[ref]}", f"{ra['throughput']:.3f}", r2(ra["p50"]), r2(ra["p99"]), r2(ra["max"]),
                     r2(ra["server_cpu_per_delivery"]), r2(ra.get("main_thread_cpu_per_delivery")), r2(ra["peak_rss"]),
                     "MET" if v["meets_target"] else "missed"])
    if rows:
        out.append("\n" + table(["ratio", "throughput (>= 1)", "p50", "p99 (<= 1)", "max", "CPU per delivery",
                                 "main thread CPU per delivery", "peak RSS", "target"], rows))
    node = f["against"].get("node")
    if node:
        ra = node["ratios"]
        s, n = head["syncline"], head["node"]
        out.append(f"\nTarget (vs the Node reference, same offered load: p99 <= and throughput >=; Syncline commits "
                   f"every update before broadcasting it, and stock Yjs clients cannot ask for its acks): **{'MET' if node['verdict']['meets_target'] else 'MISSED'}**: p99 "
                   f"{fmt(s['latency_ms']['p99'])} vs {fmt(n['latency_ms']['p99'])} ms ({r2(ra['p99'])}x), throughput "
                   f"{fmt(s['delivered_per_s'])} vs {fmt(n['delivered_per_s'])}/s ({ra['throughput']:.3f}x)")
    busy = load_generator_note(list(head.values()))
    if busy:
        out.append(busy)
    st = head.get("syncline", {}).get("server", {}).get("store")
    if st:
        out.append(f"Syncline store during the run: {st['commits']:,} commits, {st['updates_committed']:,} updates, "
                   f"mean batch {fmt(st['mean_batch'])}, mean commit {fmt(st['mean_commit_ms'], 2)} ms"
                   + (f", {st['commits_over_10ms']} commits over 10 ms" if "commits_over_10ms" in st else "")
                   + (f", {st['commits_over_50ms']} over 50 ms ({st['commits_over_100ms']} over 100 ms)"
                      if "commits_over_50ms" in st else "")
                   + (f"; {st['gc_full_collections']} full garbage collections ({fmt(st['gc_full_ms'])} ms in all), "
                      f"{st['gc_pauses_over_10ms']} collections over 10 ms" if "gc_full_collections" in st else "")
                   + (f"; its event loop woke a 50 ms timer late by over 10 ms in {st['loop_late_over_10ms']} of "
                      f"{st['loop_lag_samples']:,} wake-ups (over 25 ms in {st['loop_late_over_25ms']})"
                      if "loop_lag_samples" in st else ""))
    if len(next(iter(f["all_runs"].values()), [])) > 1:
        out.append("\nEvery run (interleaved; the headline is each server's least disturbed run):\n")
        out.append(fanout_table([(f"{LABELS[k]} #{i + 1}", r) for k, rs in f["all_runs"].items() for i, r in enumerate(rs)]))
        out.append(median_line(f["all_runs"]))
    if f.get("scaling"):
        out.append(f"\n### Throughput vs clients ({fmt(c['rate'], 0)} edits/s per client, {c['clients']} per room)\n")
        rows = []
        for row in f["scaling"]:
            for k in LABELS:
                r = row.get(k)
                if r is None:
                    continue
                extra = []
                for ref in REFERENCES:
                    if k == "syncline" and ref in row:
                        extra.append(f"{LABELS[ref]}: {row['syncline']['delivered_per_s'] / row[ref]['delivered_per_s']:.3f} / "
                                     f"{r2(ratio(row['syncline']['latency_ms']['p99'], row[ref]['latency_ms']['p99']))}")
                rows.append([row["clients"], LABELS[k], r["offered_deliveries_per_s"], r["delivered_per_s"],
                             f"{r['delivered']:,}/{r['expected_deliveries']:,}", r["latency_ms"]["p50"], r["latency_ms"]["p99"],
                             r["server"]["cpu_us_per_delivery"], r["machine_during_run"].get("client_cores"),
                             r["machine_during_run"]["background_cores"],
                             r["machine_during_run"].get("others_on_server_cpu"),
                             "; ".join(extra)])
        out.append(table(["clients", "server", "offered deliveries/s", "delivered/s", "delivered/expected", "p50 ms",
                          "p99 ms", "CPU us/delivery", "load generator (cores)", "other procs (cores)",
                          "others on the server's CPU", "Syncline / ref: throughput / p99"], rows))
        busy = load_generator_note([r for row in f["scaling"] for k, r in row.items() if k in LABELS])
        if busy:
            out.append("\n" + busy)
    prof = f.get("profiled_syncline_run", {}).get("profile")
    if prof and "self" in prof:
        pr = f["profiled_syncline_run"]
        out.append(f"\n### Where Syncline's time goes under this load (py-spy --gil, {prof['samples']:,} samples at "
                   f"{prof['sampling_rate_hz']} Hz, GIL held {fmt(100 * prof['busy_fraction_of_one_core'], 0)}% of the run; "
                   f"that run: p99 {fmt(pr['latency_ms']['p99'])} ms, not compared)\n")
        out += profile_tables(prof)
    return out


def profile_tables(prof: dict[str, Any], top: int = 15) -> list[str]:
    incl = {b["component"]: b["share"] for b in prof["inclusive_by_component"]}
    out = [table(["component", "self %", "inclusive %"],
                 [[a["component"], fmt(100 * a["share"]), fmt(100 * incl.get(a["component"], 0.0))]
                  for a in prof["self_by_component"][:10]])]
    out.append("\n" + table(["hottest functions (self)", "file", "%"],
                            [[r["function"], r["file"], fmt(100 * r["share"])] for r in prof["self"][:top]]))
    out.append("\n" + table(["Syncline functions (inclusive)", "file", "%"],
                            [[r["function"], r["file"], fmt(100 * r["share"])] for r in prof["syncline_inclusive"][:top]
                             if r["function"] not in ("<module>", "main", "_serve", "run_server", "run", "serve")]))
    return out


def render_saturation(sw: dict[str, Any]) -> list[str]:
    out = [f"\n## Saturation: {sw['rooms']} rooms x {sw['clients']} Yjs clients at rising edit rates per client, "
           f"{fmt(sw['duration'], 0)} s a step, each server until it misses a bound (every update delivered, "
           f"p99 <= {fmt(sw['p99_bound_ms'], 0)} ms); servers interleaved at every step\n"]
    rows = []
    for k, steps in sw["steps"].items():
        for st in steps:
            lat = st.get("latency_ms") or {}
            rows.append([LABELS[k], st["rate"], st.get("offered_deliveries_per_s"), st.get("delivered_per_s"),
                         f"{st['delivered']:,}/{st['expected_deliveries']:,}" if "delivered" in st else "-",
                         lat.get("p50"), lat.get("p99"), st.get("cpu_us_per_delivery"),
                         st.get("main_thread_cpu_us_per_delivery"), st.get("server_cores"),
                         st.get("client_cores"), st.get("background_cores"), st.get("others_on_server_cpu"),
                         (f"{st['store']['commits_over_50ms']} / {st['store']['commits_over_100ms']}"
                          if st.get("store") and "commits_over_50ms" in st["store"] else "-"),
                         "pass" if st["passed"] else f"FAIL ({st['why']})"])
    out.append(table(["server", "edits/s per client", "offered deliveries/s", "delivered/s", "delivered/expected",
                      "p50 ms", "p99 ms", "CPU us/delivery", "main thread CPU us/delivery", "server cores",
                      "load generator cores",
                      "other procs (cores)", "others on the server's CPU", "commits > 50 / > 100 ms", "step"],
                     rows))
    sat = sw["saturation_rate"]
    rows = [[LABELS[k], "none" if sat[k] is None else fmt(sat[k], 0),
             "-" if sw["failed_at"][k] is None else fmt(sw["failed_at"][k], 0),
             "yes" if k in sw["still_passing_at_last_rate"] else "no"] for k in sw["steps"]]
    out.append("\n" + table(["server", "saturation point (edits/s per client, last step passed)", "failed at",
                             "passed every step"], rows))
    node = sat.get("node")
    if "syncline" in sat and "node" in sat:
        met = (sat["syncline"] or 0) >= (node or 0)
        out.append(f"\nTarget (Syncline's saturation point >= the Node reference's): **{'MET' if met else 'MISSED'}**")
    return out


def render_capacity(cap: dict[str, Any]) -> list[str]:
    out = [f"\n## 2. Connection capacity: {cap['target_connections']:,} idle connections ({cap['per_room']} per room) "
           "to one server process (sync handshake, then idle)\n"]
    rows = []
    for k, r in cap["servers"].items():
        rows.append([LABELS[k], f"{r['still_open']:,}/{r['attempted']:,}", r["failed"], r["connects_per_s"],
                     r["ramp_seconds"], r["server_rss_mib"], r["kib_per_connection"], r["server_cpu_us_per_connect"],
                     r["server_nofile"], ", ".join(f"{e}: {n}" for e, n in r["errors"].items()) or "none",
                     "yes" if r["held_target"] else "NO"])
    out.append(table(["server", "held/attempted", "failed", "connects/s", "ramp s", "server RSS MiB", "KiB per connection",
                      "server CPU us/connect", "server open-files limit", "errors", "held the target"], rows))
    s = cap["servers"].get("syncline")
    if s:
        rows = [[f"Syncline / {LABELS[ref]}", r2(ratio(s["still_open"], cap["servers"][ref]["still_open"])),
                 r2(ratio(s["connects_per_s"], cap["servers"][ref]["connects_per_s"])),
                 r2(ratio(s["kib_per_connection"], cap["servers"][ref]["kib_per_connection"]))]
                for ref in REFERENCES if ref in cap["servers"]]
        if rows:
            out.append("\n" + table(["ratio", "held", "connects/s (>= 1 better)", "KiB per connection (<= 1 better)"], rows))
        if cap["target_connections"] < 10_000:
            out.append(f"\nThe target is 10,000 concurrent idle connections in one process; this run opened "
                       f"{cap['target_connections']:,} (a --quick run): run without --quick to test the target.")
        else:
            out.append(f"\nTarget ({cap['target_connections']:,} concurrent idle connections in one process): "
                       f"**{'MET' if s['held_target'] else 'MISSED'}** ({s['still_open']:,} held)")
    return out


def render_cold(cs: dict[str, Any]) -> list[str]:
    out = ["\n## 3. Cold start: first sync of a room with N updates of history (map overwrites, 3 writers), "
           "right after the server started\n"]
    rows = [[LABELS[r["server"]], r["updates"], r["stored_as"], r["rooms"], r["cold_ms"], r["warm_ms"],
             "yes" if r["complete"] else f"NO ({', '.join(str(k) for k in r['keys'])} of 50 keys)"] for r in cs["rows"]]
    out.append(table(["server", "updates", "stored as", "rooms", "cold first sync ms (median)",
                      "warm first sync ms (room open)", "whole history served"], rows))
    ratios = []
    by = {(r["server"], r["updates"], r["stored_as"]): r for r in cs["rows"]}
    for (srv, n, how), r in by.items():
        if srv != "syncline" or how != "snapshot":
            continue
        py = next((x for (s2, n2, _), x in by.items() if s2 == "pycrdt" and n2 == n), None)
        node = by.get(("node", n, "in memory (loaded over a WebSocket)"))
        ratios.append([n, r2(ratio(r["cold_ms"], py["cold_ms"])) if py else "-",
                       r2(ratio(r["cold_ms"], node["warm_ms"])) if node else "-",
                       r2(ratio(r["warm_ms"], node["warm_ms"])) if node else "-"])
    if ratios:
        out.append("\n" + table(["updates", "Syncline cold / pycrdt-websocket cold", "Syncline cold / Node in memory",
                                 "Syncline warm / Node warm"], ratios))
    t = cs.get("target_100k_under_50ms")
    if t is not None:
        r = by.get(("syncline", 100_000, "snapshot"))
        out.append(f"\nTarget (a 100k-update room opens in < 50 ms): **{'MET' if t else 'MISSED'}**"
                   + (f": {fmt(r['cold_ms'])} ms ({r2(r['cold_ms'] / 50)}x the target)" if r else ""))
    prof = cs.get("profile")
    if prof and "self" in prof:
        out.append(f"\n### Where a cold {prof.get('updates', 100_000):,}-update open goes in Syncline (py-spy --gil at 1 kHz over "
                   f"{len(prof['opens_ms'])} cold opens of {', '.join(fmt(x) for x in prof['opens_ms'])} ms; "
                   f"{prof['samples']:,} samples)\n")
        out += profile_tables(prof)
    return out


def render_memory(mem: dict[str, Any], cap: dict[str, Any] | None) -> list[str]:
    out = [f"\n## 4. Memory: {mem['rooms']:,} rooms of one small document, one connection each\n"]
    rows = []
    for k, r in mem["servers"].items():
        per_conn = cap["servers"].get(k, {}).get("kib_per_connection") if cap else None
        per_both = r["kib_per_room_and_connection"]
        rows.append([LABELS[k], f"{r['connected']:,}", r["server_rss_before_mib"], r["server_rss_mib"], per_both, per_conn,
                     (per_both - per_conn) if per_both is not None and per_conn is not None else None])
    out.append(table(["server", "rooms (connections)", "RSS before MiB", "RSS MiB", "KiB per room + its connection",
                      "KiB per connection (capacity run)", "KiB per room (difference)"], rows))
    s = mem["servers"].get("syncline")
    if s:
        rows = [[f"Syncline / {LABELS[ref]}", r2(ratio(s["kib_per_room_and_connection"],
                                                      mem["servers"][ref]["kib_per_room_and_connection"]))]
                for ref in REFERENCES if ref in mem["servers"]]
        out.append("\n" + table(["ratio", "KiB per room + connection (<= 1 better)"], rows))
    return out


def render_durability(d: dict[str, Any]) -> list[str]:
    out = [f"\n## 5. Durability\n\nConfirmed updates per second: {d['writers']} writers, each in its own room, each "
           "sending one update and waiting for its confirmation before the next. Confirmation `ack`: Syncline's "
           "durable ack (committed with fsync). `observed`: another client of the room received the update (the "
           "only confirmation a plain y-websocket client gets).\n"]
    rows = [[LABELS[r["server"]], r["mode"], r["confirmed"], r["confirmed_per_s"], r["latency_ms"]["p50"],
             r["latency_ms"]["p99"], r["server_cpu_us_per_update"]] for r in d["rates"]]
    out.append(table(["server", "confirmation", "confirmed", "confirmed/s", "p50 ms", "p99 ms", "server CPU us/update"], rows))
    by = {(r["server"], r["mode"]): r for r in d["rates"]}
    rows = []
    for mode in ("ack", "observed"):
        s = by.get(("syncline", mode))
        for ref in REFERENCES:
            o = by.get((ref, "observed"))
            if s and o:
                rows.append([f"Syncline ({mode}) / {LABELS[ref]} (observed)", r2(ratio(s["confirmed_per_s"], o["confirmed_per_s"])),
                             r2(ratio(s["latency_ms"]["p99"], o["latency_ms"]["p99"]))])
    if rows:
        out.append("\n" + table(["ratio", "confirmed/s", "p99"], rows))
    out.append(f"\nSIGKILL: {d['kill_rooms']} rooms, one writer each, {d['kill_updates']:,} updates in all (at most "
               f"{d['window']} unconfirmed per writer); once every update is confirmed (Syncline: acked; the others: "
               "seen by another client), `kill -9` the server (at once or after 2 s of quiet, with the clients still "
               "connected; or 2 s after the clients left), restart it on the same data, and count what a late joiner "
               "gets. Measured, not assumed:\n")
    rows = [[LABELS[r["server"]], r["kill"], r["confirmation"], r["sent"], r["confirmed"], r["survived"],
             r["lost_confirmed"], "yes" if r["kept_everything_confirmed"] else "NO"] for r in d["kills"]]
    out.append(table(["server", "SIGKILL", "confirmation", "sent", "confirmed before the kill", "there after restart",
                      "confirmed but lost", "kept everything confirmed"], rows))
    sdk = d.get("sdk_kill")
    if sdk:
        out.append(f"\nWith Syncline's own Python client (`SyncClient`, one cart): {sdk['edits']:,} `add_item` edits "
                   f"(each in the client's SQLite outbox, fsynced, when the call returns: {fmt(sdk['queue_seconds'], 2)} s "
                   f"to queue them all), every one acknowledged by the relay after {fmt(sdk['acked_seconds'], 2)} s "
                   f"({fmt(sdk['acked_per_s'], 0)} acknowledged edits/s), then `kill -9` at once: the restarted relay "
                   f"served a cart of quantity {sdk['survived_quantity']:,} "
                   f"({'everything acknowledged' if sdk['kept_everything_acked'] else 'NOT everything acknowledged'}).")
    return out
