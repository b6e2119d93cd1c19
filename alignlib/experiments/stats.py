"""Means with Student-t confidence intervals, and log-log slopes."""
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

    ``table``: the long table of :func:`alignlib.experiments.runner.tidy` (columns ``metric``, ``value``).
    """
    import pandas as pd

    rows = []
    table = table.dropna(subset=["value"])
    for key, group in table.groupby([*by, "metric"], sort=False, dropna=False):
        mean, low, high = mean_ci(group["value"].to_numpy(), level)
        rows.append({**dict(zip([*by, "metric"], key)), "n": len(group), "mean": mean, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x`` (1: linear growth, 2: quadratic)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 2 or x.shape != y.shape or (x <= 0).any() or (y <= 0).any():
        raise ValueError(f"need two or more positive (x, y) pairs of equal length, got {x.size} and {y.size}")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
