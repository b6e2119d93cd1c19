"""The selective state-space scan at the heart of Mamba.

For each channel ``d`` and state ``n`` (ZOH for ``A``, ``delta * B`` for the input, as in Mamba)::

    h_t = exp(delta_t A) * h_{t-1} + delta_t B_t u_t
    y_t = <C_t, h_t> + D u_t,        out_t = y_t * silu(z_t)

Shapes follow mamba-ssm's ``selective_scan_fn``: ``u, delta, z (B, D, L)``; ``A (D, N)``;
``B, C`` either ``(B, N, L)`` (selective, input-dependent) or ``(D, N)`` (time-invariant);
``D, delta_bias (D,)``. This module holds the sequential reference loop, the readable oracle.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_scan_inputs(u, delta, A, B, C, D, z, delta_bias) -> None:
    for name, tensor in (("u", u), ("delta", delta)):
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 3:
            raise ValueError(f"{name}: expected shape (B, D, L), got {getattr(tensor, 'shape', type(tensor).__name__)}")
    batch, channels, length = u.shape
    if length == 0:
        raise ValueError("u: empty sequence (L = 0)")
    if delta.shape != u.shape:
        raise ValueError(f"delta: expected shape {tuple(u.shape)} like u, got {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != channels:
        raise ValueError(f"A: expected shape (D={channels}, N), got {tuple(A.shape)}")
    if A.is_complex():
        raise TypeError("A: complex A is not supported; pass the real (negative) S4D-real matrix")
    if (A > 0).any():
        raise ValueError("A: has positive entries, so exp(delta A) > 1 and the scan blows up; "
                         "Mamba uses A = -exp(A_log) < 0")
    states = A.shape[1]
    for name, tensor in (("B", B), ("C", C)):
        if tuple(tensor.shape) not in ((batch, states, length), (channels, states)):
            raise ValueError(f"{name}: expected shape (B, N, L) = {(batch, states, length)} or "
                             f"(D, N) = {(channels, states)}, got {tuple(tensor.shape)}")
    for name, tensor in (("D", D), ("delta_bias", delta_bias)):
        if tensor is not None and tuple(tensor.shape) != (channels,):
            raise ValueError(f"{name}: expected shape (D,) = ({channels},), got {tuple(tensor.shape)}")
    if z is not None and z.shape != u.shape:
        raise ValueError(f"z: expected shape {tuple(u.shape)} like u, got {tuple(z.shape)}")
    for name, tensor in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C), ("D", D), ("z", z),
                         ("delta_bias", delta_bias)):
        if tensor is not None and not torch.isfinite(tensor).all():
            raise ValueError(f"{name}: contains NaN or infinite values")


def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
):
    """Sequential selective scan, one time step at a time: ``(B, D, L) -> (B, D, L)``.

    ``delta_bias`` is added to ``delta`` and then, if ``delta_softplus``, softplus is applied
    once. Computes in float32 (float64 if given float64) and returns ``u``'s dtype. With
    ``return_last_state`` also returns ``h_L`` of shape ``(B, D, N)``.

    The loop walks ``unbind``-ed time slices and ``stack``-s the outputs, so autograd's backward
    stays linear in ``L`` (indexing ``x[:, :, t]`` in the loop would make it quadratic).
    """
    _check_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    compute = torch.float64 if u.dtype == torch.float64 else torch.float32
    u_c, delta_c, A_c = u.to(compute), delta.to(compute), A.to(compute)
    if delta_bias is not None:
        delta_c = delta_c + delta_bias.to(compute)[:, None]
    if delta_softplus:
        delta_c = F.softplus(delta_c)
    decay = torch.exp(torch.einsum("bdl,dn->bldn", delta_c, A_c))  # (B, L, D, N)
    if B.dim() == 3:
        drive = torch.einsum("bdl,bnl,bdl->bldn", delta_c, B.to(compute), u_c)
    else:
        drive = torch.einsum("bdl,dn,bdl->bldn", delta_c, B.to(compute), u_c)
    readout = C.to(compute).permute(0, 2, 1).unbind(1) if C.dim() == 3 else None  # L x (B, N)
    state = u_c.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    outputs = []
    for t, (decay_t, drive_t) in enumerate(zip(decay.unbind(1), drive.unbind(1))):
        state = decay_t * state + drive_t
        if readout is not None:
            outputs.append(torch.einsum("bdn,bn->bd", state, readout[t]))
        else:
            outputs.append(torch.einsum("bdn,dn->bd", state, C.to(compute)))
    y = torch.stack(outputs, dim=2)  # (B, D, L)
    if D is not None:
        y = y + u_c * D.to(compute)[:, None]
    if z is not None:
        y = y * F.silu(z.to(compute))
    y = y.to(u.dtype)
    return (y, state) if return_last_state else y
