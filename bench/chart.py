"""The benchmark as a picture: throughput and tail latency of every server, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.servers import Result, Server

COLORS = {1: "#9ecae1", 8: "#08519c"}


def draw(todo: list[Server], batch: list[Result], batch_size: int, path: Path) -> Path:
    """Write a PNG: req/s at 1 and 8 connections, p99 at 8 connections (log scale), and the
    batch endpoint's patients/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [s for s in todo if s.results]
    panels = (2 if measured else 0) + (1 if batch else 0)
    if not panels:
        raise ValueError("nothing was measured")
    fig, axes = plt.subplots(1, panels, figsize=({1: 5.5, 2: 11, 3: 15}[panels], 4.8))
    axes = list(axes) if panels > 1 else [axes]
    if measured:
        _single_requests(measured, axes[0], axes[1])
    if batch:
        ax = axes[-1]
        patients = [r.rps * batch_size for r in batch]
        bars = ax.bar(
            [f"({r.target}) {r.connections} conn" for r in batch], patients, color="#238b45"
        )
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in patients], fontsize=8)
        ax.set(ylabel="patients/s", title=f"(e) POST /predict/batch, {batch_size:,} patients")
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle("make bench: one worker each, wrk on loopback, a different patient per request")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _single_requests(measured: list[Server], rps_ax: Any, p99_ax: Any) -> None:
    """req/s at 1 and 8 connections, and p99 at 8 connections (log scale), per server."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    labels = [f"({s.key}) {s.name}" for s in measured]
    y = list(range(len(measured)))
    for offset, conns in ((-0.2, 1), (0.2, 8)):
        values = [next((r.rps for r in s.results if r.connections == conns), 0) for s in measured]
        bars = rps_ax.barh([i + offset for i in y], values, 0.4, color=COLORS[conns])
        bars.set_label(f"{conns} connection{'s' if conns > 1 else ''}")
        rps_ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=7, padding=2)
    top = max(r.rps for s in measured for r in s.results)
    rps_ax.set(yticks=y, yticklabels=labels, xlabel="requests/s (higher is better)")
    rps_ax.set_xlim(0, top * 1.18)
    rps_ax.invert_yaxis()
    rps_ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    p99 = [next((r.p99_ms for r in s.results if r.connections == 8), 0) for s in measured]
    bars = p99_ax.barh(y, p99, 0.6, color="#cb181d")
    p99_ax.bar_label(bars, labels=[f"{v:.1f} ms" for v in p99], fontsize=7, padding=2)
    p99_ax.set(yticks=y, yticklabels=[], xscale="log", xlabel="p99 at 8 connections, ms (lower)")
    positive = [v for v in p99 if v > 0]
    if positive:
        p99_ax.set_xlim(min(positive) / 1.5, max(p99) * 3)
    p99_ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    p99_ax.xaxis.set_minor_formatter(NullFormatter())
    p99_ax.invert_yaxis()
