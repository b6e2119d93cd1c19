"""The checks of notebook 05 · data."""
from __future__ import annotations

import math

import numpy as np
import torch

from alignlib.notebooks.exercises.core import (Mismatch, as_number, call_answer, compare, compare_number,
                                               exercise, seeded)


@exercise
def check_proportional_guess(answer) -> str:
    """``proportional_guess(n_frames, n_words) -> (n_frames,)`` word indices against the argmax of
    :func:`alignlib.align.ot.proportional_plan`."""
    from alignlib.align import ot

    for case, (frames, words) in {"10 frames, 4 words": (10, 4), "13 frames, 5 words": (13, 5),
                                  "7 frames, 7 words": (7, 7), "3 frames, 8 words": (3, 8)}.items():
        got = call_answer(answer, case, frames, words)
        plan = ot.proportional_plan(torch.ones(1, frames, 1), torch.ones(1, words, 1))[0]
        t = torch.arange(frames, dtype=torch.float64)
        mistakes = {
            "rounded to the nearest word: the guess takes the floor of t W / n": torch.round(t * words / frames),
            "stretched from the first to the last word: the guess cuts the frames into W equal runs, floor(t W / n)":
                torch.floor(t * (words - 1) / max(frames - 1, 1)),
        }
        compare(got, plan.argmax(1).double(), case, mistakes, axes=" (n_frames,)")
    return "matches alignlib.align.ot.proportional_plan in four cases"


@exercise
def check_recovery_accuracy(answer) -> str:
    """``recovery_accuracy(plan (B, T_m, T_n), truth (B, T_m), mask (B, T_m)) -> float`` against
    :func:`alignlib.align.ot.correspondence_accuracy`, on a batch with padded frames."""
    from alignlib.align import ot

    generator = seeded(16)
    plan = torch.rand(2, 6, 4, generator=generator, dtype=torch.float64)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    plan[~mask] = 0.0  # padded frames send nothing; their argmax is word 0, their truth 0
    truth = torch.where(mask, plan.argmax(2), 0)
    truth[:, 0] = (truth[:, 0] + 1) % 4  # one miss in each clip: 5 of 6 and 2 of 3 frames recovered
    case = "2 clips of 6 and 3 real frames, 4 words"
    got = as_number(call_answer(answer, case, plan, truth, mask), case)
    hits = plan.argmax(2) == truth
    mistakes = {
        "the padded frames count: score only the real frames (mask)": hits.double().mean().item(),
        "averaged per clip, then over clips: the share is over all real frames pooled":
            np.mean([hits[b][mask[b]].double().mean().item() for b in range(2)]),
    }
    compare_number(got, ot.correspondence_accuracy(plan, truth, mask), case, mistakes)
    return "matches alignlib.align.ot.correspondence_accuracy on a padded batch"


@exercise
def check_expected_missing_share(answer) -> str:
    """``expected_missing_share(rate, n_modalities) -> float``: the share of modality slots dropped
    by :func:`alignlib.data.missing_modality_mask`, against its empirical share over 200 000
    samples (within 4 standard errors)."""
    from alignlib.data import missing_modality_mask

    samples = 200_000
    for case, (rate, modalities) in {"r = 0.3, M = 3": (0.3, 3), "r = 0.7, M = 3": (0.7, 3),
                                     "r = 0.5, M = 2": (0.5, 2)}.items():
        got = as_number(call_answer(answer, case, rate, modalities), case)
        share = float((~missing_modality_mask(samples, rate, modalities, seed=0)).mean())
        tolerance = 4 * math.sqrt(share * (1 - share) / (samples * modalities))
        if abs(got - share) <= tolerance:
            continue
        mistakes = {"that is the rate before the rule 'at least one kept': a clip that drew all M as missing gets "
                    "one back": rate,
                    "a clip that lost all M gets only one modality back, one of its M slots, not all of them":
                        rate - rate**modalities}
        for hint, wrong in mistakes.items():
            if math.isclose(got, wrong, rel_tol=1e-9):
                raise Mismatch(f"{case}: {hint}")
        raise Mismatch(f"{case}: your share {got:.4f} is off by {got - share:+.4f}; the mask's own is known to "
                       f"+-{tolerance:.4f}")
    return "agrees with missing_modality_mask's empirical share in three cases"
