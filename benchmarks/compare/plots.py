"""PNG plots of ``python -m benchmarks.compare`` results (matplotlib optional)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import ROOT
from benchmarks.peers import LABELS

# -- plots ---------------------------------------------------------------------------------------

COLORS = {"syncline": "tab:blue", "node": "tab:green", "pycrdt": "tab:orange"}


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
    return written



def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
