"""The multimodal sentiment models (AlignMamba-1 and -2, Coupled Mamba, the baselines): one registry, one interface.

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
from torch import nn

from alignlib.align import mmd, ot
from alignlib.align.monotone import MonotoneAligner
from alignlib.common.errors import UserError
from alignlib.common.sequences import concat_packed, gather_time, last_real, masked_mean, pack, proportional_windows, unpack
from alignlib.data.mmsa import ALIGNED, MODALITIES, Batch
from alignlib.ssm.coupled import CoupledMambaLayer
from alignlib.ssm.mamba import Block, MambaLayer, MambaStack
from alignlib.ssm.modality_mamba import ModalityAwareMamba

TEXT, AUDIO, VISION = MODALITIES
READOUTS = ("auto", "mean", "modality_mean", "last")


def alignmamba1_plans() -> tuple[str, ...]:
    """AlignMamba-1's plans: every method of :data:`alignlib.align.ot.PLAN_METHODS` (``relaxed`` the
    paper's; ``proportional`` the ablation's proportional-time windows) and ``learned``."""
    return (*ot.PLAN_METHODS, "learned")


PLAN_TOL = 1e-5  # AlignMamba-1's entropic plans' marginal error (L1): tight, so neither padding nor the batch changes a prediction


@dataclass
class ModelConfig:
    """Hyper-parameters shared by the models (unused ones are ignored by a model)."""

    d_model: int = 64
    n_layers: int = 2
    d_state: int = 16
    dropout: float = 0.2
    lambda_ot: float = 0.001  # AlignMamba-2
    lambda_mmd: float = 0.01  # AlignMamba-1 and -2
    blur: float = ot.BLUR  # OT loss (AlignMamba-2); AlignMamba-1's entropic plans (time_prior, entropic, monotone)
    align_loss: bool = True  # AlignMamba-2 ablation "w/o alignment loss" when False
    moe: bool = True  # AlignMamba-2 ablation "w/o MoE" when False
    routing: str = "modality"  # AlignMamba-2 ablation "learnable routing": "learned"
    lambda_balance: float = 0.01  # AlignMamba-2 with learned routing: weight of the routers' load-balancing loss
    plan: str = "relaxed"  # AlignMamba-1: relaxed (paper) | proportional (ablation "w/o local OT") | oracle | shuffled | learned | another plan method of align.ot
    lambda_align: float = 1.0  # AlignMamba-1 with plan=learned: weight of the aligner's own loss
    no_word: bool = False  # AlignMamba-1 with plan=learned: the aligner's "no word" state for pause frames
    time_weight: float = 1.0  # AlignMamba-1 with plan=time_prior: weight of the time prior's cost
    readout: str = "auto"  # sequence models: mean | modality_mean | last | auto (the model's measured default)
    n_heads: int = 4  # MulT

    def __post_init__(self):
        if self.readout not in READOUTS:
            raise UserError(f"readout: unknown {self.readout!r}; choose one of {READOUTS}")
        if self.routing not in ("modality", "learned"):
            raise UserError(f"routing: unknown {self.routing!r}; choose 'modality' or 'learned'")
        for name in ("d_model", "n_layers", "d_state", "n_heads"):
            if getattr(self, name) < 1:
                raise UserError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"dropout: must be in [0, 1), got {self.dropout}")
        if self.plan not in alignmamba1_plans():
            raise UserError(f"plan: unknown {self.plan!r}; choose one of {alignmamba1_plans()}")
        for name in ("lambda_ot", "lambda_mmd", "lambda_align", "lambda_balance", "time_weight"):
            if getattr(self, name) < 0:
                raise UserError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.blur <= 0:
            raise UserError(f"blur: must be > 0, got {self.blur}")

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise UserError(f"unknown model option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


def readout(hidden: torch.Tensor, mask: torch.Tensor, modality: torch.Tensor, how: str) -> torch.Tensor:
    """Pool a sequence ``(B, L, d)`` with padding ``mask (B, L)`` and modality ids ``(B, L)`` to ``(B, d)``.

    ``mean``: over all real tokens (each modality weighs by its length); ``modality_mean``: the mean
    of the per-modality means (modalities with no real token left out); ``last``: the last real
    token, which a causal model has let read the whole sequence.
    """
    if how == "mean":
        return masked_mean(hidden, mask)
    if how == "last":
        return last_real(hidden, mask)
    means, counts = [], []
    for m in range(len(MODALITIES)):
        selected = mask & (modality == m)
        means.append(masked_mean(hidden, selected))
        counts.append(selected.any(1, keepdim=True).to(hidden.dtype))
    counts = torch.stack(counts)  # (M, B, 1)
    return (torch.stack(means) * counts).sum(0) / counts.sum(0).clamp_min(1.0)


class _Base(nn.Module):
    """Per-modality input projections to ``d_model`` (zeroed for missing modalities) and a head.

    ``default_readout`` is the pooling chosen by measurement for the sequence models
    (``benchmarks/results/readout_table.json``); ``config.readout="auto"`` uses it.
    """

    default_readout = "mean"

    def __init__(self, dims: dict[str, int], config: ModelConfig, head_in: int | None = None):
        super().__init__()
        self.dims, self.config = dict(dims), config
        self.readout = self.default_readout if config.readout == "auto" else config.readout
        self.inputs = nn.ModuleDict({m: nn.Linear(dims[m], config.d_model) for m in MODALITIES})
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Sequential(nn.Linear(head_in or config.d_model, config.d_model), nn.GELU(),
                                  nn.Dropout(config.dropout), nn.Linear(config.d_model, 1))

    def project(self, batch: Batch) -> dict[str, torch.Tensor]:
        for m in MODALITIES:
            width = batch.features[m].shape[-1]
            if width != self.dims[m]:
                raise ValueError(f"{m} features are {width}-d but the model was built for {self.dims[m]}-d")
        projected = {m: self.dropout(self.inputs[m](batch.features[m])) for m in MODALITIES}
        if bool(batch.present.all()):  # nothing to zero: skip three (B, T, d) products and their gradients
            return projected
        return {m: projected[m] * batch.present[:, k, None, None] for k, m in enumerate(MODALITIES)}


def modality_ids(mask: torch.Tensor, modality: str) -> torch.Tensor:
    """``(B, T)`` ids of one modality's tokens (its index in ``MODALITIES``)."""
    return torch.full(mask.shape, MODALITIES.index(modality), dtype=torch.long, device=mask.device)


def packed_concat(h: dict, masks: dict, order=(AUDIO, VISION, TEXT)):
    """``[H_A; H_V; H_L]`` with each clip's real tokens packed to the front and the batch's unneeded
    padding cut: ``(B, L, d)``, mask ``(B, L)``, modality ids ``(B, L)``. A causal model then reads,
    for every clip, exactly its own real tokens in this order (see :mod:`alignlib.ssm.mamba`)."""
    hidden, mask, index = concat_packed([h[m] for m in order], [masks[m] for m in order])
    ids = gather_time(torch.cat([modality_ids(masks[m], m) for m in order], dim=1), index)
    return hidden, mask, ids


class AlignMamba1(_Base):
    """Local alignment of audio and video onto the text tokens (``M^T X``), the MMD global alignment
    loss, the interleaved sequence ``[a1, v1, l1, a2, ...]`` through a Mamba stack.

    ``config.plan`` chooses how the frames reach the words (:func:`alignmamba1_plans`): ``relaxed``
    (the paper: AlignMamba-1's relaxed OT between the projected features), ``proportional`` (the
    ablation "w/o local OT": proportional-time windows), ``oracle`` and ``shuffled`` (controls that
    read the batch's true frame-to-word tables: a true-plan control at a given budget, and
    the true segments on the wrong words), any other plan method of :mod:`alignlib.align.ot` (all without gradient), or
    ``learned`` (a :class:`~alignlib.align.monotone.MonotoneAligner` per modality on the raw
    features, trained by its own likelihood with weight ``lambda_align``, with a "no word" state if
    ``no_word``; it never reads the tables); ``time_prior`` is order-preserving entropic OT between the
    projected features (:func:`~alignlib.align.ot.time_prior_plan` at ``blur`` and ``time_weight``).
    Every text slot holds one audio, one video and one text token, so ``mean`` and ``modality_mean`` coincide."""

    def __init__(self, dims, config):
        super().__init__(dims, config)
        self.stack = MambaStack(config.d_model, config.n_layers, config.dropout, d_state=config.d_state)
        if config.plan == "learned":
            self.aligners = nn.ModuleDict({m: MonotoneAligner(dims[m], dims[TEXT], no_word=config.no_word)
                                           for m in ALIGNED})

    @property
    def needs_alignment(self) -> bool:
        """Whether the batch must carry the true frame-to-word tables: a plan method that reads them
        (its setting ``truth``: the oracle and shuffled controls)."""
        method = ot.PLAN_METHODS.get(self.config.plan)
        return method is not None and "truth" in method.settings

    def plans(self, batch: Batch, h: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``({"audio", "vision": plan (B, T_m, T_l)}, {"align_audio", ...: loss (B,)})``: the plans onto
        the packed words (real words first) from the projected tokens ``h``, and the learned aligner's
        per-clip losses (zero where the modality is missing)."""
        text, text_mask, _ = pack(h[TEXT], batch.masks[TEXT])
        plans, losses = {}, {}
        for k, m in enumerate(MODALITIES):
            if m == TEXT:
                continue
            frame_mask = batch.masks[m]
            if self.config.plan == "proportional":
                _, packed_mask, order = pack(frame_mask, frame_mask)
                windows = proportional_windows(packed_mask, text_mask, h[m].dtype)  # (B, T_l, T_m), packed frames
                plans[m] = unpack(windows.transpose(1, 2), order)
            elif self.needs_alignment:
                if batch.alignment is None:
                    raise ValueError(f"plan={self.config.plan!r} needs the batch's true frame-to-word tables "
                                     "(a synthetic file, loaded with alignment=True)")
                truth = batch.alignment[m]
                rank = batch.masks[TEXT].long().cumsum(1) - 1  # each word's place among the real words
                packed = torch.where(truth >= 0, rank.gather(1, truth.clamp_min(0)), -1)
                plans[m] = ot.plan(h[m], text, frame_mask, text_mask, method=self.config.plan, truth=packed)
            elif self.config.plan == "learned":
                words, _, _ = pack(batch.features[TEXT], batch.masks[TEXT])
                with torch.enable_grad():
                    plans[m], loss = self.aligners[m](batch.features[m], words, frame_mask, text_mask)
                losses[f"align_{m}"] = loss * batch.present[:, k]
            else:  # relaxed (the paper) or another plan method of align.ot (each takes the settings it declares)
                plans[m] = ot.plan(h[m].detach(), text.detach(), frame_mask, text_mask, method=self.config.plan,
                                   blur=self.config.blur, time_weight=self.config.time_weight, tol=PLAN_TOL)
        return plans, losses

    def forward(self, batch: Batch):
        h = self.project(batch)
        text, text_mask, _ = pack(h[TEXT], batch.masks[TEXT])  # real words first, so slots pair up per clip
        plans, losses = self.plans(batch, h)
        aligned = {m: ot.transport(plan.detach(), h[m], barycentric=True) for m, plan in plans.items()}  # (B, T_l, d)
        aux = {}
        if self.training and losses and self.config.lambda_align > 0:
            present = batch.present[:, 1:].sum().clamp_min(1)
            aux["align"] = self.config.lambda_align * sum(losses.values()).sum() / present
        if self.training and self.config.lambda_mmd > 0:
            aux["mmd"] = self.config.lambda_mmd * sum(
                mmd.mmd2(aligned[m], text, text_mask, text_mask).mean() for m in ALIGNED)
        interleaved = torch.stack([aligned[AUDIO], aligned[VISION], text], dim=2).flatten(1, 2)  # (B, 3 T_l, d)
        mask = text_mask.repeat_interleave(3, dim=1)
        ids = torch.stack([modality_ids(text_mask, m) for m in (AUDIO, VISION, TEXT)], dim=2).flatten(1, 2)
        pooled = readout(self.stack(interleaved, mask), mask, ids, self.readout)
        return self.head(pooled).squeeze(-1), aux


class AlignMamba2(_Base):
    """Unimodal Mamba layers, training-only OT and MMD losses (audio/text, video/text), then the
    concatenation ``[H_A; H_V; H_L]`` with modality ids through Modality-Aware Mamba blocks.

    Default readout ``modality_mean``: in ``benchmarks/results/readout_table.json`` it gave the
    lowest mean test MAE and highest Corr of the three (within the seeds' spread of ``mean``)."""

    default_readout = "modality_mean"

    def __init__(self, dims, config):
        super().__init__(dims, config)
        self.unimodal = nn.ModuleDict({m: MambaLayer(config.d_model, config.dropout, d_state=config.d_state)
                                       for m in MODALITIES})
        if config.moe:
            mixers = (ModalityAwareMamba(config.d_model, len(MODALITIES), routing=config.routing, d_state=config.d_state)
                      for _ in range(config.n_layers))
            self.fusion = nn.ModuleList(Block(config.d_model, mixer, config.dropout) for mixer in mixers)
        else:
            self.fusion = nn.ModuleList(MambaLayer(config.d_model, config.dropout, d_state=config.d_state)
                                        for _ in range(config.n_layers))
        self.norm = nn.RMSNorm(config.d_model)

    def unimodal_states(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``H_A, H_V, H_L``: each modality after its projection and unimodal Mamba layer, ``(B, T_m, d)``."""
        return {m: self.unimodal[m](x, batch.masks[m])[0] for m, x in self.project(batch).items()}

    def forward(self, batch: Batch):
        h, masks, aux = self.unimodal_states(batch), batch.masks, {}
        if self.training and self.config.align_loss:
            pairs = [(h[m], h[TEXT], masks[m], masks[TEXT]) for m in ALIGNED]
            aux["ot"] = self.config.lambda_ot * sum(ot.ot_distance(*p, blur=self.config.blur).mean() for p in pairs)
            aux["mmd"] = self.config.lambda_mmd * sum(mmd.mmd2(*p).mean() for p in pairs)
        hidden, mask, ids = packed_concat(h, masks)
        routing = {"modality": ids} if self.config.moe else {}
        balance = []
        for block in self.fusion:
            hidden, losses = block(hidden, mask, **routing)
            balance.extend(losses.values())
        if balance and self.training:
            aux["load_balance"] = self.config.lambda_balance * sum(balance)
        return self.head(readout(self.norm(hidden), mask, ids, self.readout)).squeeze(-1), aux


class ConcatMamba(_Base):
    """Single-stream baseline (as Cobra): ``[H_A; H_V; H_L]`` through one Mamba stack.

    Default readout ``modality_mean`` (``benchmarks/results/readout_table.json``: test MAE 1.173 vs
    1.190 for ``mean`` and 1.239 for ``last``, Corr 0.315 vs 0.254 and 0.000, 3 seeds)."""

    default_readout = "modality_mean"

    def __init__(self, dims, config):
        super().__init__(dims, config)
        self.stack = MambaStack(config.d_model, config.n_layers, config.dropout, d_state=config.d_state)

    def forward(self, batch: Batch):
        hidden, mask, ids = packed_concat(self.project(batch), batch.masks)
        return self.head(readout(self.stack(hidden, mask), mask, ids, self.readout)).squeeze(-1), {}


class MultiStreamMamba(_Base):
    """Late-fusion baseline: one Mamba stack per modality, pooled, concatenated, head."""

    def __init__(self, dims, config):
        super().__init__(dims, config, head_in=3 * config.d_model)
        self.streams = nn.ModuleDict({m: MambaStack(config.d_model, config.n_layers, config.dropout, d_state=config.d_state)
                                      for m in MODALITIES})

    def forward(self, batch: Batch):
        h = self.project(batch)
        pooled = [masked_mean(self.streams[m](h[m], batch.masks[m]), batch.masks[m]) for m in MODALITIES]
        return self.head(torch.cat(pooled, dim=-1)).squeeze(-1), {}


class CoupledMamba(_Base):
    """Coupled Mamba on sequences resampled to each clip's text length (the coupled scan needs
    time-aligned modalities): per-modality chains coupled at every layer, pooled, weighted, head.

    Each clip's real audio and video frames are averaged over proportional windows of its real
    words (:func:`alignlib.common.sequences.proportional_windows`), so padding never enters the average."""

    def __init__(self, dims, config):
        super().__init__(dims, config)
        self.layers = nn.ModuleList(CoupledMambaLayer(config.d_model, len(MODALITIES), dropout=config.dropout,
                                                      d_state=config.d_state) for _ in range(config.n_layers))
        self.norm = nn.RMSNorm(config.d_model)
        self.modality_logits = nn.Parameter(torch.zeros(len(MODALITIES)))

    def forward(self, batch: Batch):
        h = self.project(batch)
        text, text_mask, _ = pack(h[TEXT], batch.masks[TEXT])
        hiddens = []
        for m in MODALITIES:
            if m == TEXT:
                hiddens.append(text)
            else:
                source, source_mask, _ = pack(h[m], batch.masks[m])
                hiddens.append(proportional_windows(source_mask, text_mask, source.dtype) @ source)
        for layer in self.layers:
            hiddens = layer(hiddens, text_mask)
        weights = self.modality_logits.softmax(0)
        pooled = sum(w * masked_mean(self.norm(x), text_mask) for w, x in zip(weights, hiddens))
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
        raise UserError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    missing = [m for m in MODALITIES if m not in dims]
    if missing:
        raise ValueError(f"dims: missing {missing}")
    return MODELS[name](dims, config or ModelConfig())
