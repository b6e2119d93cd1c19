"""The checks of notebook 06 · training."""
from __future__ import annotations

import numpy as np
import torch

from alignlib.notebooks.exercises.core import (Mismatch, as_number, call_answer, compare_number, exercise,
                                               judge_prediction)


@exercise
def check_mult_acc_7(answer) -> str:
    """``mult_acc_7(pred (N,), truth (N,)) -> float`` against ``Mult_acc_7`` of
    :func:`alignlib.metrics.msa_metrics` (MMSA: clip to [-3, 3], round half to even, compare)."""
    from alignlib.metrics import msa_metrics

    truth = torch.tensor([-3.0, -2.6, -0.4, 0.0, 0.5, 1.5, 2.4, 3.0, 2.5, -1.2, 1.8, 0.6], dtype=torch.float64)
    pred = torch.tensor([-4.2, -2.4, -0.6, 0.4, 0.6, 2.5, 3.6, 2.7, 2.5, -0.5, 1.2, 0.9], dtype=torch.float64)
    case = "12 clips, some predictions beyond [-3, 3] and some on a half"
    got = as_number(call_answer(answer, case, pred, truth), case)
    p, t = pred.numpy(), truth.numpy()
    mistakes = {
        "not clipped: a prediction beyond 3 (or below -3) belongs to the outer class 3 (-3)":
            float(np.mean(np.round(p) == np.round(t))),
        "halves rounded away from zero: MMSA rounds with numpy, half to even (2.5 -> 2)":
            float(np.mean(np.floor(np.abs(np.clip(p, -3, 3)) + 0.5) * np.sign(p)
                          == np.floor(np.abs(np.clip(t, -3, 3)) + 0.5) * np.sign(t))),
        "truncated towards zero: the classes come from rounding, not from int()":
            float(np.mean(np.trunc(np.clip(p, -3, 3)) == np.trunc(np.clip(t, -3, 3)))),
    }
    compare_number(got, msa_metrics(p, t)["Mult_acc_7"], case, mistakes)
    return "matches alignlib.metrics (MMSA's Mult_acc_7)"


@exercise
def check_validation_flat(answer) -> str:
    """``validation_flat(history, window, tolerance) -> bool`` against
    :func:`alignlib.train.validation_flat` on five curves."""
    from alignlib.train import validation_flat

    curves = {"a curve still falling": ([1.0, 0.9, 0.8, 0.7, 0.6, 0.5], 3),
              "a curve that flattened": ([1.0, 0.7, 0.6, 0.6, 0.601, 0.6005], 3),
              "a curve whose last value rose after a new best": ([1.0, 0.8, 0.7, 0.6, 0.9], 2),
              "a curve near 10 improving by 0.5 %": ([12.0, 10.0, 10.0, 9.95, 9.96, 9.97], 3),
              "a curve of window + 1 epochs, flat": ([1.0, 1.0, 1.0, 1.0], 3),
              "a curve shorter than its window": ([1.0, 1.0], 3)}
    for case, (history, window) in curves.items():
        got = call_answer(answer, case, list(history), window, 0.01)
        if not isinstance(got, (bool, np.bool_)):
            raise Mismatch(f"{case}: expected True or False, got {got!r}")
        expected = validation_flat(history, window, 0.01)
        if bool(got) != expected:
            hint = {"a curve whose last value rose after a new best": "compare the best of the last window with the "
                    "best before it, not the last value",
                    "a curve near 10 improving by 0.5 %": "the tolerance is relative (a share of the best before the window)",
                    "a curve shorter than its window": "a curve of window epochs or fewer has nothing before its "
                    "window: not flat yet"}.get(case, f"expected {expected}")
            raise Mismatch(f"{case} (window {window}): {hint}")
    return "matches alignlib.train.validation_flat on six curves"


@exercise
def check_oracle_survives_shuffled_plan(prediction, shuffled_mae: float, oracle_mae: float,
                                        set_level_mae: float) -> str:
    """A prediction (True or False): the model trained with the true plan, given the shuffled plan
    at test time, stays below the set_level reference line. Tested by the notebook's measurement."""
    holds = shuffled_mae < set_level_mae
    measured = (f"with the shuffled plan its test MAE is {shuffled_mae:.3f} (with the true plan {oracle_mae:.3f}; "
                f"set_level {set_level_mae:.3f})")
    why = ("" if holds else "It learned to read each word's aligned frames; with the frames scattered, "
           "the cues it reads sit on the wrong words")
    return judge_prediction(prediction, holds, measured, why)
