"""report.png: latency vs accuracy of every measured candidate, the Pareto front joined, the chosen one
starred, the accuracy budget as a dashed line. matplotlib with the Agg backend (no display needed)."""
from __future__ import annotations

import io
from collections.abc import Sequence

from ..errors import InputError
from .choose import Row


def import_pyplot():
    try:
        import matplotlib
    except ImportError:
        raise InputError("optimize draws report.png with matplotlib: pip install 'yolor-deploy[optimize]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def draw_chart(rows: Sequence[Row], reference: Row, budget: float, metric: str, title: str) -> bytes:
    """PNG bytes of the chart."""
    plt = import_pyplot()
    pts = [(r, float(r.p50), 100 * float(r.accuracy)) for r in rows
           if r.ok and r.p50 is not None and r.accuracy is not None]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    try:
        for r, x, y in pts:
            ax.scatter([x], [y], s=160 if r.chosen else 40, marker="*" if r.chosen else "o",
                       color="tab:red" if r.chosen else ("tab:blue" if r.pareto else "tab:gray"), zorder=3)
            ax.annotate(f"{r.name} ({r.speedup or 1:.2f}x)", (x, y), textcoords="offset points",
                        xytext=(6, 4), fontsize=8)
        front = sorted((x, y) for r, x, y in pts if r.pareto)
        if len(front) > 1:
            ax.step([x for x, _ in front], [y for _, y in front], where="post", color="tab:blue", alpha=0.6,
                    label="Pareto front")
        if reference.accuracy is not None:
            ax.axhline(100 * reference.accuracy - budget, color="tab:red", ls="--", lw=1,
                       label=f"budget: {budget:g} point(s) below fp32")
        ax.set_xlabel("latency p50 (ms, interleaved run)")
        ax.set_ylabel(f"{metric}, %")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right")
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)
