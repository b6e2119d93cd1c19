"""Plots of sweep results: curves with confidence bands, intervals with the reference lines, λ
heatmaps, log-log scaling with fitted slopes.

Each takes a matplotlib ``ax`` and a table from :func:`alignlib.experiments.stats.summary`
(columns: the group keys, ``metric``, ``mean``, ``ci_low``, ``ci_high``) or, for scaling, the tidy
table of the efficiency sweep.
"""
from __future__ import annotations

import numpy as np

from alignlib.experiments.stats import loglog_slope


def curves_with_bands(ax, summary, x: str, group: str, metric: str, scale: float = 1.0) -> None:
    """One line per ``group`` of the mean against ``x``, shaded between the interval's ends."""
    rows = summary[summary.metric == metric]
    for name, part in rows.groupby(group, sort=False):
        part = part.sort_values(x)
        line, = ax.plot(part[x], scale * part["mean"], "o-", label=name)
        if part["ci_low"].notna().all():
            ax.fill_between(part[x], scale * part["ci_low"], scale * part["ci_high"], color=line.get_color(), alpha=0.2)
    ax.set(xlabel=x, ylabel=metric)


def intervals(ax, summary, group: str, metric: str) -> None:
    """Horizontal mean and interval per ``group`` (top to bottom in table order)."""
    rows = summary[summary.metric == metric].iloc[::-1]
    y = np.arange(len(rows))
    ax.errorbar(rows["mean"], y, xerr=[rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]], fmt="o", capsize=3)
    ax.set_yticks(y, rows[group])
    ax.set(xlabel=metric)


REFERENCE_STYLES = {"constant": ":", "text_only": "-.", "set_level": "--", "bound": "-"}


def reference_lines(ax, references, metric: str, vertical: bool = True) -> None:
    """The mean of each reference line (:func:`alignlib.experiments.training.reference_summary`) as a
    grey line across the plot: vertical for :func:`intervals`, horizontal for curves."""
    if references is None:
        return
    for name, style in REFERENCE_STYLES.items():
        found = references[(references.reference == name) & (references.metric == metric)]
        if len(found):
            value = found["mean"].item()
            draw = ax.axvline if vertical else ax.axhline
            draw(value, color="grey", linestyle=style, linewidth=1, label=f"{name} {value:.2f}")


def heatmap(ax, summary, metric: str, rows: str = "lambda_ot", columns: str = "lambda_mmd", fmt: str = ".3f") -> None:
    """The mean of ``metric`` over a grid of two factors, annotated."""
    grid = summary[summary.metric == metric].pivot(index=rows, columns=columns, values="mean")
    image = ax.imshow(grid.to_numpy(), cmap="viridis", origin="lower")
    ax.set_xticks(range(grid.shape[1]), [f"{v:g}" for v in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{v:g}" for v in grid.index])
    for (i, j), value in np.ndenumerate(grid.to_numpy()):
        ax.text(j, i, format(value, fmt), ha="center", va="center", color="w", fontsize=8)
    ax.set(xlabel=columns, ylabel=rows, title=metric)
    ax.figure.colorbar(image, ax=ax, shrink=0.8)


def scaling(ax, table, metric: str) -> dict[str, float]:
    """Log-log ``metric`` against ``length`` per model, a fitted slope per model (over its measured
    points), out-of-memory and time-out points marked at the top. Returns the slopes."""
    slopes = {}
    ok = table[(table.metric == metric) & (table.status == "ok")]
    top = ok["value"].max() if len(ok) else 1.0
    for model, part in ok.groupby("model", sort=False):
        part = part.sort_values("length")
        slope = loglog_slope(part["length"], part["value"]) if len(part) >= 2 else float("nan")
        slopes[model] = slope
        line, = ax.loglog(part["length"], part["value"], "o-", label=f"{model} (slope {slope:.2f})")
        failed = table[(table.model == model) & table.status.isin(["oom", "timeout"])].drop_duplicates("run")
        for _, row in failed.iterrows():
            ax.plot(row["length"], 1.5 * top, "x", color=line.get_color(), markersize=10)
            ax.annotate(row["status"], (row["length"], 1.5 * top), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xlabel="tokens per modality", ylabel=metric)
    return slopes
