"""Synthetic pairs of token sequences related by a known monotone time warp.

A target sequence (the "language" tokens) is a smooth random walk in ``R^d``. A source sequence
(an "audio" or "video" stream) samples it at warped times: source token ``i`` is a noisy copy of
target token ``c_i``, where ``c`` is non-decreasing. Because ``c`` is known, these pairs measure
how well a transport plan recovers token correspondences.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class WarpedPair:
    """A batch of warped pairs.

    Attributes:
        source: ``(B, Tm, d)`` source tokens.
        target: ``(B, Tn, d)`` target tokens.
        correspondence: ``(B, Tm)`` long, index of the target token each source token copies.
    """

    source: torch.Tensor
    target: torch.Tensor
    correspondence: torch.Tensor


def warp_indices(n_source: int, n_target: int, warp: float) -> torch.Tensor:
    """Non-decreasing map ``(Tm,)`` from source positions to target positions.

    The time warp is ``phi(s) = (exp(w s) - 1) / (exp(w) - 1)`` on ``[0, 1]`` (the identity at
    ``w = 0``); ``w > 0`` makes the source dwell on early targets, ``w < 0`` on late ones.
    """
    if n_source < 1 or n_target < 1:
        raise ValueError(f"sequence lengths must be >= 1, got n_source={n_source}, n_target={n_target}")
    s = (torch.arange(n_source, dtype=torch.float64) + 0.5) / n_source
    phi = s if abs(warp) < 1e-8 else torch.expm1(warp * s) / math.expm1(warp)
    return (phi * n_target).floor().long().clamp(0, n_target - 1)


def warped_pair(
    n_source: int,
    n_target: int,
    dim: int = 16,
    noise: float = 0.5,
    warp: float = 1.0,
    smoothness: float = 0.6,
    batch: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> WarpedPair:
    """Draw ``batch`` warped pairs.

    Args:
        n_source, n_target: ``Tm`` and ``Tn``.
        dim: feature width ``d``.
        noise: standard deviation of the noise added to each source token, relative to the
            per-coordinate scale 1 of the target tokens.
        warp: strength ``w`` of the monotone time warp (see :func:`warp_indices`).
        smoothness: correlation in ``[0, 1)`` between successive target tokens; near 1, neighbours
            look alike and correspondences are harder to recover.
        seed: seeds a private generator; the same arguments give the same pair.
    """
    if not 0.0 <= smoothness < 1.0:
        raise ValueError(f"smoothness must be in [0, 1), got {smoothness}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    generator = torch.Generator().manual_seed(seed)
    steps = torch.randn(batch, n_target, dim, generator=generator, dtype=torch.float64)
    target = torch.empty_like(steps)
    target[:, 0] = steps[:, 0]
    innovation = math.sqrt(1.0 - smoothness**2)
    for j in range(1, n_target):
        target[:, j] = smoothness * target[:, j - 1] + innovation * steps[:, j]
    correspondence = warp_indices(n_source, n_target, warp).expand(batch, n_source).clone()
    source = target.gather(1, correspondence[:, :, None].expand(batch, n_source, dim))
    source = source + noise * torch.randn(batch, n_source, dim, generator=generator, dtype=torch.float64)
    return WarpedPair(source.to(dtype), target.to(dtype), correspondence)
