"""The selective state-space scan at the heart of Mamba.

For each channel ``d`` and state ``n`` (ZOH for ``A``, ``delta * B`` for the input, as in Mamba)::

    h_t = exp(delta_t A) * h_{t-1} + delta_t B_t u_t
    y_t = <C_t, h_t> + D u_t,        out_t = y_t * silu(z_t)

Shapes follow mamba-ssm's ``selective_scan_fn``: ``u, delta, z (B, D, L)``; ``A (D, N)``;
``B, C`` either ``(B, N, L)`` (selective, input-dependent) or ``(D, N)`` (time-invariant);
``D, delta_bias (D,)``. This module holds the sequential reference loop, the readable oracle.
"""
from __future__ import annotations

import math

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


class _ChunkedScan(torch.autograd.Function):
    """``y_t = <C_t, h_t>`` with ``h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t``, forward and a
    hand-written backward, both walking the sequence in chunks of ``chunk`` steps.

    Memory: one chunk of states ``(chunk, B, D, N)`` at a time plus the state at each chunk start,
    ``(L / chunk, B, D, N)``: with ``chunk ~ sqrt(L)`` far below the ``(B, L, D, N)`` that autograd
    through a loop (or a parallel scan) keeps. The backward is itself a reverse scan of the adjoint
    ``g_t = C_t dy_t + exp(delta_{t+1} A) g_{t+1}``; it recomputes each chunk's states from its
    saved start state, then forms every parameter gradient with one batched contraction per chunk.
    Chunk buffers are time-major, so each sequential step touches one contiguous ``(B, D, N)`` block.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, chunk):
        batch, channels, length = u.shape
        starts = list(range(0, length, chunk))
        state = u.new_zeros(batch, channels, A.shape[1])
        chunk_starts = u.new_empty(len(starts), batch, channels, A.shape[1])
        y = u.new_empty(batch, channels, length)
        for index, first in enumerate(starts):
            chunk_starts[index] = state
            window = slice(first, min(first + chunk, length))
            states = _chunk_states(state, u[:, :, window], delta[:, :, window], A, _time_slice(B, window))
            y[:, :, window] = _read_out(states, _time_slice(C, window))
            state = states[-1].clone()
        ctx.save_for_backward(u, delta, A, B, C, chunk_starts)
        ctx.chunk = chunk
        return y, state

    @staticmethod
    def backward(ctx, grad_y, grad_last_state):
        u, delta, A, B, C, chunk_starts = ctx.saved_tensors
        chunk, length = ctx.chunk, u.shape[2]
        grads = {name: torch.zeros_like(t) for name, t in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C))}
        carry = grad_last_state  # dL/dh at the end of the current chunk, from later time steps
        for index in reversed(range(chunk_starts.shape[0])):
            first = index * chunk
            window = slice(first, min(first + chunk, length))
            u_w, delta_w, B_w, C_w = u[:, :, window], delta[:, :, window], _time_slice(B, window), _time_slice(C, window)
            decay = torch.exp(torch.einsum("bdk,dn->kbdn", delta_w, A))
            states = _chunk_states(chunk_starts[index], u_w, delta_w, A, B_w, decay=decay)
            adjoint = _read_in(grad_y[:, :, window], C_w)  # (K, B, D, N): dy_t C_t
            carry = reverse_recurrence_(adjoint, decay, carry)
            previous = torch.cat([chunk_starts[index][None], states[:-1]], dim=0)
            decay_grad = adjoint * previous * decay  # d/d(delta A) of exp(delta A) h_{t-1}
            drive_grad = _drive_grads(adjoint, u_w, delta_w, B_w)
            grads["delta"][:, :, window] = torch.einsum("kbdn,dn->bdk", decay_grad, A) + drive_grad["delta"]
            grads["A"] += torch.einsum("kbdn,bdk->dn", decay_grad, delta_w)
            grads["u"][:, :, window] = drive_grad["u"]
            _accumulate_time(grads["B"], window, drive_grad["B"])
            _accumulate_time(grads["C"], window, _read_out_grad(grad_y[:, :, window], states, C_w))
        return grads["u"], grads["delta"], grads["A"], grads["B"], grads["C"], None


def _time_slice(matrix: torch.Tensor, window: slice) -> torch.Tensor:
    """``B`` or ``C`` restricted to a time window: ``(B, N, L)`` sliced, ``(D, N)`` as is."""
    return matrix[:, :, window] if matrix.dim() == 3 else matrix


def _accumulate_time(total: torch.Tensor, window: slice, grad: torch.Tensor) -> None:
    if total.dim() == 3:
        total[:, :, window] = grad
    else:
        total += grad


def _chunk_states(state, u, delta, A, B, decay=None):
    """States ``(K, B, D, N)`` of one chunk from the state before it ``(B, D, N)``."""
    if decay is None:
        decay = torch.exp(torch.einsum("bdk,dn->kbdn", delta, A))
    if B.dim() == 3:
        states = torch.einsum("bdk,bnk->kbdn", delta * u, B).contiguous()
    else:
        states = torch.einsum("bdk,dn->kbdn", delta * u, B).contiguous()
    return recurrence_(states, decay, state)


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

    The same sequential core as the chunked selective scan, for recurrences whose decay is not of
    the form ``exp(delta A)`` (Coupled Mamba's summed transitions); backward by the reverse scan.
    """
    if decay.shape != drive.shape:
        raise ValueError(f"decay {tuple(decay.shape)} and drive {tuple(drive.shape)} must have one shape (L, ...)")
    initial = torch.zeros_like(drive[0]) if initial is None else initial
    return _DiagonalScan.apply(decay.contiguous(), drive.contiguous(), initial)


def _read_out(states, C):
    return torch.einsum("kbdn,bnk->bdk", states, C) if C.dim() == 3 else torch.einsum("kbdn,dn->bdk", states, C)


def _read_in(grad_y, C):
    adjoint = torch.einsum("bdk,bnk->kbdn", grad_y, C) if C.dim() == 3 else torch.einsum("bdk,dn->kbdn", grad_y, C)
    return adjoint.contiguous()


def _read_out_grad(grad_y, states, C):
    return torch.einsum("bdk,kbdn->bnk", grad_y, states) if C.dim() == 3 else torch.einsum("bdk,kbdn->dn", grad_y, states)


def _drive_grads(adjoint, u, delta, B):
    """Gradients of ``delta_t B_t u_t`` given the adjoint ``(K, B, D, N)``."""
    if B.dim() == 3:
        adjoint_b = torch.einsum("kbdn,bnk->bdk", adjoint, B)
        grad_B = torch.einsum("kbdn,bdk->bnk", adjoint, delta * u)
    else:
        adjoint_b = torch.einsum("kbdn,dn->bdk", adjoint, B)
        grad_B = torch.einsum("kbdn,bdk->dn", adjoint, delta * u)
    return {"u": adjoint_b * delta, "delta": adjoint_b * u, "B": grad_B}


def selective_scan_chunked(
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
    chunk: int | None = None,
):
    """Fast pure-PyTorch selective scan; same arguments and result as :func:`selective_scan_reference`.

    The recurrence runs in :class:`_ChunkedScan` (hand-written backward, memory ``O(B D N sqrt(L))``);
    the bias, softplus, skip term and gate around it are plain autograd. ``chunk`` defaults to
    ``ceil(sqrt(L))``.
    """
    _check_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    compute = torch.float64 if u.dtype == torch.float64 else torch.float32
    u_c, delta_c = u.to(compute), delta.to(compute)
    if delta_bias is not None:
        delta_c = delta_c + delta_bias.to(compute)[:, None]
    if delta_softplus:
        delta_c = F.softplus(delta_c)
    length = u.shape[2]
    chunk = chunk or max(1, math.isqrt(length - 1) + 1)
    y, state = _ChunkedScan.apply(u_c, delta_c, A.to(compute), B.to(compute), C.to(compute), chunk)
    if D is not None:
        y = y + u_c * D.to(compute)[:, None]
    if z is not None:
        y = y * F.silu(z.to(compute))
    y = y.to(u.dtype)
    return (y, state) if return_last_state else y


BACKENDS = ("auto", "reference", "chunked", "cuda")


def mamba_ssm_kernel():
    """mamba-ssm's CUDA ``selective_scan_fn``, or None where it does not import.

    Imported lazily and guarded: on a CPU-only machine ``import mamba_ssm`` fails, sometimes with
    errors other than ImportError, and the project must not care.
    """
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:
        return None
    return selective_scan_fn


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, backend: str = "auto"):
    """The selective scan behind one name; arguments as :func:`selective_scan_reference`.

    ``backend``: ``"reference"`` (the sequential loop), ``"chunked"`` (fast pure PyTorch),
    ``"cuda"`` (mamba-ssm's kernel; CUDA tensors only) or ``"auto"``: mamba-ssm's kernel for CUDA
    tensors when it imports, the chunked scan otherwise. Softplus is applied to ``delta`` exactly
    once, by whichever backend runs.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    kernel = mamba_ssm_kernel() if backend in ("auto", "cuda") and u.is_cuda else None
    if backend == "cuda" and kernel is None:
        raise RuntimeError("backend='cuda' needs CUDA tensors and mamba-ssm installed (pip install -e .[cuda])")
    if kernel is not None:
        return kernel(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    scan = selective_scan_reference if backend == "reference" else selective_scan_chunked
    return scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
