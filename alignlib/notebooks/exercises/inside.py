"""The checks of notebook 07 · inside trained models."""
from __future__ import annotations

import math

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


@exercise
def check_clip_accuracy_interval(answer) -> str:
    """``clip_accuracy_interval(guess (B, T), truth (B, T), mask (B, T)) -> (mean, low, high)``:
    the mean of per-clip accuracies with its 95 % Student-t interval, against
    :func:`alignlib.analysis.per_clip_accuracy` and :func:`alignlib.experiments.stats.mean_ci`."""
    from scipy import stats as scipy_stats

    from alignlib.analysis import per_clip_accuracy
    from alignlib.experiments.stats import mean_ci

    generator = seeded(22)
    truth = torch.randint(0, 5, (6, 9), generator=generator)
    lengths = torch.tensor([9, 7, 5, 9, 6, 8])
    mask = torch.arange(9)[None] < lengths[:, None]
    guess = torch.where(torch.rand(6, 9, generator=generator) < torch.linspace(0.2, 0.9, 6)[:, None], truth, 5)
    guess[~mask] = truth[~mask]  # padding "right": only an answer that ignores the mask counts it
    case = "6 clips of 5 to 9 real frames"
    got = as_tensor(call_answer(answer, case, guess, truth, mask), case).flatten()
    if got.numel() != 3:
        raise Mismatch(f"{case}: expected three numbers (mean, low, high), got {got.numel()}")
    per_clip = per_clip_accuracy(guess, truth, mask)
    mean, low, high = mean_ci(per_clip)
    half = (high - low) / 2
    mistakes = {
        "the padded frames count: score each clip over its real frames (mask)":
            torch.tensor(mean_ci(((guess == truth).double().mean(1)).numpy())),
        "a normal interval (1.96): with 6 clips the interval uses Student's t with 5 degrees of freedom":
            torch.tensor([mean, mean - 1.96 * half / scipy_stats.t.ppf(0.975, 5),
                          mean + 1.96 * half / scipy_stats.t.ppf(0.975, 5)]),
        "the standard deviation divides by n: the sample standard deviation divides by n - 1 (ddof=1)":
            torch.tensor([mean, mean - half * math.sqrt(5 / 6), mean + half * math.sqrt(5 / 6)]),
    }
    pooled = ((guess == truth) & mask).sum().item() / mask.sum().item()
    if math.isclose(got[0].item(), pooled, rel_tol=1e-6):
        raise Mismatch(f"{case}: your mean pools every real frame: average the per-clip accuracies (each clip counts once)")
    compare(got, torch.tensor([mean, low, high]), case, mistakes, axes=" (mean, low, high)")
    return "matches per_clip_accuracy with stats.mean_ci (Student's t)"


@exercise
def check_order_matters_to_alignmamba2(prediction, change: float) -> str:
    """A prediction (True or False): the trained AlignMamba-2's test MAE changes by more than 0.01
    when every clip's audio and video frames are reversed in time. Tested by the notebook's ``change``."""
    holds = abs(change) > 0.01
    why = ("" if holds else "The scan reads its tokens in order, but what the model learned hardly depends on it: "
           "its losses compare sets, and its answer rests on cues that a bag of frames holds (section 2 found no "
           "frame on its word)")
    return judge_prediction(prediction, holds, f"reversing the frames changes the test MAE by {change:+.4f}", why)
