"""The selective state-space scan at the heart of Mamba.

For each channel ``d`` and state ``n`` (ZOH for ``A``, ``delta * B`` for the input, as in Mamba)::

    h_t = exp(delta_t A) * h_{t-1} + delta_t B_t u_t
    y_t = <C_t, h_t> + D u_t,        out_t = y_t * silu(z_t)

Shapes follow mamba-ssm's ``selective_scan_fn``: ``u, delta, z (B, D, L)``; ``A (D, N)``;
``B, C`` either ``(B, N, L)`` (selective, input-dependent) or ``(D, N)`` (time-invariant);
``D, delta_bias (D,)``. Three CPU backends share one set-up (:func:`_prepare`: checks, bias,
softplus, compute dtype) and one finish (:func:`_finish`: skip term, gate, dtype): the sequential
loop (the readable oracle), the chunked pure-PyTorch scan and the fused C++ scan
(``alignlib/ssm/kernels/selective_scan.cpp``); mamba-ssm's kernel serves CUDA tensors.
"""
from __future__ import annotations

import ctypes
import math

import torch
import torch.nn.functional as F

from alignlib.common.checks import check_finite
from alignlib.ssm import kernels
from alignlib.ssm.recurrence import recurrence_, reverse_recurrence_


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
        if tensor is not None:
            check_finite(tensor, name)


def _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """Checks the inputs; ``u, delta, A, B, C`` in the compute dtype (float64 for float64 input,
    float32 otherwise), with ``delta_bias`` added to ``delta`` and softplus applied once."""
    _check_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    compute = torch.float64 if u.dtype == torch.float64 else torch.float32
    delta_c = delta.to(compute)
    if delta_bias is not None:
        delta_c = delta_c + delta_bias.to(compute)[:, None]
    if delta_softplus:
        delta_c = F.softplus(delta_c)
    return u.to(compute), delta_c, A.to(compute), B.to(compute), C.to(compute)


def _finish(y, u_c, D, z, dtype):
    """``(y + D u) * silu(z)`` (each term where given) in ``dtype``: ``(B, D, L)``."""
    if D is not None:
        y = y + u_c * D.to(u_c.dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(u_c.dtype))
    return y.to(dtype)


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
    u_c, delta_c, A_c, B_c, C_c = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    decay = torch.exp(torch.einsum("bdl,dn->bldn", delta_c, A_c))  # (B, L, D, N)
    if B_c.dim() == 3:
        drive = torch.einsum("bdl,bnl,bdl->bldn", delta_c, B_c, u_c)
    else:
        drive = torch.einsum("bdl,dn,bdl->bldn", delta_c, B_c, u_c)
    readout = C_c.permute(0, 2, 1).unbind(1) if C_c.dim() == 3 else None  # L x (B, N)
    state = u_c.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    outputs = []
    for t, (decay_t, drive_t) in enumerate(zip(decay.unbind(1), drive.unbind(1))):
        state = decay_t * state + drive_t
        if readout is not None:
            outputs.append(torch.einsum("bdn,bn->bd", state, readout[t]))
        else:
            outputs.append(torch.einsum("bdn,dn->bd", state, C_c))
    y = _finish(torch.stack(outputs, dim=2), u_c, D, z, u.dtype)  # (B, D, L)
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
    u_c, delta_c, A_c, B_c, C_c = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    chunk = chunk or max(1, math.isqrt(u.shape[2] - 1) + 1)
    y, state = _ChunkedScan.apply(u_c, delta_c, A_c, B_c, C_c, chunk)
    y = _finish(y, u_c, D, z, u.dtype)
    return (y, state) if return_last_state else y


CHANNEL_BLOCK = 32  # channels per task of the fused scan; fixed, so results do not depend on threads


def _pointer(tensor: torch.Tensor | None):
    return ctypes.c_void_p(tensor.data_ptr() if tensor is not None else None)


class _FusedScan(torch.autograd.Function):
    """The recurrence of :class:`_ChunkedScan` in C++ (``alignlib/ssm/kernels/selective_scan.cpp``),
    parallel over (batch, channel) on ``torch.get_num_threads()`` threads, each row's ``N`` states
    kept in registers and L1. The forward keeps the state at every ``chunk``-th step, ``(B, D, L / chunk, N)``;
    the backward walks each chunk in reverse after recomputing its states from that checkpoint.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, chunk, library):
        batch, channels, length = u.shape
        states = A.shape[1]
        # a selective B or C goes to the kernel time-major, (B, L, N): one contiguous row per step
        B_k, C_k = ((m.transpose(1, 2) if m.dim() == 3 else m).contiguous() for m in (B, C))
        dims = (ctypes.c_int64 * 8)(batch, channels, states, length, chunk, CHANNEL_BLOCK, B.dim() == 3, C.dim() == 3)
        keep = any(ctx.needs_input_grad[:5])  # checkpoints only for a backward to come
        checkpoints = u.new_empty(batch, channels, -(-length // chunk), states) if keep else None
        y, last = u.new_empty(batch, channels, length), u.new_empty(batch, channels, states)
        suffix = "f64" if u.dtype == torch.float64 else "f32"
        getattr(library, f"selective_scan_forward_{suffix}")(
            *map(_pointer, (u, delta, A, B_k, C_k, y, last, checkpoints)), dims, torch.get_num_threads())
        ctx.save_for_backward(u, delta, A, B_k, C_k, checkpoints)
        ctx.library, ctx.dims, ctx.selective = library, dims, (B.dim() == 3, C.dim() == 3)
        return y, last

    @staticmethod
    def backward(ctx, grad_y, grad_last):
        u, delta, A, B_k, C_k, checkpoints = ctx.saved_tensors
        batch, channels, length = u.shape
        blocks = -(-channels // CHANNEL_BLOCK)

        def buffer(selective):  # per task (B, blocks, L, N) for a selective B / C, per row (B, D, N) otherwise
            return u.new_zeros(batch, blocks, length, A.shape[1]) if selective else u.new_zeros(batch, channels, A.shape[1])

        grad_u, grad_delta = torch.empty_like(u), torch.empty_like(delta)
        grad_A = u.new_zeros(batch, channels, A.shape[1])
        grad_B, grad_C = buffer(ctx.selective[0]), buffer(ctx.selective[1])
        grad_y, grad_last = grad_y.contiguous(), grad_last.contiguous()  # alive through the call
        suffix = "f64" if u.dtype == torch.float64 else "f32"
        getattr(ctx.library, f"selective_scan_backward_{suffix}")(
            *map(_pointer, (u, delta, A, B_k, C_k, checkpoints, grad_y, grad_last,
                            grad_u, grad_delta, grad_A, grad_B, grad_C)), ctx.dims, torch.get_num_threads())
        grad_B, grad_C = (g.sum(1).transpose(1, 2) if selective else g.sum(0)
                          for g, selective in zip((grad_B, grad_C), ctx.selective))
        return grad_u, grad_delta, grad_A.sum(0), grad_B, grad_C, None, None


def selective_scan_fused(
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
    chunk: int = 64,
):
    """The fused C++ scan on CPU tensors; same arguments and result as :func:`selective_scan_reference`.

    Memory ``O(B D N L / chunk)`` for the backward's checkpoints. The kernel is compiled on first
    use (:mod:`alignlib.ssm.kernels`); where it cannot be, this warns once and runs
    :func:`selective_scan_chunked`.
    """
    if u.device.type != "cpu":
        raise ValueError(f"the fused scan runs on CPU tensors, got u on {u.device}")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk: expected a positive int, got {chunk!r}")
    library = kernels.load("selective_scan")
    if library is None:
        return selective_scan_chunked(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    u_c, delta_c, A_c, B_c, C_c = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    y, state = _FusedScan.apply(u_c.contiguous(), delta_c.contiguous(), A_c.contiguous(), B_c, C_c, chunk, library)
    y = _finish(y, u_c, D, z, u.dtype)
    return (y, state) if return_last_state else y


BACKENDS = ("auto", "reference", "chunked", "fused", "cuda")


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
    ``"fused"`` (the C++ scan, CPU tensors; the chunked scan with one warning where it cannot be
    compiled), ``"cuda"`` (mamba-ssm's kernel; CUDA tensors only) or ``"auto"``: mamba-ssm's kernel
    for CUDA tensors when it imports, the fused scan for CPU tensors, the chunked scan otherwise.
    Softplus is applied to ``delta`` exactly once, by whichever backend runs.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    kernel = mamba_ssm_kernel() if backend in ("auto", "cuda") and u.is_cuda else None
    if backend == "cuda" and kernel is None:
        raise RuntimeError("backend='cuda' needs CUDA tensors and mamba-ssm installed (pip install -e .[cuda])")
    if kernel is not None:
        return kernel(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if backend == "auto":
        backend = "fused" if u.device.type == "cpu" else "chunked"
    scan = {"reference": selective_scan_reference, "chunked": selective_scan_chunked,
            "fused": selective_scan_fused}[backend]
    return scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
