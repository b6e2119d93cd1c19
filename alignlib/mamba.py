"""The Mamba block, a residual + norm layer around it, and a stack of layers.

``Mamba`` follows mamba-ssm's ``mamba_ssm.Mamba`` (v1): the same defaults, initialisation and
parameter names (``in_proj``, ``conv1d``, ``x_proj``, ``dt_proj``, ``A_log``, ``D``, ``out_proj``),
so a ``state_dict`` moves between the two. On CUDA with mamba-ssm installed the scan runs in its
kernel; everywhere else in :func:`alignlib.selective_scan.selective_scan_chunked`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from alignlib.selective_scan import selective_scan


@dataclass
class MambaCache:
    """Recurrent state of one Mamba block for step-by-step decoding.

    Attributes:
        conv: ``(B, d_inner, d_conv)`` the last ``d_conv`` inputs of the causal convolution.
        ssm: ``(B, d_inner, d_state)`` the SSM state ``h_t``.
    """

    conv: torch.Tensor
    ssm: torch.Tensor


class Mamba(nn.Module):
    """Mamba block: ``(B, L, d_model) -> (B, L, d_model)``.

    in_proj -> (x, z); x -> depthwise causal conv1d -> SiLU -> x_proj -> (dt, B, C);
    dt -> dt_proj (+ bias, softplus inside the scan); selective scan with ``A = -exp(A_log)``
    and skip ``D``, gated by ``SiLU(z)``; out_proj.
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

    def _check(self, hidden: torch.Tensor, rank: int) -> None:
        shape = "(B, L, d_model)" if rank == 3 else "(B, d_model)"
        if hidden.dim() != rank or hidden.shape[-1] != self.d_model:
            raise ValueError(f"hidden: expected {shape} with d_model={self.d_model}, got {tuple(hidden.shape)}")
        if hidden.dim() == 3 and hidden.shape[1] == 0:
            raise ValueError("hidden: empty sequence (L = 0)")
        if not torch.isfinite(hidden).all():
            raise ValueError("hidden: contains NaN or infinite values")

    def _ssm_parameters(self, x: torch.Tensor):
        """``x (B, L, d_inner)`` after conv -> ``dt (B, d_inner, L)``, ``B, C (B, d_state, L)``."""
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight)  # the bias is added inside the scan, before softplus
        return dt.transpose(1, 2), B.transpose(1, 2), C.transpose(1, 2)

    def forward(self, hidden: torch.Tensor, return_cache: bool = False):
        """``(B, L, d_model) -> (B, L, d_model)``; with ``return_cache``, also the
        :class:`MambaCache` after the last token, to continue with :meth:`step`."""
        return self._mix(hidden, self.in_proj, self.out_proj, return_cache)

    def _mix(self, hidden, project_in, project_out, return_cache: bool = False):
        """The block's body with its input and output projections given as functions, so that a
        subclass can swap them (the Modality-Aware Mamba routes them through experts)."""
        x_in, x, z, dt, B, C, A = self.scan_inputs(hidden, project_in)
        length = hidden.shape[1]
        result = selective_scan(x, dt, A, B, C, self.D.float(), z, self.dt_proj.bias.float(),
                                delta_softplus=True, return_last_state=return_cache, backend=self.scan_backend)
        y, last = result if return_cache else (result, None)
        out = project_out(y.transpose(1, 2))
        if not return_cache:
            return out
        conv = F.pad(x_in, (self.d_conv - length, 0)) if length < self.d_conv else x_in[..., -self.d_conv:]
        return out, MambaCache(conv=conv.detach().clone(), ssm=last.detach().to(hidden.dtype))

    def scan_inputs(self, hidden: torch.Tensor, project_in=None):
        """Everything the selective scan needs from ``hidden (B, L, d_model)``: the pre-conv stream
        ``x_in``, the scan input ``x`` and gate ``z`` ``(B, d_inner, L)``, ``dt (B, d_inner, L)``
        (before bias and softplus), ``B, C (B, d_state, L)`` and ``A (d_inner, d_state)``."""
        self._check(hidden, 3)
        project_in = project_in or self.in_proj
        x, z = project_in(hidden).chunk(2, dim=-1)  # (B, L, d_inner) each
        x_in = x.transpose(1, 2)
        x = F.silu(self.conv1d(x_in)[..., :hidden.shape[1]])
        dt, B, C = self._ssm_parameters(x.transpose(1, 2))
        return x_in, x, z.transpose(1, 2), dt, B, C, -torch.exp(self.A_log.float())

    def allocate_cache(self, batch: int, device=None, dtype=torch.float32) -> MambaCache:
        """A zero cache for :meth:`step` from the start of a sequence."""
        return MambaCache(conv=torch.zeros(batch, self.d_inner, self.d_conv, device=device, dtype=dtype),
                          ssm=torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=dtype))

    def step(self, hidden: torch.Tensor, cache: MambaCache) -> tuple[torch.Tensor, MambaCache]:
        """One token ``(B, d_model) -> (B, d_model)`` with the recurrent cache; the cache is
        returned updated (a new object; the old one is left as it was)."""
        self._check(hidden, 2)
        x, z = self.in_proj(hidden).chunk(2, dim=-1)  # (B, d_inner)
        conv = torch.cat([cache.conv[..., 1:], x[..., None]], dim=-1)
        x = F.silu((conv * self.conv1d.weight[:, 0]).sum(-1) + (self.conv1d.bias if self.conv1d.bias is not None else 0))
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(F.linear(dt, self.dt_proj.weight) + self.dt_proj.bias)  # (B, d_inner)
        A = -torch.exp(self.A_log.float())
        ssm = torch.exp(dt[..., None] * A) * cache.ssm + (dt * x)[..., None] * B[:, None, :]
        y = (ssm * C[:, None, :]).sum(-1) + self.D * x
        return self.out_proj(y * F.silu(z)), MambaCache(conv=conv, ssm=ssm)


class MambaLayer(nn.Module):
    """Pre-norm residual layer: ``h + Mamba(RMSNorm(h))``, ``(B, L, d_model) -> (B, L, d_model)``."""

    def __init__(self, d_model: int, dropout: float = 0.0, **mamba_options):
        super().__init__()
        self.norm = nn.RMSNorm(d_model)
        self.mixer = Mamba(d_model, **mamba_options)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.dropout(self.mixer(self.norm(hidden)))

    def step(self, hidden: torch.Tensor, cache: MambaCache) -> tuple[torch.Tensor, MambaCache]:
        out, cache = self.mixer.step(self.norm(hidden), cache)
        return hidden + out, cache


class MambaStack(nn.Module):
    """``n_layers`` :class:`MambaLayer` and a final RMSNorm: ``(B, L, d_model) -> (B, L, d_model)``."""

    def __init__(self, d_model: int, n_layers: int, dropout: float = 0.0, **mamba_options):
        super().__init__()
        self.layers = nn.ModuleList(MambaLayer(d_model, dropout, **mamba_options) for _ in range(n_layers))
        self.norm = nn.RMSNorm(d_model)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            hidden = layer(hidden)
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
