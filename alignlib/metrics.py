"""Multimodal sentiment analysis metrics, computed as MMSA computes them for MOSI/MOSEI regression.

``pred`` and ``truth`` are sentiment scores in ``[-3, 3]``:

* ``Has0_acc_2`` / ``Has0_F1_score``: negative (< 0) vs non-negative (>= 0), over all samples;
* ``Non0_acc_2`` / ``Non0_F1_score``: negative vs positive (> 0), over the samples whose truth is not 0;
* ``Mult_acc_7`` / ``Mult_acc_5``: clip to ``[-3, 3]`` / ``[-2, 2]``, round (numpy: half to even),
  compare classes;
* ``MAE``: mean absolute error; ``Corr``: Pearson correlation.

F1 scores are scikit-learn's weighted F1 (``f1_score(truth, pred, average="weighted")``), as MMSA.
Undefined values are NaN: the Non0 metrics when every truth is 0, ``Corr`` when either side is constant.
"""
from __future__ import annotations

import numpy as np


def _as_vector(values, name: str) -> np.ndarray:
    array = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{name}: no samples")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


def weighted_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """Weighted F1 of two boolean label vectors (scikit-learn's ``average="weighted"``)."""
    total = 0.0
    for label in (False, True):
        support = np.sum(truth == label)
        if support == 0:
            continue
        true_positive = np.sum((pred == label) & (truth == label))
        predicted = np.sum(pred == label)
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / support
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        total += support * f1
    return float(total / truth.size)


def multiclass_accuracy(pred: np.ndarray, truth: np.ndarray, bound: float) -> float:
    """Clip both to ``[-bound, bound]``, round half to even, share of equal classes."""
    return float(np.mean(np.round(np.clip(pred, -bound, bound)) == np.round(np.clip(truth, -bound, bound))))


def msa_metrics(pred, truth) -> dict[str, float]:
    """All MMSA regression metrics for predictions and truths of shape ``(N,)`` (or anything that flattens to it)."""
    pred, truth = _as_vector(pred, "pred"), _as_vector(truth, "truth")
    if pred.shape != truth.shape:
        raise ValueError(f"pred has {pred.size} values, truth has {truth.size}")
    non_zero = truth != 0
    if non_zero.any():
        non0_truth, non0_pred = truth[non_zero] > 0, pred[non_zero] > 0
        non0_acc, non0_f1 = float(np.mean(non0_truth == non0_pred)), weighted_f1(non0_truth, non0_pred)
    else:
        non0_acc = non0_f1 = float("nan")
    has0_truth, has0_pred = truth >= 0, pred >= 0
    constant = np.ptp(pred) == 0 or np.ptp(truth) == 0
    return {
        "Has0_acc_2": float(np.mean(has0_truth == has0_pred)),
        "Has0_F1_score": weighted_f1(has0_truth, has0_pred),
        "Non0_acc_2": non0_acc,
        "Non0_F1_score": non0_f1,
        "Mult_acc_5": multiclass_accuracy(pred, truth, 2.0),
        "Mult_acc_7": multiclass_accuracy(pred, truth, 3.0),
        "MAE": float(np.mean(np.abs(pred - truth))),
        "Corr": float("nan") if constant else float(np.corrcoef(pred, truth)[0, 1]),
    }
