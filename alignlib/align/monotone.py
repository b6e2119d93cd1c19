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

Each recursion takes an optional ``no_word (B, T)``: the scores of a "no word" state (CTC's blank)
that frames may visit before, between and after the words (pauses); a path may pass it by between
two words. Its posterior and Viterbi path then say which frames belong to no word.

Shapes: scores ``(B, T, W)``, frame mask ``(B, T)``, word mask ``(B, W)`` (True = real; padding may
sit anywhere). Every clip needs at least as many real frames as real words.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch
from torch import nn

from alignlib.align.ot import _prepare, register_plan
from alignlib.common.sequences import pack_order
from alignlib.data.mmsa import NO_WORD
from alignlib.ssm import kernels

NEG = -1e4  # log-score of an impossible step: finite, so no inf - inf reaches a gradient


@dataclass
class _Chain:
    """The left-to-right states a path runs through, ``(B, S)`` bool each: ``states`` (real states),
    ``start`` and ``end`` (where a path may begin and finish), ``skip`` (states a path may reach
    from two states back, passing the one between)."""

    states: torch.Tensor
    start: torch.Tensor
    skip: torch.Tensor
    end: torch.Tensor


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


def _chain(scores, word_mask, no_word):
    """``(scores (B, T, S), chain)`` of the packed words: the words themselves (``no_word`` None), or
    with a "no word" state before, between and after them (CTC's blank: ``S = 2W + 1``, the blank
    ``2j`` before word ``j``, word ``j`` at ``2j + 1``; a path may pass a blank by). The scores of the
    states that are not real are ``NEG``, for every recursion below."""
    batch, words = word_mask.shape
    count = word_mask.sum(1, keepdim=True)
    if no_word is None:
        index = torch.arange(words, device=scores.device)[None].expand(batch, -1)
        chain = _Chain(word_mask, index == 0, torch.zeros_like(word_mask), index == count - 1)
        return scores.masked_fill(~word_mask[:, None, :], NEG), chain
    if no_word.shape != scores.shape[:2]:
        raise ValueError(f"no_word: expected (B, T) = {tuple(scores.shape[:2])} scores, got {tuple(no_word.shape)}")
    extended = torch.stack([no_word[..., None].expand_as(scores), scores], 3).flatten(2)  # blank, word, blank, ...
    extended = torch.cat([extended, no_word[..., None]], 2)
    state = torch.arange(2 * words + 1, device=scores.device)[None].expand(batch, -1)
    is_word = state % 2 == 1
    real = torch.where(is_word, torch.nn.functional.pad(word_mask, (0, 1)).repeat_interleave(2, 1)[:, :-1],
                       state // 2 <= count)
    chain = _Chain(real, state <= 1, is_word & (state >= 3) & real, (state == 2 * count) | (state == 2 * count - 1))
    return extended.masked_fill(~real[:, None, :], NEG), chain


def _pack_words(scores, order):
    return scores.gather(2, order[:, None, :].expand_as(scores))


def _unpack_words(values, order):
    return torch.empty_like(values).scatter_(2, order[:, None, :].expand_as(values), values)


def _shift(alpha, by=1):
    """``alpha[:, j - by]`` at column ``j`` (``NEG`` at the first ``by`` columns)."""
    return torch.nn.functional.pad(alpha, (by, 0), value=NEG)[:, :alpha.shape[1]]


def _skips(chain):
    """The chain's ``skip`` mask, or None when no state can be passed by (decided once, not per frame:
    on a GPU each look at a tensor's values waits for the device)."""
    return chain.skip if bool(chain.skip.any()) else None


def _step(alpha, skip):
    """Log-sum over the states a path can come from: the same, the previous, and (where ``skip``, if
    not None) two back."""
    reached = torch.logaddexp(alpha, _shift(alpha))
    if skip is not None:
        reached = torch.logaddexp(reached, torch.where(skip, _shift(alpha, 2), NEG))
    return reached


def _compiled(scores):
    """The C++ recursions (``alignlib/ssm/kernels/monotone.cpp``) for CPU float32/float64 scores,
    else None: the PyTorch loops (other devices and dtypes, or no compiler: one warning)."""
    if scores.device.type != "cpu" or scores.dtype not in (torch.float32, torch.float64):
        return None
    return kernels.load("monotone")


def _run_compiled(library, function, scores, frame_mask, ends, skip, *rest):
    """A new ``(B, T, S)`` table from ``monotone_<function>`` of the C++ recursions: masked scores
    ``(B, T, S)``, frame mask, the chain's start or end states, its skip mask, then the function's
    other inputs (bool masks pass as one byte each)."""
    inputs = [t.contiguous() for t in (scores, frame_mask, ends, skip, *rest)]  # alive through the call
    out = torch.empty_like(inputs[0])
    dims = (ctypes.c_int64 * 4)(*scores.shape, bool(skip.any()))
    suffix = "f64" if scores.dtype == torch.float64 else "f32"
    getattr(library, f"monotone_{function}_{suffix}")(
        *(ctypes.c_void_p(t.data_ptr()) for t in (*inputs, out)), dims, ctypes.c_double(NEG), torch.get_num_threads())
    return out


def _forward(scores, frame_mask, chain):
    """``alpha (B, T, S)``: log-sum of the paths ending on state ``j`` at frame ``i`` (carried over padded frames)."""
    if (library := _compiled(scores)) is not None:
        return _run_compiled(library, "forward", scores, frame_mask, chain.start, chain.skip)
    return _forward_loop(scores, frame_mask, chain)


def _forward_loop(scores, frame_mask, chain):
    """:func:`_forward` a frame at a time in PyTorch."""
    batch, frames, _ = scores.shape
    start = torch.where(chain.start, 0.0, NEG).to(scores.dtype)  # before the first real frame, nothing scored
    alphas, alpha, seen = [], start, torch.zeros(batch, dtype=torch.bool, device=scores.device)
    skip = _skips(chain)
    for i in range(frames):
        real = frame_mask[:, i, None]
        previous = torch.where(seen[:, None], _step(alpha, skip), start)
        alpha = torch.where(real, scores[:, i] + previous, alpha)
        seen = seen | frame_mask[:, i]
        alphas.append(alpha)
    return torch.stack(alphas, 1)


def _finish(alpha_end, chain):
    """``(B,)`` log Z: the log-sum of the last frame's ``alpha`` over the end states."""
    return torch.logsumexp(alpha_end.masked_fill(~chain.end, -torch.inf), 1)


def _backward(scores, frame_mask, chain):
    """``beta (B, T, S)``: log-sum over the rest of a path that is on state ``j`` at frame ``i``."""
    frames = scores.shape[1]
    end = torch.where(chain.end, 0.0, NEG).to(scores.dtype)
    skip_from = torch.nn.functional.pad(chain.skip[:, 2:], (0, 2), value=False)  # state j may go on to j + 2
    betas, after, skips = [None] * frames, end, _skips(chain) is not None  # after: beta of the next real frame
    for i in reversed(range(frames)):
        betas[i] = after
        real = frame_mask[:, i, None]
        # a path on state j at this real frame goes on to j, j + 1 (or j + 2) at the next real frame
        step = scores[:, i] + after
        nxt = torch.logaddexp(step, torch.nn.functional.pad(step[:, 1:], (0, 1), value=NEG))
        if skips:
            nxt = torch.logaddexp(nxt, torch.where(skip_from, torch.nn.functional.pad(step[:, 2:], (0, 2), value=NEG), NEG))
        after = torch.where(real, nxt, after)
    return torch.stack(betas, 1)


class _LogPartition(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, frame_mask, *chain):
        chain = _Chain(*chain)
        alpha = _forward(scores, frame_mask, chain)
        log_z = _finish(alpha[:, -1], chain)
        ctx.save_for_backward(scores, frame_mask, alpha, log_z, *vars(chain).values())
        return log_z

    @staticmethod
    def backward(ctx, grad):
        scores, frame_mask, alpha, log_z, *chain = ctx.saved_tensors
        post = _posterior(scores, frame_mask, _Chain(*chain), alpha, log_z)
        return grad[:, None, None] * post, None, None, None, None, None


def _posterior(scores, frame_mask, chain, alpha, log_z):
    """``(B, T, S)`` probability of state ``j`` at frame ``i`` (0 on padding), from ``alpha`` and
    the backward recursion."""
    if (library := _compiled(scores)) is not None:
        return _run_compiled(library, "posterior", scores, frame_mask, chain.end, chain.skip, chain.states, alpha, log_z)
    return _posterior_loop(scores, frame_mask, chain, alpha, log_z)


def _posterior_loop(scores, frame_mask, chain, alpha, log_z):
    """:func:`_posterior` through the PyTorch loop of :func:`_backward`."""
    beta = _backward(scores, frame_mask, chain)
    post = (alpha + beta - log_z[:, None, None]).exp()
    return post * frame_mask[..., None] * chain.states[:, None, :]


def _split_states(values, order, no_word):
    """Chain values ``(B, T, S)`` back to the words at their positions ``(B, T, W)`` (and the summed
    "no word" states ``(B, T)`` when there are some)."""
    if no_word is None:
        return _unpack_words(values, order)
    return _unpack_words(values[..., 1::2], order), values[..., 0::2].sum(2)


def log_partition(scores, frame_mask=None, word_mask=None, no_word=None) -> torch.Tensor:
    """``(B,)`` log of the summed ``exp(score)`` of every monotone path; its gradient is :func:`posterior`.
    ``no_word (B, T)``: the scores of a "no word" state that frames may visit before, between and
    after the words (None: every frame is on a word)."""
    frame_mask, word_mask, order = _masks(scores, frame_mask, word_mask)
    extended, chain = _chain(_pack_words(scores, order), word_mask, no_word)
    return _LogPartition.apply(extended, frame_mask, *vars(chain).values())


@torch.no_grad()
def posterior(scores, frame_mask=None, word_mask=None, no_word=None):
    """``(B, T, W)`` probability that frame ``i`` sits on word ``j`` (padding 0); with ``no_word``
    (as :func:`log_partition`), also ``(B, T)`` the probability that it sits on no word (a real
    frame's words and "no word" sum to 1)."""
    frame_mask, word_mask, order = _masks(scores, frame_mask, word_mask)
    extended, chain = _chain(_pack_words(scores, order), word_mask, no_word)
    alpha = _forward(extended, frame_mask, chain)
    return _split_states(_posterior(extended, frame_mask, chain, alpha, _finish(alpha[:, -1], chain)), order, no_word)


def _viterbi(scores, frame_mask, chain):
    """``(delta, back)``, both ``(B, T, S)`` on the chain's states: the best score of a path on state
    ``j`` at frame ``i``, and how many states its best way in moved on (0, 1, or 2 past a "no word"
    state: the traceback's pointer)."""
    batch, frames, _ = scores.shape
    value = torch.where(chain.start, 0.0, NEG).to(scores.dtype)
    seen = torch.zeros(batch, dtype=torch.bool, device=scores.device)
    deltas, back = [], torch.zeros(scores.shape, dtype=torch.long, device=scores.device)
    for i in range(frames):
        real = frame_mask[:, i, None]
        best, moved = torch.stack([value, _shift(value), torch.where(chain.skip, _shift(value, 2), NEG)]).max(0)
        best = torch.where(seen[:, None], best, value)  # ties stay: the first maximum
        value = torch.where(real, scores[:, i] + best, value)
        back[:, i] = moved * (seen[:, None] & real)
        seen = seen | frame_mask[:, i]
        deltas.append(value)
    return torch.stack(deltas, 1), back


@torch.no_grad()
def viterbi(scores, frame_mask=None, word_mask=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(delta, advanced)``, both ``(B, T, W)``: the recursion of :func:`best_path`, ``delta[i, j]`` the
    best score of a path on word ``j`` at frame ``i`` (the forward recursion with a max in place of the
    log-sum) and ``advanced[i, j]`` True where that path came from word ``j - 1`` (else it stayed on ``j``)."""
    frame_mask, word_mask, order = _masks(scores, frame_mask, word_mask)
    packed, chain = _chain(_pack_words(scores, order), word_mask, None)
    delta, back = _viterbi(packed, frame_mask, chain)
    return _unpack_words(delta, order), _unpack_words(back == 1, order)


@torch.no_grad()
def best_path(scores, frame_mask=None, word_mask=None, no_word=None) -> torch.Tensor:
    """``(B, T)`` word of every frame on the highest-scoring monotone path (-1 on padded frames,
    :data:`~alignlib.data.NO_WORD` on the "no word" state of ``no_word``, as :func:`log_partition`):
    the traceback of :func:`viterbi`'s pointers from the best end state at the last frame."""
    frame_mask, word_mask, order = _masks(scores, frame_mask, word_mask)
    scores, chain = _chain(_pack_words(scores, order), word_mask, no_word)
    delta, back = _viterbi(scores, frame_mask, chain)
    batch, frames, _ = scores.shape
    path = torch.full((batch, frames), -1, dtype=torch.long, device=scores.device)
    state = delta[:, -1].masked_fill(~chain.end, -torch.inf).argmax(1)
    rows = torch.arange(batch, device=scores.device)
    for i in reversed(range(frames)):
        real = frame_mask[:, i]
        path[:, i] = torch.where(real, state, -1)
        state = torch.where(real, state - back[rows, i, state], state)
    if no_word is not None:  # chain states back to words: 2j + 1 is word j, the even states are no word
        word = (path // 2).clamp(0, order.shape[1] - 1)  # the last "no word" state, 2W, has no word W
        words = torch.where(path % 2 == 1, order.gather(1, word), NO_WORD)
        return torch.where(path >= 0, words, -1)
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
    frame content belongs to which word content.

    ``no_word=True`` adds the "no word" state (frames in a pause, before, between or after the
    words): a learned prototype in the projected space, scored as one more word (normalised over the
    frames), whose frames send their mass to no word."""

    def __init__(self, source_dim: int, target_dim: int, width: int = 16, temperature: float = 0.1, hidden: int = 64,
                 normalise: str = "words", no_word: bool = False):
        super().__init__()
        self.source = nn.Sequential(nn.Linear(source_dim, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.target = nn.Sequential(nn.LayerNorm(target_dim), nn.Linear(target_dim, width))
        if normalise not in ("words", "frames"):
            raise ValueError(f"normalise: expected 'words' or 'frames', got {normalise!r}")
        self.temperature, self.normalise = temperature, normalise
        self.no_word = nn.Parameter(torch.randn(width)) if no_word else None

    def scores(self, x, y, x_mask, y_mask) -> torch.Tensor:
        """``(B, Tm, Tn)`` log p(frame | word) (``normalise="frames"``: log p(word | frame))."""
        a = nn.functional.normalize(self.source(x), dim=-1)
        b = nn.functional.normalize(self.target(y), dim=-1)
        return emission_scores(a @ b.transpose(1, 2) / self.temperature, x_mask, y_mask, self.normalise)

    def no_word_scores(self, x, x_mask) -> torch.Tensor | None:
        """``(B, Tm)`` log p(frame | no word), normalised over the frames as a word's scores are (None without the state)."""
        if self.no_word is None:
            return None
        a = nn.functional.normalize(self.source(x), dim=-1)
        similarity = a @ nn.functional.normalize(self.no_word, dim=0) / self.temperature
        return emission_scores(similarity[..., None], x_mask)[..., 0]

    def forward(self, x, y, x_mask, y_mask) -> tuple[torch.Tensor, torch.Tensor]:
        """``(plan (B, Tm, Tn), loss (B,))``: the posterior with mass ``1/n`` per real frame (no
        gradient; a frame sends only its words' share, the rest goes to no word), and ``-log Z / n`` per clip."""
        scores, no_word = self.scores(x, y, x_mask, y_mask), self.no_word_scores(x, x_mask)
        frames = x_mask.sum(1).to(scores.dtype)
        loss = -log_partition(scores, x_mask, y_mask, no_word) / frames
        if no_word is None:
            found = posterior(scores.detach(), x_mask, y_mask)
        else:
            found, _ = posterior(scores.detach(), x_mask, y_mask, no_word.detach())
        return found / frames[:, None, None], loss
