"""Population MMD^2 between two isotropic Gaussians, in closed form.

For ``Z ~ N(m, v I_d)``, ``E exp(-gamma |Z|^2) = (1 + 2 gamma v)^(-d/2) exp(-gamma |m|^2 / (1 + 2 gamma v))``.
With ``P = N(0, I_d)`` and ``Q = N(s 1, sigma^2 I_d)``, apply it to ``x - x' ~ N(0, 2 I)``,
``y - y' ~ N(0, 2 sigma^2 I)`` and ``x - y ~ N(-s 1, (1 + sigma^2) I)``:
``MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y)``.
"""
from __future__ import annotations

import math


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
