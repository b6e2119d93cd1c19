"""The Modality-Aware Mamba layer of AlignMamba-2 (Sec. 3.4).

The input and output projections of the Mamba block become mixtures of experts: one expert per
modality plus one shared expert, all the same shape. A token ``h`` of modality ``m`` gets
``E_m(h) + E_shared(h)`` (Eq. 9, 10); the convolution, activation and selective SSM stay shared.
Routing is deterministic, by each token's modality id ``(B, L)``. The ablation the paper reports,
a learned router (softmax gate, top-k, load-balancing loss), is ``routing="learned"``.
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from alignlib.ssm.mamba import Mamba

ROUTINGS = ("modality", "learned")


def check_modality_ids(modality: torch.Tensor, hidden: torch.Tensor, n_modalities: int) -> None:
    """Modality ids must be an integer ``(B, L)`` tensor beside ``hidden (B, L, d)``, in ``[0, M)``."""
    if not isinstance(modality, torch.Tensor) or modality.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"modality: expected an integer tensor of ids, got {getattr(modality, 'dtype', type(modality).__name__)}")
    if tuple(modality.shape) != tuple(hidden.shape[:2]):
        raise ValueError(f"modality: expected shape {tuple(hidden.shape[:2])} (B, L) like the tokens, got {tuple(modality.shape)}")
    if modality.numel() and (modality.min() < 0 or modality.max() >= n_modalities):
        raise ValueError(f"modality: ids must be in [0, {n_modalities}), got values in "
                         f"[{modality.min().item()}, {modality.max().item()}]")


class ExpertLinear(nn.Module):
    """``n_experts`` modality-specific linear experts plus one shared expert: ``(B, L, in) -> (B, L, out)``.

    Deterministic routing (``gates=None``): token ``i`` of modality ``m_i`` gets ``E_{m_i}(h_i) + E_shared(h_i)``,
    computed one modality group at a time (no loop over tokens). With ``gates (B, L, n_experts)``
    (a learned router's sparse weights), it gets ``sum_m g_im E_m(h_i) + E_shared(h_i)``.

    While ``recording`` is on, ``last_record`` holds the per-token norm of each expert's
    contribution, ``(B, L, n_experts + 1)`` with the shared expert last.
    """

    def __init__(self, in_features: int, out_features: int, n_experts: int, bias: bool = False):
        super().__init__()
        self.n_experts = n_experts
        self.weight = nn.Parameter(torch.empty(n_experts, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(n_experts, out_features)) if bias else None
        self.shared = nn.Linear(in_features, out_features, bias=bias)
        bound = 1 / math.sqrt(in_features)  # nn.Linear's default init, expert by expert
        nn.init.uniform_(self.weight, -bound, bound)
        self.recording = False
        self.last_record: torch.Tensor | None = None

    def expert(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden, self.weight[index], None if self.bias is None else self.bias[index])

    def forward(self, hidden: torch.Tensor, modality: torch.Tensor | None = None,
                gates: torch.Tensor | None = None) -> torch.Tensor:
        shared = self.shared(hidden)
        specific = torch.zeros_like(shared)  # every expert adds its tokens' rows into this one buffer
        norms = [] if self.recording else None
        for m in range(self.n_experts):
            if gates is None:
                selected = modality == m  # (B, L)
                part = self.expert(m, hidden[selected])
            else:
                weight = gates[..., m]
                selected = weight > 0
                part = weight[selected, None] * self.expert(m, hidden[selected])
            specific.index_put_((selected,), part, accumulate=True)
            if norms is not None:
                norms.append(torch.zeros_like(selected, dtype=shared.dtype).masked_scatter(
                    selected, part.detach().norm(dim=-1)))
        if norms is not None:
            self.last_record = torch.stack(norms + [shared.detach().norm(dim=-1)], dim=-1)
        return specific + shared


class Router(nn.Module):
    """Learned top-k softmax gate over ``n_experts``: ``(B, L, d) -> gates (B, L, n_experts)``.

    The kept gates are renormalised to sum to 1; ``load_balancing_loss`` is Switch Transformer's
    ``n_experts * sum_m f_m P_m`` (``f_m``: share of tokens whose first choice is ``m``; ``P_m``: mean
    gate probability), 1 when the load is uniform.
    """

    def __init__(self, d_model: int, n_experts: int, top_k: int = 1):
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must be in [1, {n_experts}], got {top_k}")
        self.gate = nn.Linear(d_model, n_experts, bias=False)
        self.n_experts, self.top_k = n_experts, top_k
        self.last_probabilities: torch.Tensor | None = None

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``hidden (B, L, d)`` -> gates ``(B, L, n_experts)`` and the load-balancing loss over the
        real tokens of ``mask (B, L)`` (all tokens without one)."""
        probabilities = self.gate(hidden).softmax(dim=-1)  # (B, L, M)
        top, index = probabilities.topk(self.top_k, dim=-1)
        gates = torch.zeros_like(probabilities).scatter(-1, index, top / top.sum(-1, keepdim=True))
        first_choice = F.one_hot(index[..., 0], self.n_experts).to(probabilities.dtype)
        weights = torch.ones_like(probabilities[..., 0]) if mask is None else mask.to(probabilities.dtype)
        weights = weights / weights.sum().clamp_min(1.0)
        load = torch.einsum("blm,bl->m", first_choice, weights)
        importance = torch.einsum("blm,bl->m", probabilities, weights)
        self.last_probabilities = probabilities.detach()
        return gates, self.n_experts * (load * importance).sum()


class ModalityAwareMamba(Mamba):
    """Mamba block whose ``in_proj`` and ``out_proj`` are :class:`ExpertLinear` mixtures:
    ``(B, L, d_model), modality (B, L) -> (B, L, d_model)``; conv, scan and everything between
    the projections is :class:`alignlib.ssm.mamba.Mamba`'s (padding masks and step mode included).

    ``routing="modality"`` (the paper's) routes each token to its modality's expert.
    ``routing="learned"`` (the ablation) lets a :class:`Router` per projection pick ``top_k`` experts;
    :meth:`forward` returns their summed load-balancing loss as ``aux["load_balance"]``.
    """

    def __init__(self, d_model: int, n_modalities: int, routing: str = "modality", top_k: int = 1, **mamba_options):
        if routing not in ROUTINGS:
            raise ValueError(f"unknown routing {routing!r}; choose one of {ROUTINGS}")
        super().__init__(d_model, **mamba_options)
        bias = self.in_proj.bias is not None
        self.n_modalities, self.routing = n_modalities, routing
        self.in_proj = ExpertLinear(d_model, 2 * self.d_inner, n_modalities, bias=bias)
        self.out_proj = ExpertLinear(self.d_inner, d_model, n_modalities, bias=bias)
        learned = routing == "learned"
        self.in_router = Router(d_model, n_modalities, top_k) if learned else None
        self.out_router = Router(self.d_inner, n_modalities, top_k) if learned else None

    def _route(self, projection: ExpertLinear, router, hidden, mask, modality):
        if router is None:
            return projection(hidden, modality), {}
        gates, balance = router(hidden, mask)
        return projection(hidden, gates=gates), {"load_balance": balance}

    def project_in(self, hidden, mask=None, modality=None):
        return self._route(self.in_proj, self.in_router, hidden, mask, modality)

    def project_out(self, y, mask=None, modality=None):
        return self._route(self.out_proj, self.out_router, y, mask, modality)

    def forward(self, hidden: torch.Tensor, modality: torch.Tensor, mask: torch.Tensor | None = None):
        """``hidden (B, L, d_model)``, ``modality (B, L)`` ids, ``mask (B, L)`` -> ``(out, aux_losses)``;
        ``aux_losses`` is empty for deterministic routing."""
        check_modality_ids(modality, hidden, self.n_modalities)
        out, aux, _ = self.mix(hidden, mask, modality=modality)
        return out, aux

    def step(self, hidden: torch.Tensor, cache, modality: torch.Tensor):
        """One token ``(B, d_model)`` of modality ``(B,)`` with the recurrent cache."""
        check_modality_ids(modality[:, None], hidden[:, None], self.n_modalities)
        return super().step(hidden, cache, modality=modality)


@contextlib.contextmanager
def record_experts(model: nn.Module):
    """Record every :class:`ExpertLinear` in ``model`` while the block runs.

    Yields a dict filled after each forward: ``{module name: (B, L, n_experts + 1) contribution
    norms}`` and, for learned routing, ``{router name: (B, L, n_experts) gate probabilities}``.
    """
    experts = {name: m for name, m in model.named_modules() if isinstance(m, ExpertLinear)}
    routers = {name: m for name, m in model.named_modules() if isinstance(m, Router)}
    records: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in experts.items():
        module.recording = True
        handles.append(module.register_forward_hook(lambda mod, _in, _out, name=name: records.__setitem__(name, mod.last_record)))
    for name, module in routers.items():
        handles.append(module.register_forward_hook(
            lambda mod, _in, _out, name=name: records.__setitem__(name, mod.last_probabilities)))
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()
        for module in experts.values():
            module.recording = False
            module.last_record = None
