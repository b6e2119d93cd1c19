"""Means with Student-t confidence intervals (clipped to a metric's range for display), log-log slopes,
paired differences over seeds (Holm-adjusted, with the minimal detectable effect) and pooled least-squares trends."""
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


# -- paired comparisons over seeds, as a reviewer reads them ---------------------------------------------
ALPHA = 0.05  # the test level of every verdict
POWER = 0.8  # the power at which a minimal detectable effect is quoted


def minimal_detectable_effect(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference a two-sided paired t-test on ``n`` pairs whose differences
    have standard deviation ``sd`` detects with probability ``power`` at level ``alpha``
    (statsmodels' ``TTestPower``: effect size in units of ``sd``). NaN for fewer than two pairs."""
    from statsmodels.stats.power import TTestPower

    if n < 2 or not math.isfinite(sd):
        return math.nan
    if sd == 0.0:
        return 0.0
    d = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power, alternative="two-sided")
    return float(d) * sd


def verdict(n: int, p_adjusted: float, mde: float, mean: float = math.nan) -> str:
    """The one vocabulary of every comparison: ``differs, adjusted p = …`` or ``not distinguishable
    (adjusted p = …; the design detects … with 80 % power): effects inside its interval cannot be
    excluded`` (or ``one seed: no test``). The minimal detectable effect is at α 0.05 before Holm's
    adjustment: after it, only larger effects are detected with that power."""
    if n < 2 or not math.isfinite(p_adjusted):
        return "one seed: no test" if n < 2 else "identical on every seed"
    if p_adjusted < ALPHA:
        return f"differs ({mean:+.3f}), adjusted p = {p_adjusted:.3g}" if math.isfinite(mean) else \
            f"differs, adjusted p = {p_adjusted:.3g}"
    return (f"not distinguishable (adjusted p = {p_adjusted:.2g}; the design detects {mde:.3g} with 80 % power): "
            "effects inside its interval cannot be excluded")


def paired_differences(table, reference: str, variants=None, metrics=None, by: str = "variant", pair: str = "seed",
                       level: float = 0.95):
    """Each variant minus ``reference``, paired on ``pair`` (the seed: same data order, same initial
    draw), one row per (variant, metric):

    ``variant, reference, metric, n, mean, low, high`` (the paired ``level`` t-interval), ``sd`` (of the
    differences), ``p`` (paired t-test), ``p_adjusted`` (Holm over the rows of the same metric: each
    metric's comparisons in the table are one family), ``mde`` (:func:`minimal_detectable_effect`),
    ``verdict`` (:func:`verdict`) and ``per_seed`` (the differences).

    ``table``: long rows with columns ``by``, ``pair``, ``metric``, ``value`` (as
    :func:`alignlib.experiments.sweep.tidy`); ``variants``: which to compare (default: all but the reference).
    """
    import pandas as pd

    table = table.dropna(subset=["value"])
    if metrics is not None:
        table = table[table.metric.isin(list(metrics))]
    wide = table.pivot_table(index=[by, pair], columns="metric", values="value", aggfunc="mean")
    present = list(dict.fromkeys(table[by]))
    if reference not in present:
        raise ValueError(f"reference {reference!r} is not among the {by}s: {present}")
    variants = [v for v in (present if variants is None else variants) if v != reference and v in present]
    rows = []
    for variant in variants:
        difference = wide.loc[variant] - wide.loc[reference]
        for metric in wide.columns:
            d = difference[metric].dropna()
            n = len(d)
            if n == 0:
                continue
            mean, low, high = mean_ci(d.to_numpy(), level)
            sd = float(d.std(ddof=1)) if n > 1 else math.nan
            p = float(stats.ttest_1samp(d.to_numpy(), 0.0).pvalue) if n > 1 and sd > 0 else math.nan
            rows.append({by: variant, "reference": reference, "metric": metric, "n": n, "mean": mean, "low": low,
                         "high": high, "sd": sd, "p": p, "mde": minimal_detectable_effect(sd, n),
                         "per_seed": [round(float(v), 4) for v in d]})
    result = pd.DataFrame(rows, columns=[by, "reference", "metric", "n", "mean", "low", "high", "sd", "p", "mde",
                                         "per_seed"])
    return adjusted(result)


def adjusted(result, family: str = "metric"):
    """``result`` (rows with ``n, mean, p, mde``) with ``p_adjusted`` (Holm over the rows of each
    ``family``: by default each metric's comparisons are one family) and ``verdict`` (:func:`verdict`)."""
    from statsmodels.stats.multitest import multipletests

    result = result.reset_index(drop=True).assign(p_adjusted=math.nan)
    for _, group in result.groupby(family):
        tested = group[group.p.notna()]
        if len(tested):
            result.loc[tested.index, "p_adjusted"] = multipletests(tested.p.to_numpy(), alpha=ALPHA, method="holm")[1]
    result["verdict"] = [verdict(n, p, m, mean) for n, p, m, mean in
                         zip(result.n, result.p_adjusted, result.mde, result["mean"])]
    return result


def paired_families(table, groups: dict, metrics=None, by: str = "variant", pair: str = "seed", level: float = 0.95):
    """:func:`paired_differences` of several reference models at once, ``groups`` = ``{reference:
    variants}``, Holm-adjusted over the whole table per metric (every comparison of a table is one
    family, whichever reference it is made against)."""
    import pandas as pd

    parts = [paired_differences(table, reference, variants, metrics, by, pair, level)
             for reference, variants in groups.items() if variants]
    return adjusted(pd.concat(parts).drop(columns=["p_adjusted", "verdict"]))


def trend(table, formula: str, terms=None, level: float = 0.95):
    """A pooled least-squares model (statsmodels' OLS on ``formula``, e.g. ``"MAE ~ x + C(seed)"``)
    over the rows of ``table`` (one row per run), one row per coefficient:

    ``term, coef, low, high`` (its ``level`` t-interval), ``se``, ``p`` (t-test of 0), ``n`` (runs),
    ``df`` (residual degrees of freedom), ``mde`` (the smallest coefficient the fit detects with
    power :data:`POWER` at :data:`ALPHA`, from the noncentral t with ``df`` degrees of freedom),
    ``p_adjusted`` (Holm over the ``terms`` shown: one family) and ``verdict``.
    ``terms``: the coefficients to keep (default: all but the intercept)."""
    import pandas as pd
    import statsmodels.formula.api as smf

    fit = smf.ols(formula, data=table).fit()
    interval = fit.conf_int(1 - level)
    terms = [t for t in fit.params.index if t != "Intercept"] if terms is None else list(terms)
    n, df = int(fit.nobs), float(fit.df_resid)
    rows = [{"term": t, "coef": float(fit.params[t]), "low": float(interval.loc[t, 0]), "high": float(interval.loc[t, 1]),
             "se": float(fit.bse[t]), "p": float(fit.pvalues[t]), "n": n, "df": df,
             # a coefficient's t statistic is coef / se on df degrees of freedom: a one-sample t-test
             # of df + 1 values whose standard deviation is se * sqrt(df + 1) has the same power
             "mde": minimal_detectable_effect(float(fit.bse[t]) * math.sqrt(df + 1), int(df) + 1),
             "mean": float(fit.params[t]), "family": "trend"} for t in terms]
    return adjusted(pd.DataFrame(rows), family="family").drop(columns=["mean", "family"])


def records(table) -> list[dict]:
    """A results table as JSON-able rows (NaN as None), as a sweep stores its ``statistics``."""
    import json

    return json.loads(table.to_json(orient="records"))
