"""Coupled Mamba: one selective state chain per modality, coupled through the previous states.

For modalities ``m = 1..M`` with time-aligned sequences (same length ``L``)::

    h_t^m = Abar_t^m * (sum_k h_{t-1}^k) + Bbar_t^m x_t^m,      y_t^m = <C_t^m, h_t^m>

with ``Abar_t^m = exp(delta_t^m A^m)`` and ``Bbar_t^m = delta_t^m B_t^m``, each modality's selective
parameters computed from its own tokens. Summing over modalities, ``S_t = sum_m h_t^m`` follows a
diagonal recurrence with coefficient ``sum_m Abar_t^m``; so ``S`` is one scan, and every ``h_t^m``
follows in closed form from ``S_{t-1}``.

Note that ``sum_m Abar_t^m`` can exceed 1 (each term is in ``(0, 1)``): unless ``delta |A| > log M``
the summed state grows along the sequence, and at Mamba's initialisation (``delta`` in [0.001, 0.1])
it grows like ``M^t``. The scans therefore take a ``coupling`` factor ``c`` that multiplies the
transition, ``h_t^m = c Abar_t^m sum_k h_{t-1}^k + ...``: ``c = 1`` is the sum form above (the
default of the scans), ``c = 1/M`` couples each chain to the *mean* of the previous states, which
keeps ``c sum_m Abar_t^m <= 1``; :class:`CoupledMambaLayer` uses ``1/M``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from alignlib.common.sequences import gather_time, pack_order, trails, unpack
from alignlib.ssm.mamba import Mamba
from alignlib.ssm.recurrence import diagonal_scan


def _check_coupled(u, delta, A, B, C) -> None:
    if u.dim() != 4:
        raise ValueError(f"u: expected shape (M, B, D, L), got {tuple(u.shape)}")
    modalities, batch, channels, length = u.shape
    expected = {"delta": (modalities, batch, channels, length), "A": (modalities, channels, A.shape[-1]),
                "B": (modalities, batch, A.shape[-1], length), "C": (modalities, batch, A.shape[-1], length)}
    for name, tensor in (("delta", delta), ("A", A), ("B", B), ("C", C)):
        if tuple(tensor.shape) != expected[name]:
            raise ValueError(f"{name}: expected shape {expected[name]}, got {tuple(tensor.shape)}")
    if (A > 0).any():
        raise ValueError("A: has positive entries; the coupled scan needs A < 0")


def _decay(delta, A, coupling):
    """Time-major ``c Abar``: ``(M, L, B, D, N)``."""
    return coupling * torch.exp(torch.einsum("mbdl,mdn->mlbdn", delta, A))


def _drive(delta_u, B):
    """Time-major ``Bbar x`` from ``delta * u (M, B, D, L)``: ``(M, L, B, D, N)``."""
    return torch.einsum("mbdl,mbnl->mlbdn", delta_u, B)


def coupled_scan_reference(u, delta, A, B, C, return_states: bool = False, coupling: float = 1.0):
    """Sequential coupled scan, the oracle. ``u, delta (M, B, D, L)`` (delta after softplus),
    ``A (M, D, N)``, ``B, C (M, B, N, L)`` -> ``y (M, B, D, L)``; with ``return_states`` also
    ``h (M, L, B, D, N)``. ``coupling`` scales the transition (see the module docstring)."""
    _check_coupled(u, delta, A, B, C)
    decay, drive = _decay(delta, A, coupling), _drive(delta * u, B)
    total = torch.zeros_like(drive[:, 0].sum(0))  # S_{t-1}: (B, D, N)
    outputs, states = [], []
    for decay_t, drive_t, c_t in zip(decay.unbind(1), drive.unbind(1), C.unbind(-1)):
        h = decay_t * total + drive_t  # (M, B, D, N): every chain reads the summed previous state
        total = h.sum(0)
        outputs.append(torch.einsum("mbdn,mbn->mbd", h, c_t))
        states.append(h)
    y = torch.stack(outputs, dim=-1)
    return (y, torch.stack(states, dim=1)) if return_states else y


def coupled_scan(u, delta, A, B, C, return_states: bool = False, coupling: float = 1.0):
    """The coupled scan through one diagonal scan of the summed state; same arguments and result
    as :func:`coupled_scan_reference`.

    The chains' own drives ``Bbar_t^m x_t^m`` are never materialised as ``(M, L, B, D, N)``: the scan
    needs only their sum over modalities, and each output their contraction with ``C``,
    ``<C_t^m, Bbar_t^m x_t^m> = delta_t^m x_t^m <B_t^m, C_t^m>``."""
    _check_coupled(u, delta, A, B, C)
    decay, delta_u = _decay(delta, A, coupling), delta * u
    total = diagonal_scan(decay.sum(0), torch.einsum("mbdl,mbnl->lbdn", delta_u, B))  # S_t: (L, B, D, N)
    previous = torch.cat([torch.zeros_like(total[:1]), total[:-1]], dim=0)
    carried = decay * previous  # Abar_t^m S_{t-1}: (M, L, B, D, N)
    # y_t^m = <C_t^m, h_t^m> with h_t^m = Abar_t^m S_{t-1} + Bbar_t^m x_t^m
    y = torch.einsum("mlbdn,mbnl->mbdl", carried, C) + delta_u * torch.einsum("mbnl,mbnl->mbl", B, C)[:, :, None]
    return (y, carried + _drive(delta_u, B)) if return_states else y


class CoupledMambaLayer(nn.Module):
    """One Mamba block per modality with their scans coupled; pre-norm residual per modality.

    ``[(B, L, d_model)] * M``, ``mask (B, L)`` -> ``[(B, L, d_model)] * M``. Each modality keeps its
    own projections, convolution, ``dt``, ``A``, ``D`` (:meth:`Mamba.scan_inputs` and
    :meth:`Mamba.tail`); only the scan is shared through the previous states, with
    ``coupling = 1/M`` by default (the mean of the previous states; ``1.0`` gives their sum).
    The chains are causal like Mamba's, so the layer packs rows whose padding does not trail (see
    :mod:`alignlib.ssm.mamba`); padded positions keep their input. ``scan="parallel"`` (default) or
    ``"loop"`` (the oracle).
    """

    def __init__(self, d_model: int, n_modalities: int, scan: str = "parallel", dropout: float = 0.0,
                 coupling: float | None = None, **mamba_options):
        super().__init__()
        self.coupling = 1.0 / n_modalities if coupling is None else coupling
        if scan not in ("parallel", "loop"):
            raise ValueError(f"unknown scan {scan!r}; choose 'parallel' or 'loop'")
        self.scan = scan
        self.norms = nn.ModuleList(nn.RMSNorm(d_model) for _ in range(n_modalities))
        self.blocks = nn.ModuleList(Mamba(d_model, **mamba_options) for _ in range(n_modalities))
        self.dropout = nn.Dropout(dropout)

    def forward(self, hiddens: list[torch.Tensor], mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        check_aligned(hiddens, len(self.blocks))
        order = None
        if mask is not None:
            if tuple(mask.shape) != tuple(hiddens[0].shape[:2]) or mask.dtype != torch.bool:
                raise ValueError(f"mask: expected a bool tensor of shape {tuple(hiddens[0].shape[:2])} (B, L), "
                                 f"got {mask.dtype} {tuple(mask.shape)}")
            if not trails(mask):
                order = pack_order(mask)
                hiddens, mask = [gather_time(h, order) for h in hiddens], mask.gather(1, order)
        inputs = [block.scan_inputs(norm(h))[0] for block, norm, h in zip(self.blocks, self.norms, hiddens)]
        bias = torch.stack([block.dt_proj.bias.float() for block in self.blocks])
        delta = F.softplus(torch.stack([i.delta for i in inputs]) + bias[:, None, :, None])
        scan = coupled_scan if self.scan == "parallel" else coupled_scan_reference
        x, A, B, C = (torch.stack([getattr(i, name) for i in inputs]) for name in ("x", "A", "B", "C"))
        y = scan(x, delta, A, B, C, coupling=self.coupling)
        outputs = []
        for m, (block, h) in enumerate(zip(self.blocks, hiddens)):
            out, _ = block.tail(y[m], inputs[m])
            if mask is not None:
                out = out * mask[..., None].to(out.dtype)
            out = h + self.dropout(out)
            outputs.append(out if order is None else unpack(out, order))
        return outputs


def check_aligned(hiddens: list[torch.Tensor], n_modalities: int) -> None:
    """Coupled Mamba needs one ``(B, L, d)`` tensor per modality, all of one shape (time-aligned)."""
    if len(hiddens) != n_modalities:
        raise ValueError(f"expected {n_modalities} modality sequences, got {len(hiddens)}")
    shapes = [tuple(h.shape) for h in hiddens]
    if len(set(shapes)) != 1:
        raise ValueError(f"Coupled Mamba needs time-aligned sequences of one shape (B, L, d); got {shapes}")
