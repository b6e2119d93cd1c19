"""Padded sequences: moving each row's real tokens to the front, and back.

A padding mask ``(B, T)`` (True = real token) may mark padding anywhere: at the end of a clip, or in
the middle of a concatenation ``[audio; video; text]`` of padded modalities. Causal models (Mamba's
convolution and scan) see every earlier position, so padding in the middle changes what the real
tokens after it see. *Packing* a row moves its real tokens, in order, to the front; the padding then
trails, where a causal model never reads it. :func:`pack` and :func:`unpack` do that with one
gather / scatter per call.
"""
from __future__ import annotations

import torch


def trails(mask: torch.Tensor) -> bool:
    """True when every row's padding comes after all its real tokens (``(B, T)`` bool)."""
    return bool((mask[:, 1:] <= mask[:, :-1]).all()) if mask.shape[1] > 1 else True


def pack_order(mask: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` source index of each packed position: real tokens first, in order, then padding."""
    # a stable sort on "is padding" keeps the real tokens' order and the padding's order
    return torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices


def gather_time(values: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """``values (B, T, ...)`` taken along time at ``order (B, T')``: ``(B, T', ...)``."""
    index = order.reshape(*order.shape, *([1] * (values.dim() - 2))).expand(*order.shape, *values.shape[2:])
    return values.gather(1, index)


def pack(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``values (B, T, ...)``, ``mask (B, T)`` -> packed values, packed mask (real tokens first,
    trailing padding) and the ``order (B, T)`` for :func:`unpack`."""
    order = pack_order(mask)
    return gather_time(values, order), mask.gather(1, order), order


def unpack(packed: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack`: ``packed (B, T, ...)`` back to the original positions."""
    index = order.reshape(*order.shape, *([1] * (packed.dim() - 2))).expand_as(packed)
    return torch.empty_like(packed).scatter_(1, index, packed)


def concat_packed(parts: list[torch.Tensor], masks: list[torch.Tensor], trim: bool = True):
    """Concatenate padded sequences ``[(B, T_i, ...)]`` with masks ``[(B, T_i)]`` and pack: each row
    holds its real tokens of part 0, then of part 1, ..., then padding. With ``trim``, the padding
    that no row needs is cut (the length becomes the longest row's real count, at least 1).

    Returns ``(packed (B, T, ...), mask (B, T), order (B, T))``; ``order`` indexes the
    concatenation, so ``gather_time(torch.cat(other_parts, 1), order)`` packs companions
    (modality ids, for example) the same way.
    """
    values, mask, order = pack(torch.cat(parts, dim=1), torch.cat(masks, dim=1))
    if trim:
        keep = max(int(mask.sum(1).max()), 1) if mask.numel() else 1
        values, mask, order = values[:, :keep], mask[:, :keep], order[:, :keep]
    return values, mask, order


def last_real(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last real token of each row: ``(B, T, d), (B, T) -> (B, d)`` (position 0 for an empty row)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask, positions, torch.zeros_like(positions)).amax(1)
    return values[torch.arange(values.shape[0], device=values.device), last]


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real steps: ``(B, T, d), (B, T) -> (B, d)`` (zeros for an empty row)."""
    weights = mask.to(values.dtype)[..., None]
    return (values * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def proportional_windows(source_mask: torch.Tensor, target_mask: torch.Tensor,
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Averaging weights ``(B, T_target, T_source)`` that resample each row's real source tokens
    onto its real target positions, as ``adaptive_avg_pool1d`` does for one unpadded clip:
    target ``i`` of ``n_t`` averages source tokens ``floor(i n_s / n_t) .. ceil((i + 1) n_s / n_t) - 1``
    of ``n_s``. Both masks must be packed (real tokens first); padded rows and columns get 0.
    """
    n_source = source_mask.sum(1)[:, None, None]  # (B, 1, 1)
    n_target = target_mask.sum(1).clamp_min(1)[:, None, None]
    i = torch.arange(target_mask.shape[1], device=target_mask.device)[None, :, None]
    j = torch.arange(source_mask.shape[1], device=source_mask.device)[None, None, :]
    start = (i * n_source) // n_target
    end = ((i + 1) * n_source + n_target - 1) // n_target
    inside = (j >= start) & (j < end) & target_mask[:, :, None] & source_mask[:, None, :]
    weights = inside.to(dtype)
    return weights / weights.sum(-1, keepdim=True).clamp_min(1.0)
