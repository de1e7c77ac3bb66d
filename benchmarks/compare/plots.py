"""PNG plots of ``python -m benchmarks.compare`` results (matplotlib optional)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import ROOT
from benchmarks.peers import LABELS

# -- plots ---------------------------------------------------------------------------------------

COLORS = {"syncline": "tab:blue", "node": "tab:green", "pycrdt": "tab:orange", "syncline-asgi": "tab:purple"}


def plot(results: dict[str, Any], out_dir: Path, stem: str) -> list[str] | None:
    """Write the PNGs; return their paths, or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[compare] matplotlib is not installed: no plots (pip install -e '.[bench]')", flush=True)
        return None
    written: list[str] = []
    f = results.get("fanout")
    if f and f.get("headline"):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        for k, r in f["headline"].items():
            pts = r.get("latency_cdf") or []
            if not pts:
                continue
            xs = [max(p[1], 0.01) for p in pts]
            ys = [p[0] for p in pts]
            ax1.plot(xs, ys, label=LABELS[k], color=COLORS.get(k))
            ax2.plot(xs, [max(1 - y, 1e-5) for y in ys], label=LABELS[k], color=COLORS.get(k))
        c = results["config"]
        for ax in (ax1, ax2):
            ax.set_xscale("log")
            ax.set_xlabel("edit -> observed by another client (ms)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        ax1.set_ylabel("fraction of deliveries")
        ax1.set_title(f"Latency CDF: {c['rooms']}x{c['clients']} clients, {c['rate']:g} edits/s each")
        ax2.set_yscale("log")
        ax2.set_ylabel("fraction slower (1 - CDF)")
        ax2.set_title("Tail")
        path = out_dir / f"{stem}-latency.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(_rel(path))
    if f and f.get("scaling"):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        offered: list[tuple[int, float]] = []
        for k in LABELS:
            pts = [(row["clients"], row[k]) for row in f["scaling"] if k in row]
            if not pts:
                continue
            ax1.plot([p[0] for p in pts], [p[1]["delivered_per_s"] for p in pts], marker="o", label=LABELS[k], color=COLORS.get(k))
            ax2.plot([p[0] for p in pts], [p[1]["latency_ms"]["p99"] for p in pts], marker="o", label=LABELS[k], color=COLORS.get(k))
            offered = [(p[0], p[1]["offered_deliveries_per_s"]) for p in pts]
        if offered:
            ax1.plot([p[0] for p in offered], [p[1] for p in offered], linestyle="--", color="gray", label="offered")
        ax1.set_xlabel("clients")
        ax1.set_ylabel("delivered updates/s")
        ax1.set_title(f"Throughput vs clients ({results['config']['rate']:g} edits/s per client)")
        ax2.set_xlabel("clients")
        ax2.set_ylabel("p99 latency (ms)")
        ax2.set_yscale("log")
        ax2.set_title("p99 vs clients")
        for ax in (ax1, ax2):
            ax.grid(True, alpha=0.3)
            ax.legend()
        path = out_dir / f"{stem}-throughput.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(_rel(path))
    written += _sweep_plots(plt, results, out_dir, stem)
    written += _rss_plot(plt, results, out_dir, stem)
    return written


def _save(plt: Any, fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return _rel(path)


def _sweep_plots(plt: Any, results: dict[str, Any], out_dir: Path, stem: str) -> list[str]:
    """Latency against offered rate and CPU per delivery against rate, from the saturation sweep."""
    sweep = results.get("saturation")
    if not sweep or not any(sweep["steps"].values()):
        return []
    written = []
    title = f"{sweep['rooms']} rooms x {sweep['clients']} clients, rising edit rate per client"
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for k, steps in sweep["steps"].items():
        done = [s for s in steps if "latency_ms" in s]
        if not done:
            continue
        xs = [s["offered_deliveries_per_s"] for s in done]
        ax.plot(xs, [s["latency_ms"]["p99"] for s in done], marker="o", color=COLORS.get(k), label=f"{LABELS[k]} p99")
        ax.plot(xs, [s["latency_ms"]["p50"] for s in done], marker=".", linestyle="--", color=COLORS.get(k),
                label=f"{LABELS[k]} p50")
        for s in done:
            if not s["passed"]:
                ax.annotate("x", (s["offered_deliveries_per_s"], s["latency_ms"]["p99"]), color="red",
                            ha="center", va="center", fontsize=14)
    ax.axhline(sweep["p99_bound_ms"], color="gray", linestyle=":", label=f"p99 bound {sweep['p99_bound_ms']:g} ms")
    ax.set_xlabel("offered deliveries/s")
    ax.set_ylabel("edit -> observed (ms)")
    ax.set_yscale("log")
    ax.set_title(f"Latency vs offered rate ({title}); x: step failed")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    written.append(_save(plt, fig, out_dir / f"{stem}-latency-vs-rate.png"))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for k, steps in sweep["steps"].items():
        done = [s for s in steps if s.get("cpu_us_per_delivery")]
        if done:
            ax.plot([s["offered_deliveries_per_s"] for s in done], [s["cpu_us_per_delivery"] for s in done],
                    marker="o", color=COLORS.get(k), label=LABELS[k])
    ax.set_xlabel("offered deliveries/s")
    ax.set_ylabel("server CPU per delivered update (us)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"CPU per delivery vs rate ({title})")
    ax.grid(True, alpha=0.3)
    ax.legend()
    written.append(_save(plt, fig, out_dir / f"{stem}-cpu-vs-rate.png"))
    return written


def _rss_plot(plt: Any, results: dict[str, Any], out_dir: Path, stem: str) -> list[str]:
    """Server RSS against idle connections held, from the capacity run's ramp."""
    cap = results.get("capacity")
    if not cap or not any(r.get("rss_curve") for r in cap["servers"].values()):
        return []
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for k, row in cap["servers"].items():
        curve = row.get("rss_curve") or []
        if curve:
            ax.plot([c[0] for c in curve], [c[1] for c in curve], marker=".", color=COLORS.get(k),
                    label=f"{LABELS[k]} ({row['kib_per_connection'] or 0:.0f} KiB/connection)")
    ax.set_xlabel("idle connections open")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"RSS vs connections ({cap['per_room']} per room, sync handshake then idle)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return [_save(plt, fig, out_dir / f"{stem}-rss-vs-connections.png")]


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
