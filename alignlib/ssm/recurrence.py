"""The diagonal linear recurrence ``h_t = decay_t * h_{t-1} + drive_t`` and its adjoint, time-major.

The sequential core shared by the chunked selective scan and Coupled Mamba's summed-state scan:
one fused multiply-add of a whole ``(...)`` slice per step, in place.
"""
from __future__ import annotations

import torch


def recurrence_(drive: torch.Tensor, decay: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
    """In place, ``drive[k] <- decay[k] * drive[k-1] + drive[k]`` (``drive[-1]`` = ``initial``): the
    states of ``h_k = decay_k h_{k-1} + drive_k``. Time-major ``(K, ...)``; one fused multiply-add per step."""
    drive[0].addcmul_(decay[0], initial)
    for k in range(1, drive.shape[0]):
        drive[k].addcmul_(decay[k], drive[k - 1])
    return drive


def reverse_recurrence_(grad: torch.Tensor, decay: torch.Tensor, carry: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`recurrence_`, in place: ``grad[k] <- grad[k] + decay[k+1] * grad[k+1]``
    with ``carry`` (the gradient flowing in after the last step) added to ``grad[-1]``. Returns
    the gradient with respect to the initial state, ``decay[0] * grad[0]``."""
    grad[-1] += carry
    for k in range(grad.shape[0] - 2, -1, -1):
        grad[k].addcmul_(decay[k + 1], grad[k + 1])
    return decay[0] * grad[0]


class _DiagonalScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, decay, drive, initial):
        states = recurrence_(drive.clone(), decay, initial)
        ctx.save_for_backward(decay, states, initial)
        return states

    @staticmethod
    def backward(ctx, grad_states):
        decay, states, initial = ctx.saved_tensors
        grad_drive = grad_states.clone()
        grad_initial = reverse_recurrence_(grad_drive, decay, torch.zeros_like(initial))
        previous = torch.cat([initial[None], states[:-1]], dim=0)
        return grad_drive * previous, grad_drive, grad_initial


def diagonal_scan(decay: torch.Tensor, drive: torch.Tensor, initial: torch.Tensor | None = None) -> torch.Tensor:
    """States of the diagonal linear recurrence ``h_t = decay_t * h_{t-1} + drive_t``, time-major:
    ``decay, drive (L, ...) -> states (L, ...)``, with ``h_{-1} = initial`` (zeros by default).

    For recurrences whose decay is not of the form ``exp(delta A)`` (Coupled Mamba's summed
    transitions); backward by the reverse scan.
    """
    if decay.shape != drive.shape:
        raise ValueError(f"decay {tuple(decay.shape)} and drive {tuple(drive.shape)} must have one shape (L, ...)")
    initial = torch.zeros_like(drive[0]) if initial is None else initial
    return _DiagonalScan.apply(decay.contiguous(), drive.contiguous(), initial)
