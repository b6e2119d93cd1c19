"""Global cross-modal alignment with the Maximum Mean Discrepancy (MMD).

Two token sets ``x (B, Tm, d)`` and ``y (B, Tn, d)`` are compared through the mean of their
embeddings in the RKHS of a Gaussian kernel ``k(u, v) = exp(-gamma |u - v|^2)``:

    MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y)        (AlignMamba-2, Eq. 6)

* :func:`gaussian_kernel` -- kernel matrices ``(B, Tm, Tn)``, one or several bandwidths summed.
* :func:`bandwidths` -- the conventions: ``"dim"`` (gamma = 1/d, the paper's), ``"median"``
  (the median heuristic), a number, or a list of numbers (a multi-bandwidth kernel).
* :func:`mmd2` -- the biased V-statistic (the paper's formula) or the unbiased U-statistic.
* :func:`mmd2_linear` -- Gretton's linear-time estimator for long sequences.
* :func:`permutation_test` -- a seeded two-sample test turning MMD into a p-value.
* :func:`gaussian_mmd2` -- the population MMD^2 between two isotropic Gaussians, in closed form.

Padding masks ``(B, T)`` (True = real token) drop padded tokens from every average.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from alignlib.common.checks import check_mask, check_pair, check_positive
from alignlib.common.sequences import gather_time, pack_order

Bandwidth = str | float | Sequence[float]
_LINEAR_CHUNK = 512  # token pairs per step of the linear-time estimator


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``|x_i - y_j|^2`` for ``(B, Tm, d), (B, Tn, d) -> (B, Tm, Tn)``, via one matrix product."""
    norms = x.pow(2).sum(-1)[:, :, None] + y.pow(2).sum(-1)[:, None, :]
    return torch.baddbmm(norms, x, y.transpose(1, 2), alpha=-2.0).clamp_min_(0.0)


def bandwidths(
    x: torch.Tensor,
    y: torch.Tensor,
    x_mask: torch.Tensor | None = None,
    y_mask: torch.Tensor | None = None,
    *,
    bandwidth: Bandwidth = "dim",
) -> torch.Tensor:
    """Kernel inverse widths ``gamma`` as a ``(B, K)`` tensor (``K`` kernels summed).

    ``"dim"``: ``gamma = 1/d`` (AlignMamba-2). ``"median"``: ``gamma = 1 / (2 s^2)`` with ``s`` the
    median distance between the pooled real tokens of each item (no gradient flows through it).
    A number is used as ``gamma``; a list of numbers gives a sum of kernels.
    """
    batch, dim = x.shape[0], x.shape[2]
    if isinstance(bandwidth, str):
        if bandwidth == "dim":
            return torch.full((batch, 1), 1.0 / dim, dtype=x.dtype, device=x.device)
        if bandwidth == "median":
            return _median_gamma(x, y, x_mask, y_mask)[:, None]
        raise ValueError(f"unknown bandwidth {bandwidth!r}; use 'dim', 'median', a number or a list of numbers")
    values = [bandwidth] if isinstance(bandwidth, (int, float)) else list(bandwidth)
    if not values:
        raise ValueError("bandwidth: an empty list of gammas")
    for value in values:
        check_positive(value, "bandwidth gamma")
    return torch.tensor(values, dtype=x.dtype, device=x.device).expand(batch, len(values))


def _median_gamma(x, y, x_mask, y_mask) -> torch.Tensor:
    pooled = torch.cat([x, y], dim=1).detach()
    mask = torch.cat([check_mask(x_mask, x, "x_mask"), check_mask(y_mask, y, "y_mask")], dim=1)
    sq = squared_distances(pooled, pooled)
    gammas = []
    for k in range(pooled.shape[0]):
        real = mask[k]
        block = sq[k][real][:, real]
        upper = block[torch.triu(torch.ones_like(block, dtype=torch.bool), diagonal=1)]
        median_sq = upper.median() if upper.numel() else block.new_tensor(0.0)
        if not median_sq > 0:
            raise ValueError(f"median heuristic: all tokens of batch item {k} coincide; give a bandwidth")
        gammas.append(1.0 / (2.0 * median_sq))
    return torch.stack(gammas)


def gaussian_kernel(x: torch.Tensor, y: torch.Tensor, gammas: torch.Tensor) -> torch.Tensor:
    """``sum_k exp(-gamma_k |x_i - y_j|^2)``: ``(B, Tm, d), (B, Tn, d), (B, K) -> (B, Tm, Tn)``."""
    return _kernel_from_distances(squared_distances(x, y), gammas)


def _kernel_from_distances(sq: torch.Tensor, gammas: torch.Tensor) -> torch.Tensor:
    if gammas.shape[1] == 1:  # the common case: one temporary, exponentiated in place
        return (-gammas[:, 0, None, None] * sq).exp_()
    return sum((-gammas[:, k, None, None] * sq).exp_() for k in range(gammas.shape[1]))


def kernel_blocks(x: torch.Tensor, y: torch.Tensor, gammas: torch.Tensor):
    """The three kernel blocks ``K_xx (B, Tm, Tm)``, ``K_yy (B, Tn, Tn)``, ``K_xy (B, Tm, Tn)``.

    Both sets are first centred on their pooled mean (distances do not change, rounding does),
    and the within-set diagonals are exactly 1, even for features scaled by 1e4.
    """
    centre = torch.cat([x, y], dim=1).mean(dim=1, keepdim=True).detach()
    x, y = x - centre, y - centre

    def within(u):
        sq = squared_distances(u, u)
        sq.diagonal(dim1=1, dim2=2).zero_()
        return _kernel_from_distances(sq, gammas)

    return within(x), within(y), gaussian_kernel(x, y, gammas)


def pooled_kernel(x: torch.Tensor, y: torch.Tensor, gammas: torch.Tensor) -> torch.Tensor:
    """Kernel matrix ``(B, Tm + Tn, Tm + Tn)`` of the pooled tokens ``[x; y]``, assembled from
    :func:`kernel_blocks`."""
    k_xx, k_yy, k_xy = kernel_blocks(x, y, gammas)
    return torch.cat([torch.cat([k_xx, k_xy], dim=2), torch.cat([k_xy.transpose(1, 2), k_yy], dim=2)], dim=1)


def _validate(x, y, x_mask, y_mask):
    check_pair(x, y)
    return check_mask(x_mask, x, "x_mask"), check_mask(y_mask, y, "y_mask")


def mmd2(
    x: torch.Tensor,
    y: torch.Tensor,
    x_mask: torch.Tensor | None = None,
    y_mask: torch.Tensor | None = None,
    *,
    bandwidth: Bandwidth = "dim",
    estimator: str = "biased",
) -> torch.Tensor:
    """Squared MMD per batch item, ``(B,)``, differentiable in ``x`` and ``y``.

    ``estimator="biased"`` is the V-statistic of the paper (Eq. 6): every average includes the
    diagonal ``k(x_i, x_i) = 1``, so it is >= 0 and exactly 0 for identical sets.
    ``estimator="unbiased"`` drops the diagonal of the two within-set sums (U-statistic): its
    expectation is the population MMD^2, and it can be negative. Needs >= 2 real tokens per set.
    """
    if estimator not in ("biased", "unbiased"):
        raise ValueError(f"unknown estimator {estimator!r}; use 'biased' or 'unbiased'")
    x_mask, y_mask = _validate(x, y, x_mask, y_mask)
    gammas = bandwidths(x, y, x_mask, y_mask, bandwidth=bandwidth)
    n_x, n_y = x_mask.sum(1).to(x.dtype), y_mask.sum(1).to(x.dtype)
    if estimator == "unbiased" and ((n_x < 2).any() or (n_y < 2).any()):
        raise ValueError("the unbiased estimator needs at least 2 real tokens in each set")
    k_xx, k_yy, k_xy = kernel_blocks(x, y, gammas)
    in_x, in_y = x_mask.to(x.dtype), y_mask.to(x.dtype)

    def total(kernel, left, right):  # left^T kernel right, batched: (B,)
        return (left[:, None, :] @ (kernel @ right[:, :, None]))[:, 0, 0]

    within_x, within_y, across = total(k_xx, in_x, in_x), total(k_yy, in_y, in_y), total(k_xy, in_x, in_y)
    if estimator == "biased":
        return within_x / n_x**2 + within_y / n_y**2 - 2 * across / (n_x * n_y)
    diagonal_x = (k_xx.diagonal(dim1=1, dim2=2) * in_x).sum(1)
    diagonal_y = (k_yy.diagonal(dim1=1, dim2=2) * in_y).sum(1)
    return ((within_x - diagonal_x) / (n_x * (n_x - 1)) + (within_y - diagonal_y) / (n_y * (n_y - 1))
            - 2 * across / (n_x * n_y))


def mmd2_linear(
    x: torch.Tensor,
    y: torch.Tensor,
    x_mask: torch.Tensor | None = None,
    y_mask: torch.Tensor | None = None,
    *,
    bandwidth: Bandwidth = "dim",
) -> torch.Tensor:
    """Gretton's linear-time unbiased estimator of MMD^2, ``(B,)``: ``O(T d)`` time and memory.

    With ``m`` = the smaller real-token count, the first ``2 floor(m/2)`` real tokens of each set
    form pairs ``(x_{2i}, x_{2i+1})``, ``(y_{2i}, y_{2i+1})`` and the estimate is the mean of
    ``k(x_{2i}, x_{2i+1}) + k(y_{2i}, y_{2i+1}) - k(x_{2i}, y_{2i+1}) - k(x_{2i+1}, y_{2i})``.
    Its variance is higher than the quadratic estimators'; it pays off for long sequences.
    """
    x_mask, y_mask = _validate(x, y, x_mask, y_mask)
    if isinstance(bandwidth, str) and bandwidth == "median":
        raise ValueError("the median heuristic is quadratic in the tokens; give mmd2_linear a number or 'dim'")
    gammas = bandwidths(x, y, bandwidth=bandwidth)
    n_pairs = torch.minimum(x_mask.sum(1), y_mask.sum(1)) // 2  # (B,)
    if (n_pairs < 1).any():
        raise ValueError("the linear estimator needs at least 2 real tokens in each set")
    if not x_mask.all():  # move each item's real tokens to the front, keeping their order
        x = gather_time(x, pack_order(x_mask))
    if not y_mask.all():
        y = gather_time(y, pack_order(y_mask))
    steps = int(n_pairs.max())

    def k(u, v):
        sq = torch.sub(u, v).square_().sum(-1)  # (B, chunk)
        return torch.exp(-gammas[:, :, None] * sq[:, None]).sum(1)

    # Chunks of pairs keep the temporaries in cache, so the cost stays linear in T.
    total = x.new_zeros(x.shape[0])
    for first in range(0, steps, _LINEAR_CHUNK):
        last = min(first + _LINEAR_CHUNK, steps)
        x_even, x_odd = x[:, 2 * first:2 * last:2], x[:, 2 * first + 1:2 * last:2]
        y_even, y_odd = y[:, 2 * first:2 * last:2], y[:, 2 * first + 1:2 * last:2]
        h = k(x_even, x_odd) + k(y_even, y_odd) - k(x_even, y_odd) - k(x_odd, y_even)
        valid = torch.arange(first, last, device=x.device)[None, :] < n_pairs[:, None]
        total = total + (h * valid).sum(1)
    return total / n_pairs.to(x.dtype)


def permutation_test(
    x: torch.Tensor,
    y: torch.Tensor,
    x_mask: torch.Tensor | None = None,
    y_mask: torch.Tensor | None = None,
    *,
    n_permutations: int = 500,
    bandwidth: Bandwidth = "dim",
    seed: int = 0,
) -> torch.Tensor:
    """Two-sample test of ``H0: x and y come from one distribution``; p-values ``(B,)``.

    The statistic is the biased MMD^2. Under H0 the pooled real tokens are exchangeable, so the
    statistic of random relabellings of ``[x; y]`` draws its null distribution; the p-value is
    ``(1 + #{permuted >= observed}) / (1 + n_permutations)``. The pooled kernel matrix is
    computed once; each permutation only re-weights it (padded tokens get weight 0 and are never
    drawn). Seeded: same seed, same p-values.
    """
    x_mask, y_mask = _validate(x, y, x_mask, y_mask)
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    batch = x.shape[0]
    with torch.no_grad():
        gammas = bandwidths(x, y, x_mask, y_mask, bandwidth=bandwidth)
        kernel = pooled_kernel(x, y, gammas)
        mask = torch.cat([x_mask, y_mask], dim=1)  # (B, N)
        n_x, n_y = x_mask.sum(1, keepdim=True).to(x.dtype), y_mask.sum(1, keepdim=True).to(x.dtype)
        labels = torch.cat([x_mask / n_x, y_mask / -n_y], dim=1).to(x.dtype)  # (B, N), 0 on padding
        observed = torch.einsum("bi,bij,bj->b", labels, kernel, labels)
        real_first = pack_order(mask)
        generator = torch.Generator().manual_seed(seed)
        exceed = torch.zeros(batch, dtype=torch.long)
        for _ in range(n_permutations):
            keys = torch.rand(mask.shape, generator=generator).to(x.device).masked_fill(~mask, 2.0)
            drawn = labels.gather(1, torch.argsort(keys, dim=1))  # real labels in random order, then zeros
            weights = torch.zeros_like(labels).scatter_(1, real_first, drawn)  # back onto the real positions
            permuted = torch.einsum("bi,bij,bj->b", weights, kernel, weights)
            exceed += (permuted >= observed - 1e-12).long().cpu()
    return ((1 + exceed) / (1 + n_permutations)).to(x.dtype)


# -- closed forms for Gaussians ---------------------------------------------------------------------
# For ``Z ~ N(m, v I_d)``, ``E exp(-gamma |Z|^2) = (1 + 2 gamma v)^(-d/2) exp(-gamma |m|^2 / (1 + 2 gamma v))``.
# With ``P = N(0, I_d)`` and ``Q = N(s 1, sigma^2 I_d)``, apply it to ``x - x' ~ N(0, 2 I)``,
# ``y - y' ~ N(0, 2 sigma^2 I)`` and ``x - y ~ N(-s 1, (1 + sigma^2) I)``:
# ``MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y)``.
def expected_gaussian_kernel(sq_mean: float, variance: float, gamma: float, dim: int) -> float:
    """``E exp(-gamma |Z|^2)`` for ``Z ~ N(m, variance I_dim)`` with ``|m|^2 = sq_mean``."""
    spread = 1.0 + 2.0 * gamma * variance
    return spread ** (-dim / 2) * math.exp(-gamma * sq_mean / spread)


def gaussian_mmd2(shift: float, gamma: float, dim: int, scale: float = 1.0) -> float:
    """Population MMD^2 between ``N(0, I_dim)`` and ``N(shift 1, scale^2 I_dim)`` under the kernel
    ``exp(-gamma |x - y|^2)``."""
    if gamma <= 0 or scale <= 0 or dim < 1:
        raise ValueError(f"need gamma > 0, scale > 0 and dim >= 1, got gamma={gamma}, scale={scale}, dim={dim}")
    return (expected_gaussian_kernel(0.0, 2.0, gamma, dim) + expected_gaussian_kernel(0.0, 2.0 * scale**2, gamma, dim)
            - 2.0 * expected_gaussian_kernel(shift**2 * dim, 1.0 + scale**2, gamma, dim))
