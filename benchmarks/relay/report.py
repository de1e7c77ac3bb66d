"""The markdown tables ``python -m benchmarks.relay`` prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.common import fmt, table


def fanout_table(runs: Sequence[tuple[str, dict[str, Any]]]) -> str:
    rows = []
    for label, r in runs:
        lat, srv, errs = r["latency_ms"], r["server"], r["errors"]
        rows.append([label, lat["p50"], lat["p95"], lat["p99"], lat["max"], r["delivered_per_s"],
                     f"{r['delivered']:,}/{r['expected_deliveries']:,}",
                     f"{errs['connection_close']}/{errs['connection_error']}",
                     srv["cpu_seconds"], srv["cpu_us_per_delivery"], srv.get("main_thread_cpu_us_per_delivery"),
                     srv["peak_rss_run_mib"],
                     r["machine_during_run"]["client_cores"], r["machine_during_run"]["background_cores"],
                     r["machine_during_run"].get("others_on_server_cpu"),
                     ",".join(x or "none" for x in r["negotiated_extensions"])])
    return table(["server", "p50 ms", "p95 ms", "p99 ms", "max ms", "delivered/s", "delivered/expected",
                  "closes/errors", "server CPU s", "CPU us/delivery", "main thread CPU us/delivery",
                  "server peak RSS MiB", "client (cores)", "other procs (cores)", "others on the server's CPU (pinned)",
                  "ws extensions"], rows)


def render(results: dict[str, Any]) -> str:
    out: list[str] = []
    m = results["machine"]
    out.append(f"Machine: {m['cpu_count']} CPUs ({m['cpu_model']}), Python {m['python']}, Node {m['node']}, "
               f"pycrdt {m['pycrdt']}, yjs {m['yjs']}, {m['timestamp']}")
    if "fanout" in results:
        f = results["fanout"]
        c = results["config"]
        out.append(f"\n## Fan-out: {c['rooms']} rooms x {c['clients']} clients, {fmt(c['rate'], 0)} edits/s each "
                   f"for {fmt(c['duration'], 0)} s (Syncline: every update committed with fsync before broadcast; "
                   "reference: in memory)\n")
        head = f["headline"]
        out.append(fanout_table([(key, head[key]) for key in ("syncline", "reference")]))
        ra = f["ratios_syncline_over_reference"]
        v = f["verdict"]
        out.append("\n" + table(["Syncline / reference", "throughput", "p50", "p99", "max", "server CPU",
                                  "CPU per delivery", "peak RSS"],
                                 [["ratio", f"{ra['throughput']:.3f}", fmt(ra["p50"], 2), fmt(ra["p99"], 2),
                                   fmt(ra["max"], 2), fmt(ra["server_cpu"], 2), fmt(ra["server_cpu_per_delivery"], 2),
                                   fmt(ra["peak_rss"], 2)]]))
        out.append(f"\nTarget (p99 <= reference and throughput >= reference, everything delivered): "
                   f"{'MET' if v['meets_target'] else 'MISSED'} (p99: {fmt(v['p99_at_most_reference'])}, "
                   f"throughput: {fmt(v['throughput_at_least_reference'])})")
        st = head["syncline"]["server"].get("store")
        if st:
            out.append(f"Syncline store during the run: {st['commits']:,} commits, {st['updates_committed']:,} updates, "
                       f"mean batch {fmt(st['mean_batch'])}, mean commit {fmt(st['mean_commit_ms'], 2)} ms, "
                       f"rejected {st['rejected'] or 'none'}")
        for key in ("syncline", "reference"):
            tl = head[key]["timeline"]
            out.append(f"{key} p99 by send second (ms): " + ", ".join(fmt(b["p99_ms"], 0) for b in tl))
        out.append("\nEvery run (interleaved; the headline is each server's least disturbed run):\n")
        out.append(fanout_table([(f"{key} #{i + 1}", r) for key, rs in f["all_runs"].items() for i, r in enumerate(rs)]))
        if f.get("deflate_offered"):
            d = f["deflate_offered"]
            out.append("\nSame load, clients offering permessage-deflate (browsers do; the ws extensions "
                       "column shows what each server accepted):\n")
            out.append(fanout_table([(key, d[key]) for key in ("syncline", "reference")]))
        if f.get("scaling"):
            out.append("\nLower edit rates (shorter runs):\n")
            rows = []
            for row in f["scaling"]:
                for key in ("syncline", "reference"):
                    r = row[key]
                    rows.append([f"{fmt(row['rate'], 0)}/s x {fmt(row['duration'], 0)} s", key, r["latency_ms"]["p50"],
                                 r["latency_ms"]["p99"], r["delivered_per_s"],
                                 f"{r['delivered']:,}/{r['expected_deliveries']:,}", r["server"]["cpu_seconds"],
                                 r["server"]["cpu_us_per_delivery"], r["machine_during_run"]["background_cores"],
                                 ("MET" if row["verdict"]["meets_target"] else "missed") if key == "syncline" else ""])
            out.append(table(["load", "server", "p50 ms", "p99 ms", "delivered/s", "delivered/expected",
                              "server CPU s", "CPU us/delivery", "other procs (cores)", "Syncline vs target"], rows))
        prof = f.get("profiled_syncline_run", {}).get("profile")
        if prof and "self" in prof:
            pr = f["profiled_syncline_run"]
            out.append(f"\n### Profile of the relay under this load (py-spy --gil, {prof['samples']:,} samples at "
                       f"{prof['sampling_rate_hz']} Hz: the GIL was held {fmt(100 * prof['busy_fraction_of_one_core'], 0)}% "
                       f"of the time; that run: p99 {fmt(pr['latency_ms']['p99'], 0)} ms, "
                       f"{pr['delivered']:,}/{pr['expected_deliveries']:,} delivered)\n")
            out.append(table(["component", "self %", "inclusive %"], [
                [a["component"], fmt(100 * a["share"]),
                 fmt(100 * next((b["share"] for b in prof["inclusive_by_component"] if b["component"] == a["component"]), 0.0))]
                for a in prof["self_by_component"][:12]]))
            out.append("\n" + table(["self: function", "file", "%"], [
                [r["function"], r["file"], fmt(100 * r["share"])] for r in prof["self"][:20]]))
            out.append("\n" + table(["inclusive (Syncline code): function", "file", "%"], [
                [r["function"], r["file"], fmt(100 * r["share"])] for r in prof["syncline_inclusive"][:20]
                if r["function"] not in ("<module>", "main", "_serve", "run_server")]))
    if "commits" in results:
        cm = results["commits"]
        out.append("\n## Store commits (SQLite WAL, synchronous=FULL)\n")
        out.append(table(["in process: writers", "updates/s", "commits/s", "mean batch", "p50 wait ms", "p99 wait ms",
                          "CPU us/update"], [
            [r["writers"], r["updates_per_s"], r["commits_per_s"], r["mean_batch"], r["commit_wait_ms"]["p50"],
             r["commit_wait_ms"]["p99"], r["cpu_us_per_update"]] for r in cm["store"]]))
        out.append("\n" + table(["through the relay: peers with acks", "acked/s", "commits/s", "mean batch",
                                 "p50 ack ms", "p99 ack ms", "relay CPU us/update"], [
            [r["writers"], r["acked_per_s"], r["commits_per_s"], r["mean_batch"], r["ack_latency_ms"]["p50"],
             r["ack_latency_ms"]["p99"], r["server_cpu_us_per_update"]] for r in cm["relay"]]))
    if "cold_load" in results:
        cl = results["cold_load"]
        out.append(f"\n## Cold room load (snapshot = compacted with a {cl['tail_after_snapshot']}-update tail)\n")
        out.append(table(["shape", "updates", "stored as", "relay cold ms", "relay warm ms", "load ms (in process)",
                          "apply ms", "stored bytes", "state bytes"], [
            [r["shape"], r["updates"], r["mode"], r["relay_cold_ms"], r["relay_warm_ms"],
             r["in_process"]["store_load_ms"], r["in_process"]["apply_ms"],
             r.get("snapshot_bytes", r.get("log_bytes")), r["state_bytes"]] for r in cl["rows"]]))
        if cl.get("target_100k_snapshot_under_50ms"):
            out.append(f"\n100k-update room opens in < 50 ms with snapshots: {cl['target_100k_snapshot_under_50ms']}")
    if "rss" in results:
        rs = results["rss"]
        out.append("\n## Relay RSS per open room\n")
        rows = []
        for mode in ("left", "connected", "connected_deflate"):
            for r in rs.get(mode, []):
                rows.append([mode, r["rooms"], r.get("connections", 0), r["rss_mib"], r.get("kib_per_room")])
        out.append(table(["clients", "rooms", "connections", "RSS MiB", "KiB per room (+connection)"], rows))
        out.append("\n" + table(["rooms", "KiB per connection", "KiB per connection (permessage-deflate)"], [
            [r["rooms"], r.get("connected_kib_per_connection"), r.get("connected_deflate_kib_per_connection")]
            for r in rs["per_connection"]]))
    return "\n".join(out)
