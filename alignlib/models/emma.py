"""EMMA at teaching scale: a small Mamba multimodal LM with pixel-wise alignment and multi-scale
feature fusion (MFF), after Xing et al., "EMMA: Empowering Multi-modal Mamba with Structural and
Hierarchical Alignment" (arXiv 2410.05938).

The model (:class:`EmmaLM`), as a Cobra/LLaVA-style MLLM in miniature:

1. **Patch embedding**: the image ``(B, H, W)`` is cut into ``P`` square patches in raster order
   (:func:`patchify`); a linear map plus a learned position embedding gives the visual features
   ``(B, P, d_vision)`` (the stand-in for the frozen vision encoder; here it is trained).
2. **Projector**: a two-layer GELU MLP to the LM width, ``(B, P, d_model)``: the visual tokens.
3. **LM**: a stack of :class:`alignlib.ssm.mamba.MambaLayer` over ``[visual tokens; question tokens]``,
   the question right-padded with a mask. Mamba is causal, so the question reads the image and the
   image never reads the question.
4. **Answer head**: a linear map from the final (normed) state at the last real question token to
   the answer vocabulary. Padding trails that token, so it cannot change the answer.

EMMA's two additions:

* **Pixel-wise alignment** (structural): a light decoder (two-layer GELU MLP, token by token) maps
  the LM's final outputs at the visual positions back to the pixels of the patches; the loss is
  the mean squared error (:func:`pixel_alignment_loss`) with weight ``pixel_weight`` (λ) beside
  the answer's cross-entropy. Choices the paper leaves open: the output at visual position ``i``
  reconstructs patch ``i`` itself (it has read patches ``0..i``: the causal, autoregressive
  order), the targets are the raw pixels in [0, 1] (the official code normalises each patch's
  features; an empty patch of a digit scene has no variance to normalise), and the decoder is an
  MLP rather than the official cross-attention + Mamba decoder.
* **MFF** (hierarchical): the visual-token states after the projector and after each block but
  the last are each RMS-normalised, concatenated and mapped back to ``d_model`` by one linear
  layer (initialised at zero, so the fused model starts as the baseline); the result is added to
  the visual positions of the residual stream that the last block reads. The official code
  (``xingyifei2016/EMMA``) fuses normalised intermediate states (layers 24, 36, 48 and the last of
  64) the same way but feeds them to its pixel decoder; here they feed the LM, so that MFF also
  acts without the reconstruction loss and the four variants (baseline, +pixel, +MFF, +both)
  separate the two ideas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from alignlib.common.checks import check_finite, trusted
from alignlib.data.digit_scenes import ANSWER_INDEX, ANSWERS, QUESTION_TYPES, WORDS, DigitScenes
from alignlib.ssm.mamba import MambaStack

VALID_EVALUATIONS = 20  # validation passes over a run: after steps ceil(k * steps / 20), k = 1..20 (every step if fewer)
FLAT_WINDOW = 5  # flat: the best of the last 5 passes (a quarter of 20) improves on the best before by < 1 s.e.


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``(B, H, W) -> (B, P, patch_size**2)``: patches in raster order, pixels in raster order inside."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images: expected a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 3:
        raise ValueError(f"images: expected 3 dims (B, H, W), got shape {tuple(images.shape)}")
    batch, height, width = images.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"images: height and width {height}x{width} must be multiples of patch_size={patch_size}")
    grid = images.reshape(batch, height // patch_size, patch_size, width // patch_size, patch_size)
    return grid.permute(0, 1, 3, 2, 4).reshape(batch, -1, patch_size * patch_size)


def unpatchify(patches: torch.Tensor, patch_size: int, height: int, width: int) -> torch.Tensor:
    """The inverse of :func:`patchify`: ``(B, P, patch_size**2) -> (B, H, W)``."""
    batch = patches.shape[0]
    grid = patches.reshape(batch, height // patch_size, width // patch_size, patch_size, patch_size)
    return grid.permute(0, 1, 3, 2, 4).reshape(batch, height, width)


def pixel_alignment_loss(reconstruction: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """EMMA's structural alignment loss: the mean over batch, patches and pixels of the squared
    error, ``reconstruction, patches (B, P, p)`` -> scalar."""
    if reconstruction.shape != patches.shape:
        raise ValueError(f"reconstruction {tuple(reconstruction.shape)} and patches {tuple(patches.shape)} "
                         "must have the same shape (B, P, pixels per patch)")
    return (reconstruction - patches).pow(2).mean()


@dataclass
class EmmaConfig:
    """Sizes and switches of :class:`EmmaLM`. ``pixel_weight`` is λ (0 = no pixel decoder)."""

    image_size: int = 16
    patch_size: int = 4
    d_vision: int = 32
    d_model: int = 48
    n_layers: int = 4
    d_state: int = 16
    pixel_weight: float = 0.0
    mff: bool = False
    vocab_size: int = len(WORDS)
    n_answers: int = len(ANSWERS)

    def __post_init__(self):
        sizes = {name: getattr(self, name) for name in ("image_size", "patch_size", "d_vision", "d_model", "n_layers",
                                                        "d_state", "vocab_size", "n_answers")}
        bad = {name: value for name, value in sizes.items() if not isinstance(value, int) or value < 1}
        if bad:
            raise ValueError(f"sizes must be positive integers, got {bad}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} must be a multiple of patch_size={self.patch_size}")
        if self.n_layers < 2 and self.mff:
            raise ValueError("mff needs n_layers >= 2: it fuses earlier layers' states into a later one")
        if not (self.pixel_weight >= 0 and math.isfinite(self.pixel_weight)):
            raise ValueError(f"pixel_weight must be a finite number >= 0, got {self.pixel_weight!r}")


@dataclass
class EmmaOutput:
    """What :meth:`EmmaLM.forward` returns.

    Attributes:
        logits: ``(B, n_answers)`` at the last real question token.
        patches: ``(B, P, patch_size**2)`` the image's patches (the reconstruction target).
        reconstruction: ``(B, P, patch_size**2)`` the pixel decoder's output, or None without one.
        visual_states: ``n_layers + 1`` tensors ``(B, P, d_model)``: the visual tokens entering the
            LM, then the residual stream at the visual positions after each block.
    """

    logits: torch.Tensor
    patches: torch.Tensor
    reconstruction: torch.Tensor | None
    visual_states: list[torch.Tensor] = field(default_factory=list)


class MultiScaleFusion(nn.Module):
    """MFF: ``n_sources`` visual states ``(B, P, d)`` -> one ``(B, P, d)``, each source RMS-normalised,
    concatenated and projected by one linear layer (zero-initialised)."""

    def __init__(self, d_model: int, n_sources: int):
        super().__init__()
        self.norms = nn.ModuleList(nn.RMSNorm(d_model) for _ in range(n_sources))
        self.proj = nn.Linear(n_sources * d_model, d_model)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        if len(states) != len(self.norms):
            raise ValueError(f"states: expected {len(self.norms)} tensors, got {len(states)}")
        return self.proj(torch.cat([norm(s) for norm, s in zip(self.norms, states)], dim=-1))


class EmmaLM(nn.Module):
    """The small Mamba MLLM (module docstring): ``images (B, H, W)``, ``tokens (B, T)``,
    ``mask (B, T)`` -> :class:`EmmaOutput`."""

    def __init__(self, config: EmmaConfig | None = None):
        super().__init__()
        self.config = config = config or EmmaConfig()
        n_patches = (config.image_size // config.patch_size) ** 2
        pixels = config.patch_size ** 2
        self.patch_embed = nn.Linear(pixels, config.d_vision)
        self.position = nn.Parameter(0.02 * torch.randn(n_patches, config.d_vision))
        self.projector = nn.Sequential(nn.Linear(config.d_vision, config.d_model), nn.GELU(),
                                       nn.Linear(config.d_model, config.d_model))
        self.embed = nn.Embedding(config.vocab_size, config.d_model, padding_idx=0)
        self.lm = MambaStack(config.d_model, config.n_layers, d_state=config.d_state)
        self.answer_head = nn.Linear(config.d_model, config.n_answers)
        self.fusion = MultiScaleFusion(config.d_model, config.n_layers) if config.mff else None
        self.decoder = (nn.Sequential(nn.Linear(config.d_model, config.d_model), nn.GELU(),
                                      nn.Linear(config.d_model, pixels)) if config.pixel_weight > 0 else None)

    def _check(self, images, tokens, mask):
        size = self.config.image_size
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            raise TypeError(f"images: expected a floating torch.Tensor, got {getattr(images, 'dtype', type(images))}")
        if images.dim() != 3 or tuple(images.shape[1:]) != (size, size):
            raise ValueError(f"images: expected shape (B, {size}, {size}), got {tuple(images.shape)}")
        check_finite(images, "images")
        if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.int64:
            raise TypeError(f"tokens: expected an int64 torch.Tensor, got {getattr(tokens, 'dtype', type(tokens))}")
        if tokens.dim() != 2 or tokens.shape[0] != images.shape[0] or tokens.shape[1] == 0:
            raise ValueError(f"tokens: expected shape (B={images.shape[0]}, T > 0), got {tuple(tokens.shape)}")
        if tokens.min() < 0 or tokens.max() >= self.config.vocab_size:
            raise ValueError(f"tokens: word indices must lie in [0, {self.config.vocab_size}), "
                             f"got [{int(tokens.min())}, {int(tokens.max())}]")
        if mask is None:
            return torch.ones_like(tokens, dtype=torch.bool)
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != tokens.shape:
            raise ValueError(f"mask: expected a bool tensor of shape {tuple(tokens.shape)} (B, T), "
                             f"got {getattr(mask, 'dtype', type(mask))} {tuple(getattr(mask, 'shape', ()))}")
        if not mask[:, 0].all():
            raise ValueError(f"mask: question(s) {(~mask[:, 0]).nonzero().flatten().tolist()} have no real token")
        if (mask[:, 1:] & ~mask[:, :-1]).any():
            raise ValueError("mask: padding must trail the question (right padding: True... then False...)")
        return mask

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> EmmaOutput:
        mask = self._check(images, tokens, mask)
        patches = patchify(images, self.config.patch_size)  # (B, P, p)
        visual = self.projector(self.patch_embed(patches) + self.position)  # (B, P, d)
        n_visual = visual.shape[1]
        hidden = torch.cat([visual, self.embed(tokens)], dim=1)  # (B, P + T, d)
        sequence_mask = None if mask.all() else torch.cat([mask.new_ones(mask.shape[0], n_visual), mask], dim=1)
        states = [visual]
        last = len(self.lm.layers) - 1
        for index, block in enumerate(self.lm.layers):
            if self.fusion is not None and index == last:
                fused = self.fusion(states)  # the states after the projector and blocks 1..n_layers-1
                hidden = torch.cat([hidden[:, :n_visual] + fused, hidden[:, n_visual:]], dim=1)
            hidden, _ = block(hidden, sequence_mask)
            states.append(hidden[:, :n_visual])
        out = self.lm.norm(hidden)
        last_token = n_visual + mask.sum(1) - 1  # (B,)
        logits = self.answer_head(out[torch.arange(out.shape[0]), last_token])
        reconstruction = self.decoder(out[:, :n_visual]) if self.decoder is not None else None
        return EmmaOutput(logits, patches, reconstruction, states)

    def loss(self, output: EmmaOutput, answers: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross-entropy of the answer plus ``pixel_weight`` x :func:`pixel_alignment_loss`; returns
        the total and its parts ``{"answer", "pixel"}`` (``"pixel"`` only with a decoder)."""
        parts = {"answer": F.cross_entropy(output.logits, answers)}
        total = parts["answer"]
        if output.reconstruction is not None:
            parts["pixel"] = pixel_alignment_loss(output.reconstruction, output.patches)
            total = total + self.config.pixel_weight * parts["pixel"]
        return total, parts


def train(model: EmmaLM, data: DigitScenes, steps: int, batch_size: int = 64, lr: float = 3e-3,
          seed: int = 0, progress: bool = True,
          valid_data: DigitScenes | None = None) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """AdamW with a cosine learning-rate decay and gradient clipping at 1.0 over ``steps`` random
    minibatches of ``data``. Returns the loss parts of every step, and the validation curve: with
    ``valid_data``, one point ``{"step", "scenes", "error", "answer_loss"}`` after each step
    ``ceil(k * steps / VALID_EVALUATIONS)``, k = 1..20 (every step of a run shorter than that; the
    last one after the last step), else an empty list. The scenes are ours, finite by construction:
    the per-pass NaN checks are skipped (:func:`alignlib.common.checks.trusted`), and a loss that is
    not finite stops the run with an error naming its step."""
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    checkpoints = {-(-steps * k // VALID_EVALUATIONS) for k in range(1, VALID_EVALUATIONS + 1)}
    history, curve = [], []
    model.train()
    with trusted():
        for step in tqdm(range(1, steps + 1), desc="training", disable=not progress, leave=False):
            batch = data.subset(torch.randint(len(data), (batch_size,), generator=generator))
            total, parts = model.loss(model(batch.images, batch.tokens, batch.mask), batch.answers)
            optimizer.zero_grad()
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            history.append({name: value.item() for name, value in parts.items()})
            if not all(map(math.isfinite, history[-1].values())):
                raise FloatingPointError(f"training diverged at step {step}: loss parts {history[-1]}")
            if valid_data is not None and step in checkpoints:
                curve.append({"step": step, "scenes": len(valid_data), **validate(model, valid_data)})
                model.train()
    model.eval()
    return history, curve


@torch.no_grad()
def validate(model: EmmaLM, data: DigitScenes, batch_size: int = 512) -> dict[str, float]:
    """The answer's error rate and mean cross-entropy on ``data`` (the model left in eval mode)."""
    model.eval()
    wrong, loss = 0.0, 0.0
    with trusted():  # our scenes are finite by construction
        for batch in data.batches(batch_size):
            logits = model(batch.images, batch.tokens, batch.mask).logits
            wrong += (logits.argmax(-1) != batch.answers).sum().item()
            loss += F.cross_entropy(logits, batch.answers, reduction="sum").item()
    return {"error": wrong / len(data), "answer_loss": loss / len(data)}


def convergence(history: list[dict], curve: list[dict]) -> dict:
    """How a run ended, in the trainer's fields (:func:`alignlib.train.convergence`): ``optimizer_steps``,
    ``stopped_by`` (always ``steps``: a fixed budget) and ``valid_flat``: the best validation error
    of the last :data:`FLAT_WINDOW` passes improves on the best before them, ``e``, by less than one
    binomial standard error ``sqrt(e (1 - e) / scenes)``: less than the validation scenes can
    resolve (the trainer's 1 % relative tolerance means nothing for an error near 0). False for a
    curve of :data:`FLAT_WINDOW` passes or fewer. A run that never left the image-blind plateau is
    flat too: read the curve beside the image-blind error."""
    errors = [point["error"] for point in curve]
    flat = False
    if len(errors) > FLAT_WINDOW:
        before, recent = min(errors[:-FLAT_WINDOW]), min(errors[-FLAT_WINDOW:])
        gain = before - recent
        flat = gain <= 0 or gain < math.sqrt(before * (1 - before) / curve[0]["scenes"])
    return {"optimizer_steps": len(history), "stopped_by": "steps", "valid_flat": bool(flat)}


@torch.no_grad()
def predict(model: EmmaLM, data: DigitScenes, batch_size: int = 512) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Predicted answers ``(N,)`` and the visual states of every layer, ``n_layers + 1`` tensors ``(N, P, d)``."""
    model.eval()
    answers, states = [], []
    with trusted():  # our scenes are finite by construction
        for batch in data.batches(batch_size):
            output = model(batch.images, batch.tokens, batch.mask)
            answers.append(output.logits.argmax(-1))
            states.append(output.visual_states)
    return torch.cat(answers), [torch.cat(layer) for layer in zip(*states)]


def evaluate(predicted: torch.Tensor, data: DigitScenes) -> dict[str, float]:
    """Accuracy overall and per question type, and the false-"yes" rate on absent digits."""
    correct = (predicted == data.answers).float()
    scores = {"accuracy": correct.mean().item()}
    for index, name in enumerate(QUESTION_TYPES):
        chosen = data.question_type == index
        scores[f"accuracy_{name}"] = correct[chosen].mean().item() if chosen.any() else float("nan")
    absent = data.question_type == QUESTION_TYPES.index("absent")
    scores["false_yes_rate"] = (predicted[absent] == ANSWER_INDEX["yes"]).float().mean().item()
    return scores


def fit_linear_probe(features: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ordinary least squares with an intercept, in float64: ``features (N, d)``, ``targets (N, k)``
    -> ``weight (d, k)``, ``bias (k,)`` minimising ``|features @ weight + bias - targets|^2``."""
    if features.dim() != 2 or targets.dim() != 2 or features.shape[0] != targets.shape[0]:
        raise ValueError(f"features (N, d) and targets (N, k) must share N, got {tuple(features.shape)} "
                         f"and {tuple(targets.shape)}")
    x, y = features.double(), targets.double()
    x_mean, y_mean = x.mean(0), y.mean(0)
    weight = torch.linalg.lstsq(x - x_mean, y - y_mean, driver="gelsd").solution
    return weight, y_mean - x_mean @ weight


def r2_score(targets: torch.Tensor, predictions: torch.Tensor) -> float:
    """Coefficient of determination pooled over outputs: ``1 - sum SSE / sum SST`` (scikit-learn's
    ``r2_score(..., multioutput="variance_weighted")``), ``(N, k)`` each."""
    targets, predictions = targets.double(), predictions.double()
    total = (targets - targets.mean(0)).pow(2).sum()
    if total == 0:
        raise ValueError("targets: no variance, R^2 is undefined")
    return 1.0 - ((targets - predictions).pow(2).sum() / total).item()


def probe_layers(train_states: list[torch.Tensor], train_patches: torch.Tensor, test_states: list[torch.Tensor],
                 test_patches: torch.Tensor) -> tuple[np.ndarray, list[torch.Tensor]]:
    """EMMA's motivating measurement: for every layer, a linear probe shared by all visual positions
    maps a visual token's state ``(d,)`` to its patch's pixels, fitted on the train scenes and scored
    on the test scenes. Returns the R^2 per layer and the test reconstructions ``(N, P, p)`` per layer."""
    r2, reconstructions = [], []
    flat_train, flat_test = train_patches.flatten(0, 1), test_patches.flatten(0, 1)
    for train_layer, test_layer in zip(train_states, test_states):
        weight, bias = fit_linear_probe(train_layer.flatten(0, 1), flat_train)
        predicted = test_layer.flatten(0, 1).double() @ weight + bias
        r2.append(r2_score(flat_test, predicted))
        reconstructions.append(predicted.float().reshape(test_patches.shape))
    return np.array(r2), reconstructions


@dataclass
class VariantResult:
    """What :func:`train_and_score` returns: the trained ``model``, the loss parts of every step
    (``history``), the validation curve (``valid_curve``, empty without validation scenes), the test
    ``scores`` of :func:`evaluate`, the probe's ``r2`` per layer and its test ``reconstructions``
    per layer ``(N, P, p)``."""

    model: EmmaLM
    history: list[dict[str, float]]
    valid_curve: list[dict[str, float]]
    scores: dict[str, float]
    r2: np.ndarray
    reconstructions: list[torch.Tensor]


def train_and_score(config: EmmaConfig, train_data: DigitScenes, test_data: DigitScenes, probe_data: DigitScenes,
                    steps: int, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
                    progress: bool = True, valid_data: DigitScenes | None = None) -> VariantResult:
    """One run of a variant: the model built under ``torch.manual_seed(seed)``, trained by
    :func:`train` (validated on ``valid_data`` when given), scored on ``test_data`` by
    :func:`evaluate`, and probed per layer by :func:`probe_layers` (fitted on ``probe_data``,
    scored on ``test_data``)."""
    torch.manual_seed(seed)
    model = EmmaLM(config)
    history, curve = train(model, train_data, steps, batch_size, lr, seed=seed, progress=progress, valid_data=valid_data)
    predicted, test_states = predict(model, test_data)
    _, probe_states = predict(model, probe_data)
    r2, reconstructions = probe_layers(probe_states, patchify(probe_data.images, config.patch_size), test_states,
                                       patchify(test_data.images, config.patch_size))
    return VariantResult(model, history, curve, evaluate(predicted, test_data), r2, reconstructions)
