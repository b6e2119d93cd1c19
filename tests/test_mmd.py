"""Global alignment (MMD) against independent sources: a float64 double loop, the closed form of
MMD between two Gaussians (and the library's closed form against a large sample), estimator
properties over many draws, and the permutation test's level."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from alignlib.align import mmd


def draw(batch, n, dim, mean=0.0, std=1.0, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return mean + std * torch.randn(batch, n, dim, generator=generator, dtype=dtype)


def brute_force_mmd2(x, y, gamma, unbiased=False):
    """Eq. 6 as three double loops over numpy arrays (one batch item)."""
    def k(u, v):
        return math.exp(-gamma * float(((u - v) ** 2).sum()))

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if not (unbiased and i == j))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if not (unbiased and i == j))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    if unbiased:
        return xx / (n * (n - 1)) + yy / (m * (m - 1)) - 2 * xy / (n * m)
    return xx / n**2 + yy / m**2 - 2 * xy / (n * m)


def gaussian_mmd2(mean_shift, var_x, var_y, dim, gamma):
    """Population MMD^2 between N(0, var_x I) and N(mean_shift e, var_y I) for k = exp(-gamma |u-v|^2).

    For Z ~ N(m, s I) in R^d: E exp(-gamma |Z|^2) = (1 + 2 gamma s)^(-d/2) exp(-gamma |m|^2 / (1 + 2 gamma s)).
    """
    def expected_kernel(sq_mean, var):
        return (1 + 2 * gamma * var) ** (-dim / 2) * math.exp(-gamma * sq_mean / (1 + 2 * gamma * var))

    shift_sq = mean_shift**2 * dim
    return expected_kernel(0, 2 * var_x) + expected_kernel(0, 2 * var_y) - 2 * expected_kernel(shift_sq, var_x + var_y)


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_matches_brute_force_loop(estimator):
    x, y = draw(2, 7, 3, seed=1), draw(2, 5, 3, mean=0.5, seed=2)
    got = mmd.mmd2(x, y, bandwidth=0.4, estimator=estimator)
    for k in range(2):
        expected = brute_force_mmd2(x[k].numpy(), y[k].numpy(), 0.4, unbiased=estimator == "unbiased")
        assert got[k].item() == pytest.approx(expected, abs=1e-12)


def test_gamma_is_one_over_d_by_default():
    x, y = draw(1, 6, 4, seed=3), draw(1, 6, 4, seed=4)
    assert mmd.mmd2(x, y).item() == pytest.approx(brute_force_mmd2(x[0].numpy(), y[0].numpy(), 1 / 4), abs=1e-12)


def test_multi_bandwidth_is_the_sum_of_kernels():
    x, y = draw(1, 6, 2, seed=5), draw(1, 4, 2, seed=6)
    total = mmd.mmd2(x, y, bandwidth=[0.1, 1.0, 5.0])
    parts = sum(mmd.mmd2(x, y, bandwidth=g) for g in (0.1, 1.0, 5.0))
    assert total.item() == pytest.approx(parts.item(), abs=1e-12)


def test_median_heuristic():
    x, y = draw(1, 5, 3, seed=7), draw(1, 4, 3, seed=8)
    pooled = torch.cat([x[0], y[0]]).numpy()
    distances = [np.linalg.norm(pooled[i] - pooled[j]) for i in range(9) for j in range(i + 1, 9)]
    median = sorted(distances)[(len(distances) - 1) // 2]  # torch.median takes the lower middle
    gamma = mmd.bandwidths(x, y, bandwidth="median")
    assert gamma.item() == pytest.approx(1 / (2 * median**2), rel=1e-10)


def test_masked_tokens_are_ignored():
    x, y = draw(1, 8, 3, seed=9), draw(1, 6, 3, seed=10)
    x_mask = torch.tensor([[True] * 5 + [False] * 3])
    y_mask = torch.tensor([[True] * 4 + [False] * 2])
    for estimator in ("biased", "unbiased"):
        padded = mmd.mmd2(x, y, x_mask, y_mask, estimator=estimator)
        alone = mmd.mmd2(x[:, :5], y[:, :4], estimator=estimator)
        assert padded.item() == pytest.approx(alone.item(), abs=1e-12)
    linear_padded = mmd.mmd2_linear(x, y, x_mask, y_mask)
    assert linear_padded.item() == pytest.approx(mmd.mmd2_linear(x[:, :5], y[:, :4]).item(), abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 8), m=st.integers(2, 8), dim=st.integers(1, 5), seed=st.integers(0, 1000))
def test_symmetric_and_zero_for_identical_sets(n, m, dim, seed):
    x, y = draw(1, n, dim, seed=seed), draw(1, m, dim, mean=0.3, seed=seed + 1)
    for estimator in ("biased", "unbiased"):
        assert mmd.mmd2(x, y, estimator=estimator).item() == pytest.approx(mmd.mmd2(y, x, estimator=estimator).item(), abs=1e-12)
    assert mmd.mmd2(x, x.clone()).item() == pytest.approx(0.0, abs=1e-12)
    assert mmd.mmd2(x, y).item() >= -1e-12


def test_unbiased_mean_matches_closed_form():
    dim, gamma, shift = 3, 0.25, 0.5
    x = draw(4000, 10, dim, seed=11)
    y = draw(4000, 12, dim, mean=shift, std=math.sqrt(2.0), seed=12)
    population = gaussian_mmd2(shift, 1.0, 2.0, dim, gamma)
    unbiased = mmd.mmd2(x, y, bandwidth=gamma, estimator="unbiased")
    standard_error = unbiased.std().item() / math.sqrt(len(unbiased))
    assert abs(unbiased.mean().item() - population) < 4 * standard_error
    biased = mmd.mmd2(x, y, bandwidth=gamma)
    assert biased.mean().item() > population + 4 * standard_error, "the V-statistic is biased upwards"
    linear = mmd.mmd2_linear(x, y, bandwidth=gamma)
    assert abs(linear.mean().item() - population) < 4 * linear.std().item() / math.sqrt(len(linear))


def test_unbiased_is_zero_in_expectation_for_one_distribution():
    x, y = draw(4000, 8, 2, seed=13), draw(4000, 8, 2, seed=14)
    values = mmd.mmd2(x, y, estimator="unbiased")
    assert abs(values.mean().item()) < 4 * values.std().item() / math.sqrt(len(values))
    assert (values < 0).any(), "a U-statistic can be negative"


def test_large_samples_match_closed_form():
    dim, gamma, shift = 2, 0.5, 1.0
    x, y = draw(1, 2000, dim, seed=15), draw(1, 2000, dim, mean=shift, seed=16)
    assert mmd.mmd2(x, y, bandwidth=gamma, estimator="unbiased").item() == pytest.approx(
        gaussian_mmd2(shift, 1.0, 1.0, dim, gamma), abs=0.01)


def test_permutation_test_level_and_power():
    null_x, null_y = draw(200, 20, 2, seed=17), draw(200, 20, 2, seed=18)
    p_null = mmd.permutation_test(null_x, null_y, n_permutations=200, seed=0)
    false_positive_rate = (p_null <= 0.05).float().mean().item()
    assert 0.01 <= false_positive_rate <= 0.10, false_positive_rate
    assert torch.equal(p_null, mmd.permutation_test(null_x, null_y, n_permutations=200, seed=0)), "seeded"
    shifted = draw(20, 20, 2, mean=1.0, seed=19)
    power = (mmd.permutation_test(null_x[:20], shifted, n_permutations=200) <= 0.05).float().mean().item()
    assert power >= 0.8, power


def test_differentiable_and_pulls_sets_together():
    x, y = draw(1, 16, 4, seed=20), draw(1, 16, 4, mean=2.0, seed=21)
    x = x.requires_grad_()
    before = mmd.mmd2(x, y)
    before.sum().backward()
    assert torch.isfinite(x.grad).all()
    with torch.no_grad():
        x_after = x - 5.0 * x.grad
    assert mmd.mmd2(x_after, y).item() < before.item()


def test_huge_features_stay_finite():
    x, y = draw(2, 10, 8, seed=22, dtype=torch.float32), draw(2, 9, 8, seed=23, dtype=torch.float32)
    for bandwidth in ("dim", "median"):
        value = mmd.mmd2(x * 1e4, y * 1e4, bandwidth=bandwidth)
        assert torch.isfinite(value).all()
    # At gamma = 1/d the scaled tokens are far apart: only the diagonal survives, MMD^2 = 1/Tm + 1/Tn.
    far = mmd.mmd2(x * 1e4, y * 1e4)
    assert far.tolist() == pytest.approx([1 / 10 + 1 / 9] * 2, abs=1e-6)
    assert torch.isfinite(mmd.mmd2_linear(x * 1e4, y * 1e4)).all()


@pytest.mark.parametrize(
    "x, y, kwargs, message",
    [
        (torch.randn(1, 4, 3), torch.randn(1, 5, 2), {}, "feature dims differ"),
        (torch.randn(1, 0, 3), torch.randn(1, 5, 3), {}, "empty sequence"),
        (torch.tensor([[[math.nan, 0.0]]]), torch.randn(1, 5, 2), {}, "NaN or infinite"),
        (torch.tensor([[[math.inf, 0.0]]]), torch.randn(1, 5, 2), {}, "NaN or infinite"),
        (torch.randn(1, 4, 3), torch.randn(1, 5, 3), {"bandwidth": 0.0}, "must be a positive"),
        (torch.randn(1, 4, 3), torch.randn(1, 5, 3), {"bandwidth": -2.0}, "must be a positive"),
        (torch.randn(1, 4, 3), torch.randn(1, 5, 3), {"bandwidth": [1.0, -1.0]}, "must be a positive"),
        (torch.randn(1, 4, 3), torch.randn(1, 5, 3), {"bandwidth": "silverman"}, "unknown bandwidth"),
        (torch.randn(1, 4, 3), torch.randn(1, 5, 3), {"estimator": "quadratic"}, "unknown estimator"),
        (torch.randn(1, 1, 3), torch.randn(1, 5, 3), {"estimator": "unbiased"}, "at least 2 real tokens"),
        (torch.randn(1, 4, 3), torch.randn(1, 5, 3), {"x_mask": torch.zeros(1, 4, dtype=torch.bool)}, "all tokens are padding"),
    ],
)
def test_bad_input_gets_a_clear_error(x, y, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        mmd.mmd2(x, y, **kwargs)


def test_linear_and_permutation_bad_input():
    with pytest.raises(ValueError, match="median heuristic is quadratic"):
        mmd.mmd2_linear(torch.randn(1, 4, 2), torch.randn(1, 4, 2), bandwidth="median")
    with pytest.raises(ValueError, match="at least 2 real tokens"):
        mmd.mmd2_linear(torch.randn(1, 1, 2), torch.randn(1, 4, 2))
    with pytest.raises(ValueError, match="n_permutations"):
        mmd.permutation_test(torch.randn(1, 4, 2), torch.randn(1, 4, 2), n_permutations=0)


def test_permutation_test_with_masks_never_draws_padding():
    """Padded tokens get weight 0: whatever they hold, the p-values are the same, and the observed
    statistic is the unpadded one (a p-value of 1/(1+n) needs every permutation below it)."""
    torch.manual_seed(3)
    x, y = torch.randn(2, 9, 3, dtype=torch.float64), torch.randn(2, 7, 3, dtype=torch.float64) + 1.5
    x_mask = torch.arange(9)[None] < torch.tensor([[6], [9]])
    y_mask = torch.arange(7)[None] < torch.tensor([[7], [4]])
    first = mmd.permutation_test(x, y, x_mask, y_mask, n_permutations=300, seed=1)
    x_other, y_other = x.clone(), y.clone()
    x_other[~x_mask] = 1e3
    y_other[~y_mask] = -1e3
    torch.testing.assert_close(mmd.permutation_test(x_other, y_other, x_mask, y_mask, n_permutations=300, seed=1), first)
    alone = mmd.permutation_test(x[:1, :6], y[:1], n_permutations=300, seed=1)
    assert abs(first[0].item() - alone.item()) <= 0.05, "same data, same test up to permutation noise"
    assert first.max().item() <= 0.05, "a 1.5-sigma shift is detected"


def test_gaussian_mmd2_matches_a_large_sample():
    """The closed form against the unbiased estimate on 3000 + 3000 tokens (brute-force sums)."""
    rng = np.random.default_rng(1)
    dim, shift, scale, gamma = 4, 0.4, 1.7, 0.2
    x = rng.standard_normal((3000, dim))
    y = shift + scale * rng.standard_normal((3000, dim))
    kxx, kyy, kxy = (np.exp(-gamma * cdist(a, b, "sqeuclidean")) for a, b in ((x, x), (y, y), (x, y)))
    n = len(x)
    unbiased = ((kxx.sum() - n) + (kyy.sum() - n)) / (n * (n - 1)) - 2 * kxy.mean()
    assert mmd.gaussian_mmd2(shift, gamma, dim, scale) == pytest.approx(unbiased, abs=3e-3)
    with pytest.raises(ValueError, match="need gamma > 0"):
        mmd.gaussian_mmd2(0.1, -1.0, dim)
