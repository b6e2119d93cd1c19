"""Means with Student-t confidence intervals (clipped to a metric's range for display), and log-log slopes."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)`` of the two-sided ``level`` t-interval ``mean ± t_{n-1} s / sqrt(n)``.

    ``values``: 1-d, finite. With one value the interval is ``(nan, nan)``: it cannot be estimated.
    """
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ValueError("values: empty")
    if not np.isfinite(x).all():
        raise ValueError(f"values: not all finite: {x.tolist()}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    mean = float(x.mean())
    if x.size == 1:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, mean - half, mean + half


def summary(table, by: list[str], level: float = 0.95):
    """Per group of ``by`` and metric: ``n``, ``mean``, ``ci_low``, ``ci_high`` (a tidy table in, one out).

    ``table``: the long table of :func:`alignlib.experiments.sweep.tidy` (columns ``metric``, ``value``).
    """
    import pandas as pd

    rows = []
    table = table.dropna(subset=["value"])
    for key, group in table.groupby([*by, "metric"], sort=False, dropna=False):
        mean, low, high = mean_ci(group["value"].to_numpy(), level)
        rows.append({**dict(zip([*by, "metric"], key)), "n": len(group), "mean": mean, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


# the range of a bounded metric: a t-interval of few seeds can reach past it
RANGES = {"Non0_acc_2": (0.0, 1.0), "Non0_F1_score": (0.0, 1.0), "Corr": (-1.0, 1.0), "MAE": (0.0, math.inf)}


def clipped_summary(table, by: list[str], level: float = 0.95):
    """:func:`summary` with each interval clipped to its metric's range in :data:`RANGES` (for display only)."""
    result = summary(table, by, level)
    low = result.metric.map(lambda m: RANGES.get(m, (-math.inf, math.inf))[0])
    high = result.metric.map(lambda m: RANGES.get(m, (-math.inf, math.inf))[1])
    return result.assign(ci_low=result.ci_low.clip(lower=low, upper=high), ci_high=result.ci_high.clip(lower=low, upper=high))


def mean_of(table, metric: str, **where) -> float:
    """The ``mean`` of ``metric`` in a :func:`summary` table, in the one row where each column ``where`` names has its value."""
    rows = table[table.metric == metric]
    for key, value in where.items():
        rows = rows[rows[key] == value]
    return rows["mean"].item()


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x`` (1: linear growth, 2: quadratic)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 2 or x.shape != y.shape or (x <= 0).any() or (y <= 0).any():
        raise ValueError(f"need two or more positive (x, y) pairs of equal length, got {x.size} and {y.size}")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
