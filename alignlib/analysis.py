"""Looking inside trained models: token correspondences and expert activations.

* :func:`initial_model` -- the model a run starts from; :func:`train_keeping_epochs` -- a run with a
  checkpoint per epoch (each loaded by :func:`alignlib.models.checkpoint.load_model`).
* :func:`token_states` -- the tokens a model aligns: AlignMamba-2's ``H_A, H_V, H_L`` (after the
  unimodal Mamba layers), AlignMamba-1's projected features.
* :func:`correspondences` -- plans (:func:`alignlib.align.ot.plan`: proportional, entropic, exact,
  relaxed; AlignMamba-1's own plan as ``model``) from audio and video onto the words of test clips,
  their accuracy against the synthetic ground truth (the proportional plan is the floor the others
  have to beat); :func:`state_spread` tells alignment
  from collapse; :func:`fit_supervised_projection` is the control that is given the tables.
* :func:`record_expert_activity` -- each expert's share of every token's update in every
  Modality-Aware Mamba projection, and the learned routers' probabilities; :func:`share_table`,
  :func:`shares_by_position` and :func:`routing_mutual_information` (through
  :func:`mutual_information_bits`, the mutual information of two labellings) summarise it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from alignlib.align import mmd, monotone, ot
from alignlib.common.sequences import pack, unpack
from alignlib.data import MMSADataset, collate, synthetic
from alignlib.data.mmsa import ALIGNED, MODALITIES, NO_WORD, Batch, Split
from alignlib.models.checkpoint import load_model, read_checkpoint
from alignlib.models.sentiment import AlignMamba1, AlignMamba2, packed_concat
from alignlib.ssm.modality_mamba import record_experts
from alignlib.train import TrainConfig, build_run, train

METHODS = ("proportional", "entropic", "exact", "relaxed")  # the plans scored between token states
# entropic plans of learned states: polished to an L1 marginal error of 1e-4 within 5000 iterations
PLAN_SETTINGS = {"tol": 1e-4, "max_iter": 5000}
SOURCES = ALIGNED  # the modalities aligned onto the words


# -- models -----------------------------------------------------------------------------------------
def initial_model(config: TrainConfig) -> nn.Module:
    """The seeded model :func:`alignlib.train.train` starts from for ``config``, in eval mode on the CPU."""
    return build_run(replace(config, device="cpu"), torch.device("cpu"), 0, 1).model.eval()


def train_keeping_epochs(config: TrainConfig, progress: bool = False) -> list[Path]:
    """Train ``config`` keeping every epoch's checkpoint (``keep_epochs``; ``epoch_K.pt`` after
    epoch ``K``), resuming from ``last.pt`` when the folder has one, so an interrupted call
    continues where it stopped. Returns the per-epoch checkpoints, up to where early stopping ended
    the run; refuses a folder holding another run's checkpoints."""
    out = Path(config.out)
    test = train(replace(config, keep_epochs=True, resume=True), progress=progress)
    kept = [out / f"epoch_{epoch}.pt" for epoch in range(1, test["epochs_run"] + 1)]
    for epoch, path in enumerate(kept, start=1):
        recorded = read_checkpoint(path)
        settings = recorded["config"]
        if ((recorded["epoch"] + 1, recorded["model_name"], settings.get("seed"), settings.get("model_options"),
             settings.get("data")) != (epoch, config.model, config.seed, config.model_options, config.data)):
            raise ValueError(f"{path}: a checkpoint of another run (epoch {recorded['epoch'] + 1}, model "
                             f"{recorded['model_name']}, seed {settings.get('seed')}, data {settings.get('data')}); "
                             "choose another out folder")
    return kept


def epoch_summaries(config: TrainConfig, kept: list[Path], split: Split, truth: dict[str, np.ndarray], indices,
                    blur: float = ot.BLUR) -> list[dict[str, float]]:
    """:func:`checkpoint_summary` of the initial model (epoch 0) and of every per-epoch checkpoint ``kept``."""
    models = [initial_model(config)] + [load_model(path)[0] for path in kept]
    return [checkpoint_summary(model, split, truth, indices, blur) for model in models]


# -- token correspondences --------------------------------------------------------------------------
def clip_batch(split: Split, indices, alignment: bool = False) -> Batch:
    """The clips ``indices`` of a split as one padded :class:`Batch` (padding kept, so frame ``t``
    stays column ``t`` of the truth tables); ``alignment`` adds the true tables (oracle controls)."""
    indices = np.atleast_1d(np.asarray(indices))
    if indices.size == 0 or indices.min() < 0 or indices.max() >= len(split):
        raise ValueError(f"clip indices must be in [0, {len(split)}), got {indices.tolist()}")
    dataset = MMSADataset(split, alignment=alignment)
    return collate([dataset[int(i)] for i in indices])


def state_spread(states: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean cosine distance between the real tokens of a clip and their clip's mean token, averaged
    over clips: ``(B, T, d), (B, T) -> float``. Near 0 when the states collapse onto one direction
    (an OT loss can then vanish with no frame on its word); about 1 for unrelated directions."""
    unit = torch.nn.functional.normalize(states.double(), dim=-1)
    centre = torch.nn.functional.normalize((unit * mask[..., None]).sum(1), dim=-1)
    distance = 1 - (unit * centre[:, None]).sum(-1)
    return ((distance * mask).sum(1) / mask.sum(1)).mean().item()


def fit_word_probe(frames: np.ndarray, words: np.ndarray, table: np.ndarray, ridge: float = 1.0):
    """Ridge regression (with a bias) from each frame ``frames (N, T, d_in)`` that has a word in
    ``table (N, T)`` (word indices; negative: padding or a pause) to its word's row of ``words (N, W,
    d_out)``. Returns ``project``: ``(..., d_in) -> (..., d_out)``."""
    rows, columns = np.nonzero(table >= 0)
    inputs = np.c_[frames[rows, columns], np.ones(len(rows))]
    targets = words[rows, table[rows, columns]]
    weights = np.linalg.solve(inputs.T @ inputs + ridge * np.eye(inputs.shape[1]), inputs.T @ targets)
    return lambda x: np.concatenate([x, np.ones(x.shape[:-1] + (1,), dtype=x.dtype)], axis=-1) @ weights


def fit_supervised_projection(split: Split, modality: str, ridge: float = 1.0):
    """The control that is given the tables: ridge regression, on ``split`` (the training split),
    from each frame of ``modality`` to the text token of its true word (:func:`fit_word_probe` on
    the input features). Returns ``project``: frames ``(..., d_m)`` -> ``(..., d_l)``, in the text's
    space, where the OT plans can find the words."""
    if split.alignment is None:
        raise ValueError("fit_supervised_projection needs the split's true tables (a synthetic file)")
    return fit_word_probe(split.features[modality], split.features["text"], split.alignment[modality], ridge)


def supervised_emissions(train: Split, test: Split, modality: str, temperature: float = 0.1):
    """A reading of the frames given the tables: each frame of ``test`` projected into the text's space
    by :func:`fit_supervised_projection` (fitted on ``train``), its cosine with each word of its clip
    over ``temperature`` as ``log p(word | frame)`` (:func:`~alignlib.align.monotone.emission_scores`,
    normalised over the frame's words). Returns ``scores (B, T_m, W)``, ``frame_mask (B, T_m)``,
    ``word_mask (B, W)`` and the true words ``table (B, T_m)``."""
    project = fit_supervised_projection(train, modality)
    frames, words = (nn.functional.normalize(torch.as_tensor(v).double(), dim=-1)
                     for v in (project(test.features[modality]), test.features["text"]))
    frame_mask, word_mask = (torch.as_tensor(test.masks[k]) for k in (modality, "text"))
    scores = monotone.emission_scores(frames @ words.transpose(1, 2) / temperature, frame_mask, word_mask,
                                      normalise="frames")
    return scores, frame_mask, word_mask, torch.as_tensor(test.alignment[modality]).long()


def whitening(states: torch.Tensor, mask: torch.Tensor, shrink: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean (d,), W (d, d))`` of the real tokens of ``states (B, T, d)`` (``mask (B, T)``): their
    mean and the symmetric (ZCA) whitening ``W = V diag(1 / sqrt(λ + ε)) V^T`` of their covariance
    ``V diag(λ) V^T``, ``ε = shrink * mean(λ)`` keeping directions of no variance finite; so that
    ``(x - mean) @ W`` has covariance ``V diag(λ / (λ + ε)) V^T``: the identity wherever ``λ >> ε``
    (trained states are anisotropic: their spectra span several decades, hence the small default)."""
    tokens = states[mask].double()
    mean = tokens.mean(0)
    eigenvalues, vectors = torch.linalg.eigh(torch.cov(tokens.T))
    eigenvalues = eigenvalues.clamp_min(0)
    scale = (eigenvalues + shrink * eigenvalues.mean()).rsqrt()
    return mean, (vectors * scale) @ vectors.T


@torch.no_grad()
def state_controls(model: nn.Module, train: Split, test: Split, train_indices, test_indices,
                   ridge: float = 1.0) -> dict[str, float]:
    """The controls of a "no plan between trained states finds the words" claim, on the clips
    ``test_indices`` of ``test`` (its true tables), the statistics from the clips ``train_indices`` of ``train``:

    * ``{m}_exact_centred``, ``{m}_exact_whitened``: the share of frames on their word under the exact
      OT plan between the states with each modality's training mean removed, then also whitened
      (:func:`whitening`): a large shared offset or a few dominant directions cannot hide the words then;
    * ``{m}_probe``: the share of frames whose state, mapped by a ridge probe fitted with the tables on
      the training clips (:func:`fit_word_probe`: frame state -> its word's text input token, the
      word's content), is nearest (cosine) to its own word's token among the clip's words; and
      ``{m}_probe_r2``, the probe's R² on the test frames. Is the word in the state at all?"""
    if train.alignment is None or test.alignment is None:
        raise ValueError("state_controls needs the splits' true tables (a synthetic file)")
    fitted, scored = clip_batch(train, train_indices), clip_batch(test, test_indices)
    before, after = token_states(model, fitted), token_states(model, scored)
    rows = {"train": np.atleast_1d(np.asarray(train_indices)), "test": np.atleast_1d(np.asarray(test_indices))}
    text = {"train": train.features["text"][rows["train"]], "test": test.features["text"][rows["test"]]}
    summary = {}
    for m in SOURCES:
        truth = torch.as_tensor(test.alignment[m][rows["test"]]).long()
        stats = {k: whitening(before[k], fitted.masks[k]) for k in (m, "text")}
        for name, change in (("centred", lambda x, k: x - stats[k][0]),
                             ("whitened", lambda x, k: (x - stats[k][0]) @ stats[k][1])):
            moved = {k: change(after[k].double(), k) for k in (m, "text")}
            plan = ot.plan(moved[m], moved["text"], scored.masks[m], scored.masks["text"], method="exact", **PLAN_SETTINGS)
            summary[f"{m}_exact_{name}"] = frame_accuracy(ot.frame_words(plan, scored.masks[m]), truth, scored.masks[m])
        project = fit_word_probe(before[m].double().numpy(), text["train"], train.alignment[m][rows["train"]], ridge)
        guess = torch.as_tensor(project(after[m].double().numpy()))                      # (B, T, d_l)
        cosine = torch.nn.functional.normalize(guess, dim=-1) @ torch.nn.functional.normalize(
            torch.as_tensor(text["test"]).double(), dim=-1).transpose(1, 2)               # (B, T, W)
        cosine = cosine.masked_fill(~scored.masks["text"][:, None], -torch.inf)
        summary[f"{m}_probe"] = frame_accuracy(cosine.argmax(-1), truth, scored.masks[m])
        real = truth >= 0
        target = torch.as_tensor(text["test"]).double()[torch.nonzero(real)[:, 0], truth[real]]
        residual = ((guess[real] - target) ** 2).sum()
        summary[f"{m}_probe_r2"] = float(1 - residual / ((target - target.mean(0)) ** 2).sum())
    return summary


def truth_tables(path: str | Path, split: str = "test") -> dict[str, np.ndarray]:
    """``{"audio", "vision": (N, T_m) int64}``: the true word of every frame of a synthetic file's split, -1 on padding."""
    tables = synthetic.load_correspondence(path)
    missing = [f"{split}_{m}" for m in SOURCES if f"{split}_{m}" not in tables]
    if missing:
        raise ValueError(f"{path}: no correspondence table {missing[0]!r}")
    return {m: tables[f"{split}_{m}"].astype(np.int64) for m in SOURCES}


@torch.no_grad()
def token_states(model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    """``{"text", "audio", "vision": (B, T_m, d)}``: AlignMamba-2's unimodal states ``H_m`` or
    AlignMamba-1's projected features (the tokens its relaxed plan aligns)."""
    model.eval()
    if isinstance(model, AlignMamba2):
        return model.unimodal_states(batch)
    if isinstance(model, AlignMamba1):
        return model.project(batch)
    raise ValueError(f"token_states: {type(model).__name__} has no per-modality tokens to align; "
                     "use AlignMamba1 or AlignMamba2")


def frame_accuracy(guess: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> float:
    """Share of the real frames that have a word (``truth >= 0``; a pause, :data:`~alignlib.data.NO_WORD`,
    counts as padding does) whose guessed word is the true one; ``guess``, ``truth``, ``mask``:
    ``(B, T_m)`` (for a plan ``(B, T_m, T_l)``, :func:`alignlib.align.ot.frame_words`)."""
    scored = mask & (truth >= 0)
    return ((guess == truth) & scored).sum().item() / max(scored.sum().item(), 1)


def per_clip_accuracy(guess: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """:func:`frame_accuracy` per clip: ``(B, T_m)`` x3 -> ``(B,)``."""
    scored = mask & (truth >= 0)
    hits = ((guess == truth) & scored).sum(1).double()
    return (hits / scored.sum(1).clamp_min(1)).numpy()


def pause_detection(guess: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """How well the guesses find the pauses among the real frames: ``{"precision", "recall", "f1"}`` of
    the frames guessed :data:`~alignlib.data.NO_WORD` against the true pause frames (``(B, T_m)`` x3;
    NaN where a ratio has nothing to count, as for a method that never says "no word")."""
    said, true = (guess == NO_WORD) & mask, (truth == NO_WORD) & mask
    hits = (said & true).sum().item()
    precision = hits / said.sum().item() if said.any() else float("nan")
    recall = hits / true.sum().item() if true.any() else float("nan")
    f1 = 2 * hits / (said.sum().item() + true.sum().item()) if (said | true).any() else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1}


def correspondence_floors(split: Split) -> dict[str, float]:
    """What a guess that reads no feature scores on a synthetic split's frames that have a word:
    ``{m}_chance`` (a word drawn uniformly: the mean of ``1 / W`` over those frames) and
    ``{m}_proportional`` (:func:`alignlib.align.ot.proportional_plan`, every real frame at its
    proportional time), for ``m`` audio and video."""
    if split.alignment is None:
        raise ValueError("correspondence_floors needs the split's true tables (a synthetic file)")
    words = torch.as_tensor(split.masks["text"])
    floors = {}
    for m in SOURCES:
        mask, truth = torch.as_tensor(split.masks[m]), torch.as_tensor(split.alignment[m])
        scored = mask & (truth >= 0)
        floors[f"{m}_chance"] = (1 / words.sum(1, keepdim=True).double()).expand_as(scored)[scored].mean().item()
        proportional = ot.proportional_plan(mask[..., None].double(), words[..., None].double(), mask, words)
        floors[f"{m}_proportional"] = frame_accuracy(ot.frame_words(proportional, mask), truth, mask)
    return floors


@dataclass
class Correspondences:
    """Plans and accuracies for some clips of a split.

    ``plans[(modality, method)]``: ``(B, T_m, T_l)``; ``truth[m]``: ``(B, T_m)`` word indices (-1 on
    padding, -2 on a pause); ``states``: the aligned tokens (:func:`token_states`) ``{"text", "audio", "vision": (B, T, d)}``;
    ``masks``: ``{"text", "audio", "vision": (B, T)}`` bool; ``accuracy[m][method]``: share of the real
    frames that have a word whose plan sends them to it (:func:`alignlib.align.ot.frame_words`,
    :func:`frame_accuracy`); ``clip_accuracy[m][method]``: the same per clip, ``(B,)``;
    ``pauses[m][method]``: :func:`pause_detection`."""

    plans: dict
    truth: dict
    states: dict
    masks: dict
    accuracy: dict
    clip_accuracy: dict
    pauses: dict


def correspondences(model: nn.Module, split: Split, truth: dict[str, np.ndarray], indices,
                    methods=METHODS, blur: float = ot.BLUR) -> Correspondences:
    """Plans of ``methods`` (:func:`alignlib.align.ot.plan`) from each clip's audio and video tokens
    onto its words (see :func:`token_states`), scored against ``truth`` (``{"audio", "vision":
    (N, T_m)}``, as :func:`truth_tables`); ``blur`` is the entropic plans'."""
    batch = clip_batch(split, indices, alignment=bool(getattr(model, "needs_alignment", False)))
    states = token_states(model, batch)
    own = own_plans(model, batch)
    rows = torch.as_tensor(np.atleast_1d(np.asarray(indices)))
    plans, truths, accuracy, per_clip, pauses = {}, {}, {}, {}, {}
    for m in SOURCES:
        mask = batch.masks[m]
        truths[m] = torch.as_tensor(truth[m])[rows].long()
        if truths[m].shape != mask.shape:
            raise ValueError(f"truth[{m!r}]: expected rows of {mask.shape[1]} frames, got {tuple(truth[m].shape)}")
        for method in methods:
            plans[(m, method)] = ot.plan(states[m].double(), states["text"].double(), mask, batch.masks["text"],
                                         method=method, blur=blur, **PLAN_SETTINGS)
        if own:
            plans[(m, "model")] = own[m]
        guesses = {k: ot.frame_words(plans[(m, k)], mask) for k in (*methods, *(("model",) if own else ()))}
        accuracy[m] = {k: frame_accuracy(g, truths[m], mask) for k, g in guesses.items()}
        per_clip[m] = {k: per_clip_accuracy(g, truths[m], mask) for k, g in guesses.items()}
        pauses[m] = {k: pause_detection(g, truths[m], mask) for k, g in guesses.items()}
    return Correspondences(plans, truths, states, batch.masks, accuracy, per_clip, pauses)


@torch.no_grad()
def own_plans(model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    """AlignMamba-1's own plans ``{"audio", "vision": (B, T_m, T_l)}`` onto the words at their
    positions in ``batch`` (whatever its ``plan``: relaxed, proportional, oracle, shuffled,
    learned); empty for other models."""
    if not isinstance(model, AlignMamba1):
        return {}
    model.eval()
    plans, _ = model.plans(batch, model.project(batch))
    order = pack(batch.masks["text"], batch.masks["text"])[2]
    return {m: unpack(plan.transpose(1, 2), order).transpose(1, 2) for m, plan in plans.items()}  # packed words -> positions


@torch.no_grad()
def alignment_losses(model: nn.Module, batch: Batch) -> dict[str, float]:
    """AlignMamba-2's unweighted alignment losses on ``batch``: ``{"ot", "mmd"}``, each summed over
    (audio, text) and (vision, text) and averaged over clips, as in training before ``lambda`` (the
    OT loss at the model's own ``config.blur``)."""
    states, masks = token_states(model, batch), batch.masks
    pairs = [(states[m], states["text"], masks[m], masks["text"]) for m in SOURCES]
    return {"ot": sum(ot.ot_distance(*p, blur=model.config.blur).mean().item() for p in pairs),
            "mmd": sum(mmd.mmd2(*p).mean().item() for p in pairs)}


def checkpoint_summary(model: nn.Module, split: Split, truth: dict[str, np.ndarray], indices,
                       blur: float = ot.BLUR) -> dict[str, float]:
    """One checkpoint's numbers on the clips ``indices`` of ``split``, flat for a results table:
    ``{m}_{method}`` (``m`` audio or vision, ``method`` one of :data:`METHODS`, ``blur`` the entropic
    plans') the share of frames on their true word, ``{m}_chance`` that of a word drawn uniformly (the mean of ``1 / W``
    over the frames), ``ot`` and ``mmd`` the unweighted alignment losses, and for
    Modality-Aware fusion ``shared_{projection}_{modality}`` the shared expert's mean share and,
    with learned routing, ``mi_{router}`` the routing mutual information in bits."""
    found = correspondences(model, split, truth, indices, blur=blur)
    batch = clip_batch(split, indices)
    summary = {f"{m}_{method}": value for m, scores in found.accuracy.items() for method, value in scores.items()}
    words = found.masks["text"].sum(1, keepdim=True).double()
    summary.update({f"{m}_chance": (1 / words).expand_as(found.masks[m])[found.masks[m]].mean().item() for m in SOURCES})
    summary.update(alignment_losses(model, batch))
    if isinstance(model, AlignMamba2) and model.config.moe:
        activity = record_expert_activity(model, batch)
        for name in sorted(activity.shares):
            table = share_table(activity, name)
            summary.update({f"shared_{name.replace('.mixer', '')}_{m}": float(table[k, -1])
                            for k, m in enumerate(MODALITIES)})
        summary.update({f"mi_{name.replace('.mixer', '')}": bits
                        for name, bits in routing_mutual_information(activity).items()})
    return summary


# -- expert activations -----------------------------------------------------------------------------
@dataclass
class ExpertActivity:
    """Expert activity of AlignMamba-2's fusion layers on one batch, over the packed sequence
    ``[H_A; H_V; H_L]`` of length ``L``.

    ``shares[name]``: ``(B, L, M + 1)`` each expert's share of a token's update in the projection
    ``name`` (``fusion.K.mixer.in_proj`` / ``out_proj``; norms of the contributions, normalised to
    sum to 1; the shared expert last); ``probabilities[name]``: ``(B, L, M)`` a learned router's gate
    probabilities (empty for deterministic routing); ``mask``, ``modality`` (ids in ``MODALITIES``
    order) and ``position`` (relative position within the token's modality, in ``[0, 1)``): ``(B, L)``."""

    shares: dict
    probabilities: dict
    mask: torch.Tensor
    modality: torch.Tensor
    position: torch.Tensor


@torch.no_grad()
def record_expert_activity(model: nn.Module, batch: Batch) -> ExpertActivity:
    """Run ``model`` (an AlignMamba-2 with Modality-Aware Mamba fusion) on ``batch`` and record its experts."""
    if not isinstance(model, AlignMamba2) or not model.config.moe:
        raise ValueError(f"record_expert_activity: needs an AlignMamba2 with moe=True, got {type(model).__name__}")
    model.eval()
    with record_experts(model) as records:
        model(batch)
        recorded = dict(records)
    _, mask, ids = packed_concat(model.unimodal_states(batch), batch.masks)
    position = torch.zeros(mask.shape, dtype=torch.float64)
    for m in range(len(MODALITIES)):
        selected = mask & (ids == m)
        rank = selected.long().cumsum(1) - 1
        position = torch.where(selected, rank / selected.sum(1, keepdim=True).clamp_min(1), position)
    shares = {name: r / r.sum(-1, keepdim=True).clamp_min(1e-12) for name, r in recorded.items() if "proj" in name}
    probabilities = {name: r for name, r in recorded.items() if "router" in name}
    return ExpertActivity(shares, probabilities, mask, ids, position)


def share_table(activity: ExpertActivity, name: str) -> np.ndarray:
    """``(M, M + 1)``: row ``m`` is each expert's mean share over the real tokens of modality ``m``."""
    if name not in activity.shares:
        raise ValueError(f"unknown projection {name!r}; choose one of {sorted(activity.shares)}")
    shares = activity.shares[name].double()
    rows = [shares[activity.mask & (activity.modality == m)].mean(0) for m in range(len(MODALITIES))]
    return torch.stack(rows).numpy()


def shares_by_position(activity: ExpertActivity, name: str, bins: int = 5) -> np.ndarray:
    """``(M, bins, M + 1)``: mean expert shares of each modality's tokens in equal bins of relative
    position (NaN for an empty bin)."""
    if name not in activity.shares or bins < 1:
        raise ValueError(f"need a known projection and bins >= 1, got {name!r}, {bins}")
    shares = activity.shares[name].double()
    which = (activity.position * bins).long().clamp(max=bins - 1)
    table = np.full((len(MODALITIES), bins, shares.shape[-1]), np.nan)
    for m in range(len(MODALITIES)):
        for k in range(bins):
            selected = activity.mask & (activity.modality == m) & (which == k)
            if selected.any():
                table[m, k] = shares[selected].mean(0).numpy()
    return table


def mutual_information_bits(modality: torch.Tensor, expert: torch.Tensor) -> float:
    """Mutual information ``I(modality; expert)`` in bits between two integer labels per token.

    Computed from the joint histogram ``p(m, e)``: ``sum p(m, e) log2(p(m, e) / (p(m) p(e)))``.
    It is 0 when the choice ignores the modality and ``H(modality)`` (``log2 M`` for balanced
    modalities) when the expert determines it.

    Args:
        modality, expert: integer tensors of one shape (any), one entry per token.
    """
    if modality.shape != expert.shape:
        raise ValueError(f"modality and expert shapes differ: {tuple(modality.shape)} vs {tuple(expert.shape)}")
    if modality.is_floating_point() or expert.is_floating_point():
        raise TypeError("modality and expert must be integer labels")
    if modality.numel() == 0 or (modality < 0).any() or (expert < 0).any():
        raise ValueError("modality and expert must be non-empty, non-negative labels")
    m, e = modality.flatten().long(), expert.flatten().long()
    joint = torch.zeros(int(m.max()) + 1, int(e.max()) + 1, dtype=torch.float64)
    joint.index_put_((m, e), torch.ones_like(m, dtype=torch.float64), accumulate=True)
    joint /= joint.sum()
    independent = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)
    seen = joint > 0
    return (joint[seen] * torch.log2(joint[seen] / independent[seen])).sum().item()


def routing_mutual_information(activity: ExpertActivity) -> dict[str, float]:
    """``{router name: I(modality; chosen expert)}`` in bits over the real tokens (at most ``log2 M``);
    the chosen expert is the router's most probable one."""
    return {name: mutual_information_bits(activity.modality[activity.mask], p.argmax(-1)[activity.mask])
            for name, p in activity.probabilities.items()}
