"""The full models, one registry, one interface.

Every model takes a :class:`alignlib.data.Batch` (per-modality features ``(B, T_m, d_m)``, padding
masks ``(B, T_m)``, ``present (B, 3)``) and returns ``(prediction (B,), aux_losses)`` where
``aux_losses`` maps names to already-weighted scalar losses (empty at evaluation for AlignMamba-2:
its alignment losses are training-only).

Models: ``alignmamba1``, ``alignmamba2`` (flags for the paper's ablations), ``coupled``, and the
baselines ``concat`` (single-stream Mamba, as Cobra), ``multistream`` (late fusion) and ``mult``
(a MulT-style cross-modal Transformer).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from alignlib import mmd, ot
from alignlib.coupled import CoupledMambaLayer
from alignlib.data.mmsa import MODALITIES, Batch
from alignlib.mamba import MambaLayer, MambaStack
from alignlib.modality_mamba import ModalityAwareMamba

TEXT, AUDIO, VISION = MODALITIES


@dataclass
class ModelConfig:
    """Hyper-parameters shared by the models (unused ones are ignored by a model)."""

    d_model: int = 64
    n_layers: int = 2
    d_state: int = 16
    dropout: float = 0.2
    lambda_ot: float = 0.001  # AlignMamba-2
    lambda_mmd: float = 0.01  # AlignMamba-1 and -2
    blur: float = 0.05  # OT loss (AlignMamba-2)
    align_loss: bool = True  # AlignMamba-2 ablation "w/o alignment loss" when False
    moe: bool = True  # AlignMamba-2 ablation "w/o MoE" when False
    routing: str = "modality"  # AlignMamba-2 ablation "learnable routing": "learned"
    n_heads: int = 4  # MulT

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown model option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real steps: ``(B, T, d), (B, T) -> (B, d)``."""
    weights = mask.to(hidden.dtype)[..., None]
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class _Base(nn.Module):
    """Per-modality input projections to ``d_model`` (zeroed for missing modalities) and a head."""

    def __init__(self, dims: dict[str, int], config: ModelConfig, head_in: int | None = None):
        super().__init__()
        self.dims, self.config = dict(dims), config
        self.inputs = nn.ModuleDict({m: nn.Linear(dims[m], config.d_model) for m in MODALITIES})
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Sequential(nn.Linear(head_in or config.d_model, config.d_model), nn.GELU(),
                                  nn.Dropout(config.dropout), nn.Linear(config.d_model, 1))

    def project(self, batch: Batch) -> dict[str, torch.Tensor]:
        for m in MODALITIES:
            width = batch.features[m].shape[-1]
            if width != self.dims[m]:
                raise ValueError(f"{m} features are {width}-d but the model was built for {self.dims[m]}-d")
        return {m: self.dropout(self.inputs[m](batch.features[m])) * batch.present[:, k, None, None]
                for k, m in enumerate(MODALITIES)}


class AlignMamba1(_Base):
    """Relaxed-OT local alignment of audio and video onto the text tokens (``M^T X``), the MMD
    global alignment loss, the interleaved sequence ``[a1, v1, l1, a2, ...]`` through a Mamba stack."""

    def __init__(self, dims, config):
        super().__init__(dims, config)
        self.stack = MambaStack(config.d_model, config.n_layers, config.dropout, d_state=config.d_state)

    def forward(self, batch: Batch):
        h = self.project(batch)
        masks = batch.masks
        aligned, aux = {}, {}
        for m in (AUDIO, VISION):
            with torch.no_grad():
                plan = ot.relaxed_plan(h[m].detach(), h[TEXT].detach(), masks[m], masks[TEXT])
            aligned[m] = ot.transport(plan, h[m], barycentric=True)  # (B, T_l, d)
        if self.training and self.config.lambda_mmd > 0:
            aux["mmd"] = self.config.lambda_mmd * sum(
                mmd.mmd2(aligned[m], h[TEXT], masks[TEXT], masks[TEXT]).mean() for m in (AUDIO, VISION))
        interleaved = torch.stack([aligned[AUDIO], aligned[VISION], h[TEXT]], dim=2).flatten(1, 2)  # (B, 3 T_l, d)
        mask = masks[TEXT].repeat_interleave(3, dim=1)
        return self.head(masked_mean(self.stack(interleaved), mask)).squeeze(-1), aux


class AlignMamba2(_Base):
    """Unimodal Mamba layers, training-only OT and MMD losses (audio/text, video/text), then the
    concatenation ``[H_A; H_V; H_L]`` with modality ids through Modality-Aware Mamba layers."""

    def __init__(self, dims, config):
        super().__init__(dims, config)
        self.unimodal = nn.ModuleDict({m: MambaLayer(config.d_model, config.dropout, d_state=config.d_state)
                                       for m in MODALITIES})
        if config.moe:
            self.fusion = nn.ModuleList(ModalityAwareMamba(config.d_model, len(MODALITIES), routing=config.routing,
                                                           d_state=config.d_state) for _ in range(config.n_layers))
        else:
            self.fusion = nn.ModuleList(MambaLayer(config.d_model, config.dropout, d_state=config.d_state).mixer
                                        for _ in range(config.n_layers))
        self.norms = nn.ModuleList(nn.RMSNorm(config.d_model) for _ in range(config.n_layers))
        self.norm = nn.RMSNorm(config.d_model)

    def forward(self, batch: Batch):
        h = {m: self.unimodal[m](x) for m, x in self.project(batch).items()}
        masks, aux = batch.masks, {}
        if self.training and self.config.align_loss:
            pairs = [(h[m], h[TEXT], masks[m], masks[TEXT]) for m in (AUDIO, VISION)]
            aux["ot"] = self.config.lambda_ot * sum(ot.ot_distance(*p, blur=self.config.blur).mean() for p in pairs)
            aux["mmd"] = self.config.lambda_mmd * sum(mmd.mmd2(*p).mean() for p in pairs)
        order = (AUDIO, VISION, TEXT)
        hidden = torch.cat([h[m] for m in order], dim=1)
        ids = torch.cat([torch.full_like(masks[m], MODALITIES.index(m), dtype=torch.long) for m in order], dim=1)
        aux_routing = []
        for norm, layer in zip(self.norms, self.fusion):
            normed = norm(hidden)
            hidden = hidden + self.dropout(layer(normed, ids) if self.config.moe else layer(normed))
            if self.config.moe and self.config.routing == "learned":
                aux_routing.append(layer.aux_loss)
        if aux_routing and self.training:
            aux["load_balance"] = 0.01 * sum(aux_routing)
        mask = torch.cat([masks[m] for m in order], dim=1)
        return self.head(masked_mean(self.norm(hidden), mask)).squeeze(-1), aux


class ConcatMamba(_Base):
    """Single-stream baseline (as Cobra): ``[H_A; H_V; H_L]`` through one Mamba stack."""

    def __init__(self, dims, config):
        super().__init__(dims, config)
        self.stack = MambaStack(config.d_model, config.n_layers, config.dropout, d_state=config.d_state)

    def forward(self, batch: Batch):
        h = self.project(batch)
        hidden = torch.cat([h[m] for m in (AUDIO, VISION, TEXT)], dim=1)
        mask = torch.cat([batch.masks[m] for m in (AUDIO, VISION, TEXT)], dim=1)
        return self.head(masked_mean(self.stack(hidden), mask)).squeeze(-1), {}


class MultiStreamMamba(_Base):
    """Late-fusion baseline: one Mamba stack per modality, pooled, concatenated, head."""

    def __init__(self, dims, config):
        super().__init__(dims, config, head_in=3 * config.d_model)
        self.streams = nn.ModuleDict({m: nn.Sequential(*(MambaLayer(config.d_model, config.dropout, d_state=config.d_state)
                                                         for _ in range(config.n_layers))) for m in MODALITIES})
        self.norm = nn.RMSNorm(config.d_model)

    def forward(self, batch: Batch):
        h = self.project(batch)
        pooled = [masked_mean(self.norm(self.streams[m](h[m])), batch.masks[m]) for m in MODALITIES]
        return self.head(torch.cat(pooled, dim=-1)).squeeze(-1), {}


class CoupledMamba(_Base):
    """Coupled Mamba on sequences resampled to the text length (the coupled scan needs
    time-aligned modalities): per-modality chains coupled at every layer, pooled, weighted, head."""

    def __init__(self, dims, config):
        super().__init__(dims, config)
        self.layers = nn.ModuleList(CoupledMambaLayer(config.d_model, len(MODALITIES), dropout=config.dropout,
                                                      d_state=config.d_state) for _ in range(config.n_layers))
        self.norm = nn.RMSNorm(config.d_model)
        self.modality_logits = nn.Parameter(torch.zeros(len(MODALITIES)))

    def forward(self, batch: Batch):
        h = self.project(batch)
        length = h[TEXT].shape[1]
        hiddens = []
        for m in MODALITIES:
            x = h[m] * batch.masks[m][..., None]
            if m != TEXT:  # average each modality over proportional windows of the text time axis
                x = F.adaptive_avg_pool1d(x.transpose(1, 2), length).transpose(1, 2)
            hiddens.append(x)
        for layer in self.layers:
            hiddens = layer(hiddens)
        weights = self.modality_logits.softmax(0)
        pooled = sum(w * masked_mean(self.norm(x), batch.masks[TEXT]) for w, x in zip(weights, hiddens))
        return self.head(pooled).squeeze(-1), {}


class CrossModalTransformer(_Base):
    """MulT-style baseline: each modality attends to the other two (cross-modal attention blocks),
    then a self-attention layer per stream; pooled, concatenated, head."""

    def __init__(self, dims, config):
        super().__init__(dims, config, head_in=3 * config.d_model)
        d, heads = config.d_model, config.n_heads
        self.cross = nn.ModuleDict({f"{t}<-{s}": nn.MultiheadAttention(d, heads, dropout=config.dropout, batch_first=True)
                                    for t in MODALITIES for s in MODALITIES if s != t})
        self.merge = nn.ModuleDict({m: nn.Linear(2 * d, d) for m in MODALITIES})
        self.self_attention = nn.ModuleDict({m: nn.TransformerEncoderLayer(d, heads, 2 * d, config.dropout, batch_first=True)
                                             for m in MODALITIES})
        self.norm = nn.LayerNorm(d)

    def forward(self, batch: Batch):
        h, masks = self.project(batch), batch.masks
        pooled = []
        for t in MODALITIES:
            attended = [self.cross[f"{t}<-{s}"](h[t], h[s], h[s], key_padding_mask=~masks[s], need_weights=False)[0]
                        for s in MODALITIES if s != t]
            stream = h[t] + self.merge[t](torch.cat(attended, dim=-1))
            stream = self.self_attention[t](stream, src_key_padding_mask=~masks[t])
            pooled.append(masked_mean(self.norm(stream), masks[t]))
        return self.head(torch.cat(pooled, dim=-1)).squeeze(-1), {}


MODELS = {
    "alignmamba1": AlignMamba1,
    "alignmamba2": AlignMamba2,
    "coupled": CoupledMamba,
    "concat": ConcatMamba,
    "multistream": MultiStreamMamba,
    "mult": CrossModalTransformer,
}


def build_model(name: str, dims: dict[str, int], config: ModelConfig | None = None) -> nn.Module:
    """A model from the registry for features of widths ``dims`` (``{"text": d_l, "audio": d_a, "vision": d_v}``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    missing = [m for m in MODALITIES if m not in dims]
    if missing:
        raise ValueError(f"dims: missing {missing}")
    return MODELS[name](dims, config or ModelConfig())
