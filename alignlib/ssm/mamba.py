"""The Mamba block, the pre-norm residual block that wraps any mixer, and a stack of blocks.

``Mamba`` follows mamba-ssm's ``mamba_ssm.Mamba`` (v1): the same defaults, initialisation and
parameter names (``in_proj``, ``conv1d``, ``x_proj``, ``dt_proj``, ``A_log``, ``D``, ``out_proj``),
so a ``state_dict`` moves between the two. On CUDA with mamba-ssm installed the scan runs in its
kernel; on the CPU in :func:`alignlib.ssm.selective_scan.selective_scan`'s CPU backends.

Padding. Every mixer takes ``mask (B, L)`` (True = real token). Mamba is causal: the convolution
reads the ``d_conv - 1`` previous positions and the scan carries the state forward, so padding in
the middle of a row (the padded audio inside ``[audio; video; text]``) would flow into every later
real token, through the conv window and through the state (the input projection's bias and the
conv bias make even zero features non-zero). Zeroing inputs is not enough for the conv window, and
freezing the state would not restore the window either. So a mixer *packs* each row (its real
tokens moved to the front, in order: :mod:`alignlib.common.sequences`), runs on the packed rows, where the
padding trails and a causal model never reads it, and puts the outputs back; padded positions get
zeros. Rows whose padding already trails skip the gather. A real token's output is then exactly the
one of the unpadded clip, whatever the padding and whatever else shares the batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from alignlib.common.checks import check_finite
from alignlib.common.sequences import gather_time, pack_order, trails, unpack
from alignlib.ssm.selective_scan import selective_scan


@dataclass
class MambaCache:
    """Recurrent state of one Mamba block for step-by-step decoding.

    Attributes:
        conv: ``(B, d_inner, d_conv)`` the last ``d_conv`` inputs of the causal convolution.
        ssm: ``(B, d_inner, d_state)`` the SSM state ``h_t``.
    """

    conv: torch.Tensor
    ssm: torch.Tensor



@dataclass
class ScanInputs:
    """What the selective scan needs from a block's input, all ``(B, channels, L)`` time-last.

    Attributes:
        conv_input: ``(B, d_inner, L)`` the convolution's input (kept for the step cache).
        x: ``(B, d_inner, L)`` the scan input ``u`` (after conv and SiLU).
        z: ``(B, d_inner, L)`` the gate.
        delta: ``(B, d_inner, L)`` the step size before ``dt_proj``'s bias and softplus.
        B, C: ``(B, d_state, L)`` the input-dependent input and output matrices.
        A: ``(d_inner, d_state)`` the transition, ``-exp(A_log)``.
    """

    conv_input: torch.Tensor
    x: torch.Tensor
    z: torch.Tensor
    delta: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    A: torch.Tensor


class Mamba(nn.Module):
    """Mamba block: ``(B, L, d_model) -> (B, L, d_model)``.

    in_proj -> (x, z); x -> depthwise causal conv1d -> SiLU -> x_proj -> (dt, B, C);
    dt -> dt_proj (+ bias, softplus inside the scan); selective scan with ``A = -exp(A_log)``
    and skip ``D``, gated by ``SiLU(z)``; out_proj.

    :meth:`project_in` and :meth:`project_out` are the two projections; a subclass that replaces
    them (the Modality-Aware Mamba routes them through experts) changes :meth:`forward` and
    :meth:`step` alike. Keyword ``route`` arguments (modality ids, for example) go to both.
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | str = "auto", dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, dt_scale: float = 1.0, conv_bias: bool = True,
                 bias: bool = False, scan_backend: str = "auto"):
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else dt_rank
        self.scan_backend = scan_backend
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner,
                                padding=d_conv - 1, bias=conv_bias)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

        # dt_proj: weights uniform in +-dt_rank^-0.5; bias = softplus^-1(dt), dt log-uniform in [dt_min, dt_max].
        std = self.dt_rank**-0.5 * dt_scale
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        # S4D-real: A[d, n] = -(n + 1), stored as A_log.
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(self.d_inner))

    # -- the two projections: what a subclass swaps ------------------------------------------------
    def project_in(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """``(B, L, d_model) -> (B, L, 2 d_inner)`` (x and z side by side) and auxiliary losses."""
        return self.in_proj(hidden), {}

    def project_out(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """``(B, L, d_inner) -> (B, L, d_model)`` and auxiliary losses."""
        return self.out_proj(y), {}

    # -- the body ----------------------------------------------------------------------------------
    def _check(self, hidden: torch.Tensor, rank: int) -> None:
        shape = "(B, L, d_model)" if rank == 3 else "(B, d_model)"
        if hidden.dim() != rank or hidden.shape[-1] != self.d_model:
            raise ValueError(f"hidden: expected {shape} with d_model={self.d_model}, got {tuple(hidden.shape)}")
        if hidden.dim() == 3 and hidden.shape[1] == 0:
            raise ValueError("hidden: empty sequence (L = 0)")
        check_finite(hidden, "hidden")

    def ssm_parameters(self, x: torch.Tensor):
        """``x (..., d_inner)`` after conv -> ``dt (..., d_inner)`` (before bias), ``B, C (..., d_state)``.
        The selective part of the block: a subclass that returns constants makes a time-invariant SSM."""
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        return F.linear(dt, self.dt_proj.weight), B, C  # the bias is added inside the scan, before softplus

    def scan_inputs(self, hidden: torch.Tensor, mask: torch.Tensor | None = None, **route) -> tuple[ScanInputs, dict]:
        """:class:`ScanInputs` from ``hidden (B, L, d_model)`` (rows already packed), and the
        input projection's auxiliary losses."""
        xz, aux = self.project_in(hidden, mask, **route)
        x, z = xz.chunk(2, dim=-1)  # (B, L, d_inner) each
        conv_input = x.transpose(1, 2)
        x = F.silu(causal_depthwise_conv(conv_input, self.conv1d.weight, self.conv1d.bias))
        dt, B, C = self.ssm_parameters(x.transpose(1, 2))
        inputs = ScanInputs(conv_input, x, z.transpose(1, 2), dt.transpose(1, 2), B.transpose(1, 2),
                            C.transpose(1, 2), -torch.exp(self.A_log.float()))
        return inputs, aux

    def tail(self, y: torch.Tensor, inputs: ScanInputs, mask: torch.Tensor | None = None, **route):
        """The block after a scan that left out the skip and the gate (Coupled Mamba's):
        ``(y + D x) * SiLU(z)`` then :meth:`project_out`. ``y (B, d_inner, L)`` -> ``(B, L, d_model)``, aux."""
        gated = (y + self.D[:, None] * inputs.x) * F.silu(inputs.z)
        return self.project_out(gated.transpose(1, 2), mask, **route)

    def mix(self, hidden: torch.Tensor, mask: torch.Tensor | None = None, return_cache: bool = False, **route):
        """The block on ``hidden (B, L, d_model)`` with an optional padding ``mask (B, L)``.

        Returns ``(out (B, L, d_model), aux_losses, cache or None)``; padded positions of ``out``
        are zero. ``route`` tensors are per token ``(B, L)`` and packed with the tokens.
        """
        self._check(hidden, 3)
        order = None
        if mask is not None:
            if tuple(mask.shape) != tuple(hidden.shape[:2]) or mask.dtype != torch.bool:
                raise ValueError(f"mask: expected a bool tensor of shape {tuple(hidden.shape[:2])} (B, L), "
                                 f"got {mask.dtype} {tuple(mask.shape)}")
            if return_cache and not bool(mask.all()):
                raise ValueError("return_cache: the step cache continues a sequence, so it needs rows without padding")
            if not trails(mask):
                order = pack_order(mask)
                hidden, mask = gather_time(hidden, order), mask.gather(1, order)
                route = {name: gather_time(value, order) for name, value in route.items()}
        inputs, aux = self.scan_inputs(hidden, mask, **route)
        result = selective_scan(inputs.x, inputs.delta, inputs.A, inputs.B, inputs.C, self.D.float(), inputs.z,
                                self.dt_proj.bias.float(), delta_softplus=True, return_last_state=return_cache,
                                backend=self.scan_backend)
        y, last = result if return_cache else (result, None)
        out, aux_out = self.project_out(y.transpose(1, 2), mask, **route)
        aux = _add_losses(aux, aux_out)
        if mask is not None:
            out = out * mask[..., None].to(out.dtype)
            if order is not None:
                out = unpack(out, order)
        cache = None
        if return_cache:
            length, conv = hidden.shape[1], inputs.conv_input
            conv = F.pad(conv, (self.d_conv - length, 0)) if length < self.d_conv else conv[..., -self.d_conv:]
            cache = MambaCache(conv=conv.detach().clone(), ssm=last.detach().to(hidden.dtype))
        return out, aux, cache

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None, return_cache: bool = False):
        """``(B, L, d_model) -> (B, L, d_model)``; with ``return_cache``, also the
        :class:`MambaCache` after the last token, to continue with :meth:`step`."""
        out, _, cache = self.mix(hidden, mask, return_cache)
        return (out, cache) if return_cache else out

    def allocate_cache(self, batch: int, device=None, dtype=torch.float32) -> MambaCache:
        """A zero cache for :meth:`step` from the start of a sequence."""
        return MambaCache(conv=torch.zeros(batch, self.d_inner, self.d_conv, device=device, dtype=dtype),
                          ssm=torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=dtype))

    def step(self, hidden: torch.Tensor, cache: MambaCache, **route) -> tuple[torch.Tensor, MambaCache]:
        """One token ``(B, d_model) -> (B, d_model)`` with the recurrent cache, through the same
        projections as :meth:`forward` (``route`` tensors are per token, ``(B,)``); the cache is
        returned updated (a new object; the old one is left as it was)."""
        self._check(hidden, 2)
        route = {name: value[:, None] for name, value in route.items()}
        xz, _ = self.project_in(hidden[:, None], None, **route)
        x, z = xz[:, 0].chunk(2, dim=-1)  # (B, d_inner)
        conv = torch.cat([cache.conv[..., 1:], x[..., None]], dim=-1)
        x = F.silu((conv * self.conv1d.weight[:, 0]).sum(-1) + (self.conv1d.bias if self.conv1d.bias is not None else 0))
        dt, B, C = self.ssm_parameters(x)
        dt = F.softplus(dt + self.dt_proj.bias)  # (B, d_inner)
        A = -torch.exp(self.A_log.float())
        ssm = torch.exp(dt[..., None] * A) * cache.ssm + (dt * x)[..., None] * B[:, None, :]
        y = (ssm * C[:, None, :]).sum(-1) + self.D * x
        out, _ = self.project_out((y * F.silu(z))[:, None], None, **route)
        return out[:, 0], MambaCache(conv=conv, ssm=ssm)


def causal_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Mamba's causal depthwise convolution, ``x (B, D, L)``, ``weight (D, 1, K)`` -> ``(B, D, L)``:
    ``y_t = sum_k weight_k x_{t-K+1+k} + bias`` (zeros before the start), the same numbers as
    ``conv1d(x, weight, bias, padding=K-1, groups=D)[..., :L]``.

    Written as ``K`` shifted multiply-adds with a hand-written backward (the same products, shifted the
    other way, and one product-sum per tap for the weight): on the CPU, PyTorch's depthwise ``conv1d``
    backward is the slowest step of a Mamba block (about 10 s for one AlignMamba-2 batch of 32 MOSI
    clips), and autograd through the shifted slices zero-fills and copies a padded buffer per tap.
    """
    if bias is None:
        bias = weight.new_zeros(weight.shape[0])
    return _CausalConv.apply(x, weight, bias)


def _shifted_sum(x: torch.Tensor, taps: torch.Tensor, reverse: bool) -> torch.Tensor:
    """``sum_k taps[:, k] x_{t-K+1+k}`` over ``x (B, D, L)`` padded with zeros (``reverse``: ``x_{t+K-1-k}``)."""
    count, length = taps.shape[1], x.shape[-1]
    padded = F.pad(x, (0, count - 1) if reverse else (count - 1, 0))
    out = taps[:, count - 1, None] * x
    for k in range(count - 1):
        start = count - 1 - k if reverse else k
        out = out + taps[:, k, None] * padded[..., start:start + length]
    return out


class _CausalConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return _shifted_sum(x, weight[:, 0], reverse=False) + bias[:, None]

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        taps, length = weight.shape[-1], x.shape[-1]
        grad_x = _shifted_sum(grad, weight[:, 0], reverse=True) if ctx.needs_input_grad[0] else None
        grad_weight = None
        if ctx.needs_input_grad[1]:
            padded = F.pad(x, (taps - 1, 0))
            grad_weight = torch.stack([(grad * padded[..., k:k + length]).sum((0, 2)) for k in range(taps)], 1)[:, None]
        return grad_x, grad_weight, grad.sum((0, 2)) if ctx.needs_input_grad[2] else None


def _add_losses(*dicts: dict) -> dict:
    """Sum auxiliary-loss dicts name by name."""
    total: dict = {}
    for losses in dicts:
        for name, value in losses.items():
            total[name] = total[name] + value if name in total else value
    return total


class Block(nn.Module):
    """Pre-norm residual block around any mixer, as mamba-ssm's ``Block``:
    ``h + dropout(mixer(RMSNorm(h), mask, **mixer_kwargs))``, ``(B, L, d_model) -> (B, L, d_model)``.

    The mixer (``Mamba``, ``ModalityAwareMamba``, ...) takes ``(hidden, mask=None, **mixer_kwargs)`` and
    returns its output, or ``(output, aux_losses)`` when it has auxiliary losses. :meth:`forward`
    returns ``(hidden, aux_losses)`` (an empty dict for a plain Mamba mixer).
    """

    def __init__(self, d_model: int, mixer: nn.Module, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.RMSNorm(d_model)
        self.mixer = mixer
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None, **mixer_kwargs):
        result = self.mixer(self.norm(hidden), mask=mask, **mixer_kwargs)
        out, aux = result if isinstance(result, tuple) else (result, {})
        return hidden + self.dropout(out), aux

    def step(self, hidden: torch.Tensor, cache: MambaCache, **route) -> tuple[torch.Tensor, MambaCache]:
        """One token ``(B, d_model)`` through the block with the mixer's recurrent cache."""
        out, cache = self.mixer.step(self.norm(hidden), cache, **route)
        return hidden + out, cache


class MambaLayer(Block):
    """A :class:`Block` around a :class:`Mamba` mixer (``mamba_options`` go to ``Mamba``)."""

    def __init__(self, d_model: int, dropout: float = 0.0, **mamba_options):
        super().__init__(d_model, Mamba(d_model, **mamba_options), dropout)


class MambaStack(nn.Module):
    """``n_layers`` :class:`MambaLayer` and a final RMSNorm: ``(B, L, d_model), mask (B, L) -> (B, L, d_model)``."""

    def __init__(self, d_model: int, n_layers: int, dropout: float = 0.0, **mamba_options):
        super().__init__()
        self.layers = nn.ModuleList(MambaLayer(d_model, dropout, **mamba_options) for _ in range(n_layers))
        self.norm = nn.RMSNorm(d_model)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            hidden, _ = layer(hidden, mask)
        return self.norm(hidden)

    def allocate_cache(self, batch: int, device=None, dtype=torch.float32) -> list[MambaCache]:
        return [layer.mixer.allocate_cache(batch, device, dtype) for layer in self.layers]

    def step(self, hidden: torch.Tensor, caches: list[MambaCache]) -> tuple[torch.Tensor, list[MambaCache]]:
        """One token ``(B, d_model)`` through every layer, with one cache per layer."""
        new_caches = []
        for layer, cache in zip(self.layers, caches):
            hidden, cache = layer.step(hidden, cache)
            new_caches.append(cache)
        return self.norm(hidden), new_caches
