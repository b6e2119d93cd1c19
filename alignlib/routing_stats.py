"""How much a router's choices say about the tokens' modality."""
from __future__ import annotations

import torch


def mutual_information_bits(modality: torch.Tensor, expert: torch.Tensor) -> float:
    """Mutual information ``I(modality; expert)`` in bits between two integer labels per token.

    Computed from the joint histogram ``p(m, e)``: ``sum p(m, e) log2(p(m, e) / (p(m) p(e)))``.
    It is 0 when the choice ignores the modality and ``H(modality)`` (``log2 M`` for balanced
    modalities) when the expert determines it.

    Args:
        modality, expert: integer tensors of one shape (any), one entry per token.
    """
    if modality.shape != expert.shape:
        raise ValueError(f"modality and expert shapes differ: {tuple(modality.shape)} vs {tuple(expert.shape)}")
    if modality.is_floating_point() or expert.is_floating_point():
        raise TypeError("modality and expert must be integer labels")
    if modality.numel() == 0 or (modality < 0).any() or (expert < 0).any():
        raise ValueError("modality and expert must be non-empty, non-negative labels")
    m, e = modality.flatten().long(), expert.flatten().long()
    joint = torch.zeros(int(m.max()) + 1, int(e.max()) + 1, dtype=torch.float64)
    joint.index_put_((m, e), torch.ones_like(m, dtype=torch.float64), accumulate=True)
    joint /= joint.sum()
    independent = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)
    seen = joint > 0
    return (joint[seen] * torch.log2(joint[seen] / independent[seen])).sum().item()
