"""Monotone alignment: frames that run forward in time through the words.

An alignment of ``n`` frames onto ``W`` words is *monotone* when the first frame sits on the first
word, the last frame on the last word, and each next frame stays on its word or moves to the next
one: a path along the words in order (no transition weights: every path is equally likely before the
scores, a uniform distribution over monotone alignments, not an HMM). Speech runs
forward in time, so the true frame-to-word map of a clip is such a path; OT plans know nothing of
time and may send neighbouring frames to words far apart.

Given scores ``e[i, j]`` (how well frame ``i`` fits word ``j``, as log-probabilities):

* :func:`log_partition` -- ``log Z = log sum_paths exp(sum_i e[i, path_i])`` by the forward recursion
  ``alpha[i, j] = e[i, j] + log(exp alpha[i-1, j] + exp alpha[i-1, j-1])``; differentiable, and its
  gradient with respect to ``e`` is the posterior (computed by the backward recursion).
* :func:`posterior` -- ``P(frame i on word j)`` over all monotone paths weighted by ``exp(score)``
  (forward-backward): a soft plan whose real rows sum to 1.
* :func:`best_path` -- the highest-scoring path (Viterbi, or hard dynamic time warping), traced back
  through the table and pointers of :func:`viterbi`.
* :func:`emission_scores` -- scores from a similarity: ``log p(frame | word)``, normalised over each
  word's frames. Normalising over each frame's words instead (``log p(word | frame)``, as CTC does)
  lets one "hub" word that resembles every frame absorb the clip.
* the plan method ``monotone`` (:func:`monotone_plan`) -- the posterior on the cosine similarity of
  two token sets, through :func:`alignlib.align.ot.plan`;
* :class:`MonotoneAligner` -- pointwise projections of frames and words trained by the alignment's
  own likelihood ``log Z`` (no frame-to-word table): a plan a model learns.

Shapes: scores ``(B, T, W)``, frame mask ``(B, T)``, word mask ``(B, W)`` (True = real; padding may
sit anywhere). Every clip needs at least as many real frames as real words.
"""
from __future__ import annotations

import torch
from torch import nn

from alignlib.align.ot import _prepare, register_plan
from alignlib.common.sequences import pack_order

NEG = -1e4  # log-score of an impossible step: finite, so no inf - inf reaches a gradient


def _masks(scores, frame_mask, word_mask):
    if scores.dim() != 3:
        raise ValueError(f"scores: expected (B, T, W), got shape {tuple(scores.shape)}")
    batch, frames, words = scores.shape
    frame_mask = torch.ones(batch, frames, dtype=torch.bool, device=scores.device) if frame_mask is None else frame_mask
    word_mask = torch.ones(batch, words, dtype=torch.bool, device=scores.device) if word_mask is None else word_mask
    if frame_mask.shape != (batch, frames) or word_mask.shape != (batch, words):
        raise ValueError(f"masks: expected frame mask {(batch, frames)} and word mask {(batch, words)}, "
                         f"got {tuple(frame_mask.shape)} and {tuple(word_mask.shape)}")
    if frame_mask.dtype != torch.bool or word_mask.dtype != torch.bool:
        raise TypeError("masks: expected bool masks (True = real)")
    short = ((frame_mask.sum(1) < word_mask.sum(1)) | ~word_mask.any(1)).nonzero().flatten().tolist()
    if short:
        raise ValueError(f"a monotone alignment needs at least one real word and as many real frames as words; "
                         f"batch item(s) {short} have fewer")
    order = pack_order(word_mask)  # the real words first, in order: the chain of states
    return frame_mask, word_mask.gather(1, order), order


def _pack_words(scores, order):
    return scores.gather(2, order[:, None, :].expand_as(scores))


def _unpack_words(values, order):
    return torch.empty_like(values).scatter_(2, order[:, None, :].expand_as(values), values)


def _shift(alpha):
    """``alpha[:, j - 1]`` at column ``j`` (``NEG`` at column 0)."""
    return torch.nn.functional.pad(alpha[:, :-1], (1, 0), value=NEG)


def _forward(scores, frame_mask, word_mask):
    """``alpha (B, T, W)``: log-sum of the paths ending on word ``j`` at frame ``i`` (carried over padded frames)."""
    scores = scores.masked_fill(~word_mask[:, None, :], NEG)
    batch, frames, words = scores.shape
    start = torch.full((batch, words), NEG, dtype=scores.dtype, device=scores.device)
    start[:, 0] = 0.0  # before the first real frame: on the first word, with nothing scored
    alphas, alpha, seen = [], start, torch.zeros(batch, dtype=torch.bool, device=scores.device)
    for i in range(frames):
        real = frame_mask[:, i, None]
        previous = torch.where(seen[:, None], torch.logaddexp(alpha, _shift(alpha)), start)
        alpha = torch.where(real, scores[:, i] + previous, alpha)
        seen = seen | frame_mask[:, i]
        alphas.append(alpha)
    return torch.stack(alphas, 1)


def _last_word(alpha_end, word_mask):
    return alpha_end.gather(1, (word_mask.sum(1) - 1)[:, None]).squeeze(1)


def _backward(scores, frame_mask, word_mask):
    """``beta (B, T, W)``: log-sum over the rest of a path that is on word ``j`` at frame ``i``."""
    scores = scores.masked_fill(~word_mask[:, None, :], NEG)
    batch, frames, words = scores.shape
    end = torch.full((batch, words), NEG, dtype=scores.dtype, device=scores.device)
    end.scatter_(1, (word_mask.sum(1) - 1)[:, None], 0.0)
    betas, beta, after = [None] * frames, end, end  # after: beta of the next real frame
    for i in reversed(range(frames)):
        betas[i] = after
        real = frame_mask[:, i, None]
        # a path on word j at this real frame goes on to word j or j + 1 at the next real frame
        step = scores[:, i] + after
        nxt = torch.logaddexp(step, torch.nn.functional.pad(step[:, 1:], (0, 1), value=NEG))
        after = torch.where(real, nxt, after)
    return torch.stack(betas, 1)


class _LogPartition(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, frame_mask, word_mask):
        alpha = _forward(scores, frame_mask, word_mask)
        log_z = _last_word(alpha[:, -1], word_mask)
        ctx.save_for_backward(scores, frame_mask, word_mask, alpha, log_z)
        return log_z

    @staticmethod
    def backward(ctx, grad):
        scores, frame_mask, word_mask, alpha, log_z = ctx.saved_tensors
        post = _posterior(scores, frame_mask, word_mask, alpha, log_z)
        return grad[:, None, None] * post, None, None


def _posterior(scores, frame_mask, word_mask, alpha, log_z):
    beta = _backward(scores, frame_mask, word_mask)
    post = (alpha + beta - log_z[:, None, None]).exp()
    return post * frame_mask[..., None] * word_mask[:, None, :]


def log_partition(scores, frame_mask=None, word_mask=None) -> torch.Tensor:
    """``(B,)`` log of the summed ``exp(score)`` of every monotone path; its gradient is :func:`posterior`."""
    frame_mask, word_mask, order = _masks(scores, frame_mask, word_mask)
    return _LogPartition.apply(_pack_words(scores, order), frame_mask, word_mask)


@torch.no_grad()
def posterior(scores, frame_mask=None, word_mask=None) -> torch.Tensor:
    """``(B, T, W)`` probability that frame ``i`` sits on word ``j`` (real rows sum to 1, padding 0)."""
    frame_mask, word_mask, order = _masks(scores, frame_mask, word_mask)
    packed = _pack_words(scores, order)
    alpha = _forward(packed, frame_mask, word_mask)
    return _unpack_words(_posterior(packed, frame_mask, word_mask, alpha, _last_word(alpha[:, -1], word_mask)), order)


def _viterbi(scores, frame_mask, word_mask):
    """``(delta, advanced)``, both ``(B, T, W)`` on packed words: the best score of a path ending on word
    ``j`` at frame ``i``, and whether its best way in came from word ``j - 1`` (the traceback's pointer)."""
    scores = scores.masked_fill(~word_mask[:, None, :], NEG)
    batch, frames, words = scores.shape
    value = torch.full((batch, words), NEG, dtype=scores.dtype, device=scores.device)
    value[:, 0] = 0.0
    seen = torch.zeros(batch, dtype=torch.bool, device=scores.device)
    deltas, advanced = [], torch.zeros(batch, frames, words, dtype=torch.bool, device=scores.device)
    for i in range(frames):
        real = frame_mask[:, i, None]
        moved = _shift(value) > value
        best = torch.where(seen[:, None], torch.maximum(value, _shift(value)), value)
        value = torch.where(real, scores[:, i] + best, value)
        advanced[:, i] = moved & seen[:, None] & real
        seen = seen | frame_mask[:, i]
        deltas.append(value)
    return torch.stack(deltas, 1), advanced


@torch.no_grad()
def viterbi(scores, frame_mask=None, word_mask=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(delta, advanced)``, both ``(B, T, W)``: the recursion of :func:`best_path`, ``delta[i, j]`` the
    best score of a path on word ``j`` at frame ``i`` (the forward recursion with a max in place of the
    log-sum) and ``advanced[i, j]`` True where that path came from word ``j - 1`` (else it stayed on ``j``)."""
    frame_mask, word_mask, order = _masks(scores, frame_mask, word_mask)
    delta, advanced = _viterbi(_pack_words(scores, order), frame_mask, word_mask)
    return _unpack_words(delta, order), _unpack_words(advanced, order)


@torch.no_grad()
def best_path(scores, frame_mask=None, word_mask=None) -> torch.Tensor:
    """``(B, T)`` word of every frame on the highest-scoring monotone path (-1 on padded frames): the
    traceback of :func:`viterbi` from the last word at the last frame."""
    frame_mask, word_mask, order = _masks(scores, frame_mask, word_mask)
    _, advanced = _viterbi(_pack_words(scores, order), frame_mask, word_mask)
    batch, frames = frame_mask.shape
    path = torch.full((batch, frames), -1, dtype=torch.long, device=scores.device)
    word = word_mask.sum(1) - 1
    rows = torch.arange(batch, device=scores.device)
    for i in reversed(range(frames)):
        real = frame_mask[:, i]
        path[:, i] = torch.where(real, word, -1)
        word = torch.where(real & advanced[rows, i, word.clamp_min(0)], word - 1, word)
    return torch.where(path >= 0, order.gather(1, path.clamp_min(0)), -1)  # back to the words' own positions


def emission_scores(similarity, frame_mask=None, word_mask=None, normalise: str = "words") -> torch.Tensor:
    """Log-probabilities ``(B, T, W)`` from a similarity ``(B, T, W)`` (higher = more alike).

    ``normalise="words"``: ``log p(frame i | word j)``, a softmax over each word's real frames
    (every word must explain some frames). ``"frames"``: ``log p(word j | frame i)``, over each
    frame's real words (CTC's choice, which lets one word absorb every frame)."""
    batch, frames, words = similarity.shape
    ones = dict(dtype=torch.bool, device=similarity.device)
    frame_mask = torch.ones(batch, frames, **ones) if frame_mask is None else frame_mask
    word_mask = torch.ones(batch, words, **ones) if word_mask is None else word_mask
    masked = similarity.masked_fill(~frame_mask[:, :, None] | ~word_mask[:, None, :], NEG)
    if normalise == "words":
        return masked.log_softmax(1)
    if normalise == "frames":
        return masked.log_softmax(2)
    raise ValueError(f"normalise: expected 'words' or 'frames', got {normalise!r}")


@register_plan("monotone", settings=("blur",))
def monotone_plan(x, y, x_mask=None, y_mask=None, *, blur: float) -> torch.Tensor:
    """The monotone plan ``(B, Tm, Tn)`` between token sets: :func:`posterior` of the scores
    ``-C / blur**2`` (cosine cost, the entropic plans' temperature) normalised over each word's
    frames; each real frame sends its mass ``1/n`` along its posterior."""
    cost, a, _ = _prepare(x, y, x_mask, y_mask)
    x_mask = a > 0
    y_mask = torch.ones(y.shape[:2], dtype=torch.bool, device=y.device) if y_mask is None else y_mask
    scores = emission_scores(-cost / blur**2, x_mask, y_mask)
    return posterior(scores, x_mask, y_mask) * a[:, :, None]


class MonotoneAligner(nn.Module):
    """A monotone plan between learned projections, trained without any frame-to-word table.

    Frames ``x (B, Tm, d_x)`` pass a small MLP and words ``y (B, Tn, d_y)`` a normalised linear map,
    both to ``width`` dims, token by token (so nothing but content can match a frame to a word).
    The scores are the cosine similarities over ``temperature``, normalised over each word's frames
    (:func:`emission_scores`; ``normalise="frames"``: over each frame's words, the variant that lets a
    hub word absorb the clip). Its loss is the negative log-likelihood of the clip under the
    monotone model, ``-log Z / n`` (:func:`log_partition`): high when some monotone path runs
    through frames that each resemble their word, so minimising it teaches the projections which
    frame content belongs to which word content."""

    def __init__(self, source_dim: int, target_dim: int, width: int = 16, temperature: float = 0.1, hidden: int = 64,
                 normalise: str = "words"):
        super().__init__()
        if normalise not in ("words", "frames"):
            raise ValueError(f"normalise: expected 'words' or 'frames', got {normalise!r}")
        self.source = nn.Sequential(nn.Linear(source_dim, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.target = nn.Sequential(nn.LayerNorm(target_dim), nn.Linear(target_dim, width))
        self.temperature, self.normalise = temperature, normalise

    def scores(self, x, y, x_mask, y_mask) -> torch.Tensor:
        """``(B, Tm, Tn)`` log p(frame | word) (``normalise="frames"``: log p(word | frame))."""
        a = nn.functional.normalize(self.source(x), dim=-1)
        b = nn.functional.normalize(self.target(y), dim=-1)
        return emission_scores(a @ b.transpose(1, 2) / self.temperature, x_mask, y_mask, self.normalise)

    def forward(self, x, y, x_mask, y_mask) -> tuple[torch.Tensor, torch.Tensor]:
        """``(plan (B, Tm, Tn), loss (B,))``: the posterior with mass ``1/n`` per real frame (no
        gradient), and ``-log Z / n`` per clip."""
        scores = self.scores(x, y, x_mask, y_mask)
        frames = x_mask.sum(1).to(scores.dtype)
        loss = -log_partition(scores, x_mask, y_mask) / frames
        plan = posterior(scores.detach(), x_mask, y_mask) / frames[:, None, None]
        return plan, loss
