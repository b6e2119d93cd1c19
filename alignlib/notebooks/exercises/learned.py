"""The checks of notebook 10 · learned alignment."""
from __future__ import annotations

import torch

from alignlib.notebooks.exercises.core import (Mismatch, as_tensor, call_answer, compare, exercise, judge_prediction,
                                               seeded)


def _monotone_cases():
    generator = seeded(31)
    return {f"{frames} frames, {words} words": torch.randn(frames, words, generator=generator, dtype=torch.float64)
            for frames, words in ((6, 3), (5, 5), (8, 1), (9, 4))}


def _paths(frames: int, words: int):
    """Every monotone path of ``frames`` frames through ``words`` words (brute force)."""
    from itertools import combinations

    for cuts in combinations(range(1, frames), words - 1):  # the frames where the next word starts
        bounds = (0, *cuts, frames)
        yield [w for w in range(words) for _ in range(bounds[w], bounds[w + 1])]


@exercise
def check_best_path_loop(answer) -> str:
    """``best_path_loop(scores (T, W)) -> (T,)`` word indices of the highest-scoring monotone path
    (Viterbi), against :func:`alignlib.align.monotone.best_path` and the best of every path."""
    from alignlib.align import monotone

    for case, scores in _monotone_cases().items():
        got = call_answer(answer, case, scores)
        expected = monotone.best_path(scores[None])[0]
        frames, words = scores.shape
        paths = torch.tensor(list(_paths(frames, words)))
        assert torch.equal(paths[scores[torch.arange(frames), paths].sum(1).argmax()], expected)
        path = as_tensor(got, case)
        if torch.equal(path, scores.argmax(1).double()) and not torch.equal(path, expected.double()):
            raise Mismatch(f"{case}: each frame's best word on its own: the path must run forward through every "
                           "word in order")
        if path.shape == expected.shape and (path.diff() < 0).any():
            raise Mismatch(f"{case}: your path goes back to an earlier word: a monotone path never does")
        if path.shape == expected.shape and (path.diff() > 1).any():
            raise Mismatch(f"{case}: your path skips a word: each next frame stays on its word or moves to the next")
        compare(got, expected.double(), case, axes=" (T,)")
    return "matches monotone.best_path and the best of every path, in four clips"


@exercise
def check_word_normalised_scores(answer) -> str:
    """``word_normalised_scores(similarity (B, T, W), frame_mask (B, T), word_mask (B, W)) -> (B, T, W)``:
    ``log p(frame | word)``, against :func:`alignlib.align.monotone.emission_scores` on the real entries."""
    from alignlib.align import monotone

    generator = seeded(32)
    similarity = torch.randn(2, 6, 4, generator=generator, dtype=torch.float64)
    frame_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    word_mask = torch.tensor([[True] * 4, [True] * 3 + [False]])
    case = "2 clips, the second with 4 of 6 frames and 3 of 4 words real"
    got = as_tensor(call_answer(answer, case, similarity, frame_mask, word_mask), case)
    real = frame_mask[:, :, None] & word_mask[:, None, :]
    expected = monotone.emission_scores(similarity, frame_mask, word_mask, normalise="words")
    if got.shape == expected.shape:  # padded entries are free: only the real ones are compared
        got = torch.where(real, got, expected)
    mistakes = {
        "wrong axis: that is log p(word | frame), normalised over each frame's words (the hub word's choice); "
        "normalise over each word's frames": torch.where(real, monotone.emission_scores(
            similarity, frame_mask, word_mask, normalise="frames"), expected),
        "the padded frames count: the softmax runs over each word's real frames (mask)":
            torch.where(real, similarity.log_softmax(1), expected),
        "not normalised: log p(frame | word) is the similarity minus each word's logsumexp over its frames":
            torch.where(real, similarity, expected),
    }
    compare(got, expected, case, mistakes, axes=" (B, T, W)")
    return "matches monotone.emission_scores(normalise='words') on every real entry"


@exercise
def check_learned_plan_survives_reversal(prediction, reversed_accuracy: float, accuracy: float) -> str:
    """A prediction (True or False): the trained learned plan still puts more than half of the audio
    frames on their true word when every clip's frames are reversed in time. Tested by the notebook."""
    holds = reversed_accuracy > 0.5
    measured = (f"with the frames reversed the learned plan finds {reversed_accuracy:.2f} of the frames' words "
                f"(in order: {accuracy:.2f})")
    why = ("" if holds else "The monotone plan assumes the first frame sits on the first word: reversed, the "
           "words are met last to first, and only the middle of a clip can still land on its word")
    return judge_prediction(prediction, holds, measured, why)
