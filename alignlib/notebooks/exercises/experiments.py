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
