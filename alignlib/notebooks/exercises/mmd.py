"""The checks of notebook 02 · MMD."""
from __future__ import annotations

import math

import torch

from alignlib.notebooks.exercises.core import (Mismatch, as_number, call_answer, compare, compare_number,
                                               exercise, seeded)


def _clouds(m: int, n: int, dim: int, shift: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = seeded(seed)
    x = torch.randn(m, dim, generator=generator, dtype=torch.float64)
    return x, torch.randn(n, dim, generator=generator, dtype=torch.float64) + shift


def _squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x, y).pow(2)


@exercise
def check_kernel_matrix(answer) -> str:
    """``kernel_matrix(x (m, d), y (n, d), gamma) -> (m, n)`` against scikit-learn's ``rbf_kernel``."""
    from sklearn.metrics.pairwise import rbf_kernel

    for case, (m, n, dim, gamma, seed) in {"6 x 4 tokens, gamma 0.5": (6, 4, 3, 0.5, 6),
                                           "5 x 7 tokens, gamma 1/8": (5, 7, 8, 0.125, 7)}.items():
        x, y = _clouds(m, n, dim, 0.5, seed)
        got = call_answer(answer, case, x, y, gamma)
        expected = torch.from_numpy(rbf_kernel(x.numpy(), y.numpy(), gamma=gamma))
        sq = _squared_distances(x, y)
        mistakes = {
            "the distance is not squared: k(x, y) = exp(-gamma |x - y|^2)": torch.exp(-gamma * sq.sqrt()),
            "gamma read as the width sigma of Eq. 7, exp(-|x - y|^2 / (2 gamma^2)): here gamma multiplies the "
            "squared distance (reading A)": torch.exp(-sq / (2 * gamma**2)),
            "gamma divides the squared distance: it multiplies it, exp(-gamma |x - y|^2)": torch.exp(-sq / gamma),
            "the exponent's sign: a Gaussian kernel decays with the distance": torch.exp(gamma * sq),
        }
        compare(got, expected, case, mistakes, axes=" (m, n)")
    return "matches scikit-learn's rbf_kernel on two pairs of token sets"


@exercise
def check_unbiased_mmd2(answer) -> str:
    """``unbiased_mmd2(x (m, d), y (n, d), gamma) -> float`` against
    ``alignlib.align.mmd.mmd2(..., estimator="unbiased")``, with ``m != n``."""
    from alignlib.align import mmd

    for case, (m, n, dim, gamma, seed) in {"7 x 11 tokens, gamma 0.3": (7, 11, 3, 0.3, 8),
                                           "5 x 4 tokens, gamma 1": (5, 4, 2, 1.0, 9)}.items():
        x, y = _clouds(m, n, dim, 0.4, seed)
        got = as_number(call_answer(answer, case, x, y, gamma), case)
        expected = mmd.mmd2(x[None], y[None], bandwidth=gamma, estimator="unbiased").item()
        k_xx, k_yy, k_xy = (torch.exp(-gamma * _squared_distances(u, v)) for u, v in ((x, x), (y, y), (x, y)))
        off_x, off_y = k_xx.sum() - m, k_yy.sum() - n
        mistakes = {
            "the within-set sums keep their diagonal k(x_i, x_i) = 1: that is the biased V-statistic; the unbiased "
            "one leaves i = i' out": (k_xx.mean() + k_yy.mean() - 2 * k_xy.mean()).item(),
            "with the diagonal left out, a within-set sum has m (m - 1) terms, not m^2":
                (off_x / m**2 + off_y / n**2 - 2 * k_xy.mean()).item(),
            "the cross term counts twice: - 2/(m n) sum_ij k(x_i, y_j)":
                (off_x / (m * (m - 1)) + off_y / (n * (n - 1)) - k_xy.mean()).item(),
        }
        compare_number(got, expected, case, mistakes)
    return "matches alignlib.align.mmd.mmd2(..., estimator='unbiased') on sets of unequal sizes"


@exercise
def check_equivalent_gamma(answer) -> str:
    """``equivalent_gamma(gamma, alpha) -> gamma'`` such that the kernel of features scaled by
    ``alpha`` under ``gamma`` equals the kernel of the original features under ``gamma'``; checked
    on :func:`alignlib.align.mmd.gaussian_kernel` matrices."""
    from alignlib.align import mmd

    x, y = _clouds(5, 6, 4, 0.3, 10)
    for case, (gamma, alpha) in {"gamma 1/8, alpha 0.1": (0.125, 0.1), "gamma 2, alpha 3": (2.0, 3.0),
                                 "gamma 0.5, alpha 0.5": (0.5, 0.5)}.items():
        got = as_number(call_answer(answer, case, gamma, alpha), case)
        if got <= 0:
            raise Mismatch(f"{case}: gamma' must be positive, got {got:.4g}")
        scaled = mmd.gaussian_kernel(alpha * x[None], alpha * y[None], torch.tensor([[gamma]], dtype=torch.float64))
        mine = mmd.gaussian_kernel(x[None], y[None], torch.tensor([[got]], dtype=torch.float64))
        if torch.allclose(mine, scaled, rtol=1e-9, atol=1e-12):
            continue
        mistakes = {"off by a factor alpha: the kernel sees the squared distance |alpha x - alpha y|^2": gamma * alpha,
                    "inverted: shrinking the features (alpha < 1) widens the kernel, so gamma' is smaller than gamma":
                        gamma / alpha**2}
        compare_number(got, gamma * alpha**2, case, mistakes)
    return "the kernel of the scaled features equals the original features' kernel at your gamma', in three cases"


@exercise
def check_peak_gamma(answer) -> str:
    """``peak_gamma(shift, dim) -> gamma``: the population MMD^2 between N(0, I_d) and
    N(shift 1, I_d) at the answer must be within 0.1 % of its maximum over gamma (found by SciPy
    on :func:`alignlib.align.mmd.gaussian_mmd2`)."""
    from scipy.optimize import minimize_scalar

    from alignlib.align import mmd

    for case, (shift, dim) in {"shift 0.5, d = 8": (0.5, 8), "shift 2, d = 2": (2.0, 2)}.items():
        got = as_number(call_answer(answer, case, shift, dim), case)
        if got <= 0:
            raise Mismatch(f"{case}: gamma must be positive, got {got:.4g} (a log of gamma?)")
        best = minimize_scalar(lambda log_gamma: -mmd.gaussian_mmd2(shift, math.exp(log_gamma), dim),
                               bounds=(-12.0, 6.0), method="bounded", options={"xatol": 1e-10})
        peak, value = math.exp(best.x), -best.fun
        mine = mmd.gaussian_mmd2(shift, got, dim)
        if mine >= (1 - 1e-3) * value:
            continue
        if math.isclose(got, 1 / dim):
            raise Mismatch(f"{case}: gamma = 1/d is the paper's choice, not the peak of this curve")
        side = "larger" if got < peak else "smaller"
        raise Mismatch(f"{case}: at gamma {got:.4g} the population MMD^2 is {100 * (1 - mine / value):.1f} % below "
                       f"its peak, which lies at a {side} gamma")
    return "your gamma reaches the peak of the population MMD^2 (within 0.1 %) in both cases"
