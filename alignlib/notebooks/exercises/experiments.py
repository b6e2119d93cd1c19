"""The checks of notebook 08 · the papers' experiments."""
from __future__ import annotations

import math

import numpy as np
import torch

from alignlib.notebooks.exercises.core import Mismatch, as_tensor, call_answer, compare, exercise


@exercise
def check_mean_interval(answer) -> str:
    """``mean_interval(values (n,)) -> (mean, low, high)``: the 95 % Student-t interval, against
    :func:`alignlib.experiments.stats.mean_ci` and SciPy's ``t.interval``."""
    from scipy import stats as scipy_stats

    for case, values in {"3 seeds": [0.91, 0.88, 0.95], "5 seeds": [1.02, 0.97, 1.10, 0.99, 1.04]}.items():
        x = np.asarray(values)
        got = as_tensor(call_answer(answer, case, torch.tensor(values, dtype=torch.float64)), case).flatten()
        if got.numel() != 3:
            raise Mismatch(f"{case}: expected three numbers (mean, low, high), got {got.numel()}")
        scale = x.std(ddof=1) / math.sqrt(x.size)
        low, high = scipy_stats.t.interval(0.95, x.size - 1, loc=x.mean(), scale=scale)
        mean = x.mean()
        mistakes = {
            f"a normal interval (1.96): with {x.size} values the interval uses Student's t with {x.size - 1} "
            "degrees of freedom": torch.tensor([mean, mean - 1.96 * scale, mean + 1.96 * scale]),
            "the standard deviation divides by n: the sample standard deviation divides by n - 1 (ddof=1)":
                torch.tensor([mean, *scipy_stats.t.interval(0.95, x.size - 1, loc=mean, scale=x.std() / math.sqrt(x.size))]),
            f"t with n = {x.size} degrees of freedom: an interval for a mean has n - 1":
                torch.tensor([mean, *scipy_stats.t.interval(0.95, x.size, loc=mean, scale=scale)]),
            "the interval of one value (mean ± t s), not of the mean: divide s by sqrt(n)":
                torch.tensor([mean, *scipy_stats.t.interval(0.95, x.size - 1, loc=mean, scale=x.std(ddof=1))]),
        }
        compare(got, torch.tensor([mean, low, high]), case, mistakes, axes=" (mean, low, high)")
    return "matches stats.mean_ci and scipy.stats.t.interval"


@exercise
def check_paired_interval(answer) -> str:
    """``paired_interval(a (n,), b (n,)) -> (mean, low, high)``: the 95 % interval of the mean
    difference ``a - b`` over paired seeds, against SciPy's ``ttest_rel(a, b).confidence_interval()``."""
    from scipy import stats as scipy_stats

    a = np.array([0.912, 0.934, 0.905, 0.921])  # one variant, seeds 0-3
    b = np.array([0.930, 0.951, 0.917, 0.940])  # another, the same seeds (the seed moves both)
    case = "4 paired seeds"
    got = as_tensor(call_answer(answer, case, torch.tensor(a), torch.tensor(b)), case).flatten()
    if got.numel() != 3:
        raise Mismatch(f"{case}: expected three numbers (mean, low, high), got {got.numel()}")
    interval = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
    unpaired = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    mistakes = {
        "unpaired (two independent samples): pair each seed's two runs and take the interval of the differences":
            torch.tensor([(a - b).mean(), unpaired.low, unpaired.high]),
        "the sign: the difference is a - b": -torch.tensor([(a - b).mean(), interval.high, interval.low]),
    }
    compare(got, torch.tensor([(a - b).mean(), interval.low, interval.high]), case, mistakes, axes=" (mean, low, high)")
    return "matches scipy.stats.ttest_rel(a, b).confidence_interval()"


def _lambda_grid_case(seed: int, drop: tuple = ()):
    """A small λ grid (λ in {0, 1e-3, 1e-2, 1e-1} on both axes, two seeds) whose MAE rises by 0.01 per
    decade of λ_OT, with a seed offset and noise; the runs in ``drop`` (indices) left out."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    values = (0.0, 1e-3, 1e-2, 1e-1)
    rows = [{"lambda_ot": ot, "lambda_mmd": mmd, "seed": s} for s in (0, 1) for ot in values for mmd in values]
    table = pd.DataFrame(rows).drop(index=list(drop)).reset_index(drop=True)
    log_ot = np.log10(table.lambda_ot.where(table.lambda_ot > 0, 1e-3))
    table["MAE"] = 0.9 + 0.01 * log_ot - 0.02 * (table.lambda_ot == 0) + 0.03 * table.seed + rng.normal(0, 0.01, len(table))
    return table


def _slope_with(design, mae, quantile) -> list[float]:
    """Least squares of ``mae`` on ``design`` (intercept first, the λ_OT log second): the second
    coefficient and its interval with the t (or normal) ``quantile(df)`` given."""
    coef, *_ = np.linalg.lstsq(design, mae, rcond=None)
    df = len(mae) - design.shape[1]
    sigma2 = ((mae - design @ coef) ** 2).sum() / df
    se = math.sqrt(sigma2 * np.linalg.inv(design.T @ design)[1, 1])
    return [coef[1], coef[1] - quantile(df) * se, coef[1] + quantile(df) * se]


@exercise
def check_lambda_ot_slope(answer) -> str:
    """``lambda_ot_slope(lambda_ot (n,), lambda_mmd (n,), seed (n,), mae (n,)) -> (coef, low, high)``:
    the λ_OT slope per decade of the pooled least-squares model of notebook 08 (log10 of each λ, the
    λ = 0 runs at the smallest weight with an indicator each, the seed as a category) and its 95 %
    t-interval, against :func:`alignlib.experiments.stats.trend` (statsmodels' OLS)."""
    from scipy import stats as scipy_stats

    from alignlib.experiments import lambda_grid, stats

    t = lambda df: scipy_stats.t.ppf(0.975, df)  # noqa: E731
    for case, table in {"a 4 x 4 grid, two seeds": _lambda_grid_case(0),
                        "the same grid with five runs of seed 1 missing": _lambda_grid_case(1, drop=(16, 17, 18, 19, 21))}.items():
        inputs = [torch.tensor(table[c].to_numpy(), dtype=torch.float64) for c in ("lambda_ot", "lambda_mmd", "seed", "MAE")]
        got = as_tensor(call_answer(answer, case, *inputs), case).flatten()
        if got.numel() != 3:
            raise Mismatch(f"{case}: expected three numbers (coef, low, high), got {got.numel()}")
        regressors = lambda_grid.regressors(table)
        row = stats.trend(regressors, lambda_grid.FORMULA, terms=["log10_ot"]).iloc[0]
        columns = {name: regressors[name].to_numpy() for name in ("log10_ot", "ot_off", "log10_mmd", "mmd_off")}
        ones, seed1, mae = np.ones(len(table)), (table.seed == 1).to_numpy(float), table.MAE.to_numpy()
        full = np.column_stack([ones, columns["log10_ot"], columns["ot_off"], columns["log10_mmd"], columns["mmd_off"], seed1])
        natural = full.copy()
        natural[:, 1] *= math.log(10)
        kept = table.lambda_ot.to_numpy() > 0
        mistakes = {
            "a normal interval (1.96): the coefficient's interval uses Student's t with n - p degrees of freedom":
                torch.tensor(_slope_with(full, mae, lambda df: 1.96)),
            "the seed is missing from the model: each seed shifts all its runs, a column of its own (one per seed "
            "but the first)": torch.tensor(_slope_with(full[:, :5], mae, t)),
            "natural logarithms: a slope per decade uses log10 of the weight":
                torch.tensor(_slope_with(natural, mae, t)),
            "the λ_OT = 0 runs were dropped: keep them, with their indicator":
                torch.tensor(_slope_with(full[kept][:, [0, 1, 3, 4, 5]], mae[kept], t)),
        }
        compare(got, torch.tensor([row.coef, row.low, row.high]), case, mistakes, axes=" (coef, low, high)")
    return "matches stats.trend (statsmodels' OLS) on both grids"
