"""The checks of notebook 07 · inside trained models."""
from __future__ import annotations

import torch

from alignlib.notebooks.exercises.core import (Mismatch, as_number, as_tensor, call_answer, compare,
                                               compare_number, exercise, judge_prediction, seeded)


@exercise
def check_state_spread(answer) -> str:
    """``state_spread(states (B, T, d), mask (B, T)) -> float`` against
    :func:`alignlib.analysis.state_spread` on a padded batch."""
    from alignlib.analysis import state_spread

    generator = seeded(21)
    states = torch.randn(3, 7, 5, generator=generator, dtype=torch.float64) + 0.5
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3, [False, True, True, False, True, True, False]])
    states[~mask] = 50 * torch.randn(int((~mask).sum()), 5, generator=generator, dtype=torch.float64)
    case = "3 clips of 7, 4 and 4 real tokens (padding anywhere), width 5"
    got = as_number(call_answer(answer, case, states, mask), case)
    unit = torch.nn.functional.normalize(states, dim=-1)
    everywhere = torch.ones_like(mask)
    centre = torch.nn.functional.normalize((unit * mask[..., None]).sum(1), dim=-1)
    distance = 1 - (unit * centre[:, None]).sum(-1)
    mistakes = {
        "the padded tokens count: the centre and the mean are over each clip's real tokens (mask)":
            state_spread(states, everywhere),
        "pooled over all real tokens: average each clip's spread, then the clips":
            ((distance * mask).sum() / mask.sum()).item(),
        "the centre is the mean of the unit vectors, normalised: cosine distances need unit vectors on both sides":
            ((1 - (unit * (unit * mask[..., None]).sum(1)[:, None] / mask.sum(1)[:, None, None]).sum(-1))
             * mask).sum(1).div(mask.sum(1)).mean().item(),
    }
    compare_number(got, state_spread(states, mask), case, mistakes, rtol=1e-6)
    return "matches alignlib.analysis.state_spread on a padded batch"


def nearest_words_loop(frames, words, frame_mask, word_mask, centre: bool = True, pooled: bool = True,
                       padded_in_mean: bool = False, cosine: bool = True, masked_words: bool = True) -> torch.Tensor:
    """The reference of :func:`check_centred_nearest_words`, a loop over clips and frames (the
    switches build the wrong answers): ``(B, T)`` each real frame's most similar real word, -1 on padding."""
    def mean(x, mask, b):
        if not centre:
            return torch.zeros(x.shape[-1], dtype=x.dtype)
        mask = torch.ones_like(mask) if padded_in_mean else mask
        return (x[mask] if pooled else x[b][mask[b]]).mean(0)

    f_mask, w_mask = frame_mask, word_mask
    guess = torch.full(frame_mask.shape, -1, dtype=torch.long)
    for b in range(frames.shape[0]):
        f_centre, w_centre = mean(frames, f_mask, b), mean(words, w_mask, b)
        candidates = [w for w in range(words.shape[1]) if word_mask[b, w] or not masked_words]
        for t in range(frames.shape[1]):
            if not frame_mask[b, t]:
                continue
            x = frames[b, t] - f_centre
            scores = [torch.nn.functional.cosine_similarity(x, words[b, w] - w_centre, dim=0) if cosine
                      else -(x - words[b, w] + w_centre).norm() for w in candidates]
            guess[b, t] = candidates[int(torch.stack(scores).argmax())]
    return guess


@exercise
def check_centred_nearest_words(answer, states=None, masks=None, truth=None) -> str:
    """``centred_nearest_words(frames (B, T, d), words (B, W, d), frame_mask (B, T), word_mask (B, W))
    -> (B, T)``: each real frame's most similar real word of its clip by cosine, after removing each
    modality's mean over the real tokens of the batch; against a loop over clips and frames on a
    padded batch with a large common offset, and (when the notebook passes a trained model's
    ``states``, ``masks`` and audio ``truth``) on its audio and word states, with the share of
    frames the centred and the raw guess put on their true word."""
    from alignlib.analysis import frame_accuracy

    generator = seeded(23)
    frames = torch.randn(3, 6, 4, generator=generator, dtype=torch.float64) * torch.rand(3, 6, 1, generator=generator) * 3
    words = torch.randn(3, 5, 4, generator=generator, dtype=torch.float64) + torch.randn(3, 1, 4, generator=generator)
    frames, words = frames + 4.0, words - 2.0  # each modality's common offset
    frame_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [False, True, True, False, True, True]])
    word_mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True, False, True, True, False]])
    frames[~frame_mask] = 40 * torch.randn(int((~frame_mask).sum()), 4, generator=generator, dtype=torch.float64)
    words[~word_mask] = 40 * torch.randn(int((~word_mask).sum()), 4, generator=generator, dtype=torch.float64)
    cases = [("3 clips of 6, 4 and 4 real frames onto 5, 3 and 3 real words (padding anywhere), width 4",
              frames, words, frame_mask, word_mask)]
    if states is not None:
        cases.append(("the trained model's audio frames onto its words", states["audio"].double(),
                      states["text"].double(), masks["audio"], masks["text"]))
    for case, f, w, fm, wm in cases:
        got = as_tensor(call_answer(answer, case, f, w, fm, wm), case)
        if got.shape != fm.shape:
            raise Mismatch(f"{case}: shape {tuple(got.shape)}, expected {tuple(fm.shape)} (one word per frame)")
        expected = nearest_words_loop(f, w, fm, wm)[fm]
        if torch.equal(got.long()[fm], expected):
            continue
        mistakes = {
            "not centred: remove each modality's mean over its real tokens before the cosine":
                nearest_words_loop(f, w, fm, wm, centre=False),
            "the padded tokens count in the mean: average each modality over its real tokens (masks)":
                nearest_words_loop(f, w, fm, wm, padded_in_mean=True),
            "centred per clip: the offset is the modality's, so remove its mean over the whole batch":
                nearest_words_loop(f, w, fm, wm, pooled=False),
            "the closest word by distance: the plans' cost is the cosine, which ignores the tokens' norms":
                nearest_words_loop(f, w, fm, wm, cosine=False),
            "a padded word was chosen: only a clip's real words are candidates (word_mask)":
                nearest_words_loop(f, w, fm, wm, masked_words=False),
        }
        compare(got.long()[fm], expected, case, {hint: wrong[fm] for hint, wrong in mistakes.items()})
    if states is None:
        return "matches the loop on a padded batch"
    centred, raw = nearest_words_loop(*cases[1][1:]), nearest_words_loop(*cases[1][1:], centre=False)
    audio = torch.as_tensor(truth)
    return (f"matches the loop, and on the trained model the centred guess puts {frame_accuracy(centred, audio, masks['audio']):.3f} "
            f"of the audio frames on their word, the raw cosine {frame_accuracy(raw, audio, masks['audio']):.3f}")


@exercise
def check_order_matters_to_alignmamba2(prediction, change: float) -> str:
    """A prediction (True or False): the trained AlignMamba-2's test MAE changes by more than 0.01
    when every clip's audio and video frames are reversed in time. Tested by the notebook's ``change``."""
    holds = abs(change) > 0.01
    why = ("" if holds else "The scan reads its tokens in order, but what the model learned hardly depends on it: "
           "its losses compare sets, and its answer rests on cues that a bag of frames holds (section 2 found no "
           "frame on its word)")
    return judge_prediction(prediction, holds, f"reversing the frames changes the test MAE by {change:+.4f}", why)
