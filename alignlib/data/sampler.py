"""Length-aware batches: clips of similar real length share a batch, and a batch is cut to its
longest real sequence, so padded frames cost (almost) nothing in the scans.

``length_grouped_batches`` is a drop-in for the trainer's shuffled global batches (every clip once
per epoch, the same batches for a given seed and epoch) and serves as a ``batch_sampler`` of a
``torch.utils.data.DataLoader``; ``trim_batch`` cuts a collated :class:`~alignlib.data.mmsa.Batch`.
"""
from __future__ import annotations

import numpy as np

from alignlib.data.mmsa import Batch

REDUCTIONS = ("max", "sum")


def real_lengths(masks: dict, reduce: str = "max") -> np.ndarray:
    """Each clip's real length from its padding masks ``{modality: (N, T)}`` (True = real): per
    modality the position of the last real frame + 1 (0 if none), then the ``max`` or ``sum`` over
    modalities (``sum`` for models that scan the concatenated sequence). Returns ``(N,)`` int64."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce: expected one of {REDUCTIONS}, got {reduce!r}")
    per_modality = []
    for name, mask in masks.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 2:
            raise ValueError(f"masks[{name!r}]: expected shape (N, T), got {mask.shape}")
        last = mask.shape[1] - np.argmax(mask[:, ::-1], axis=1)
        per_modality.append(np.where(mask.any(axis=1), last, 0))
    stacked = np.stack(per_modality)
    return (stacked.max(0) if reduce == "max" else stacked.sum(0)).astype(np.int64)


def length_grouped_batches(lengths, batch_size: int, seed: int, epoch: int, pool: int | None = 50) -> list[np.ndarray]:
    """The epoch's batches of clip indices, grouped by ``lengths (N,)``.

    The clips are shuffled (seeded by ``seed`` and ``epoch``), taken ``pool`` batches at a time,
    sorted by length within each pool (ties keep the shuffled order) and cut into batches of
    ``batch_size``; the batches are shuffled again. Every clip appears once; only the last batch
    can be short. ``pool=None`` sorts the whole epoch (tightest groups, least randomness).
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1:
        raise ValueError(f"lengths: expected shape (N,), got {lengths.shape}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    if pool is not None and (not isinstance(pool, (int, np.integer)) or pool < 1):
        raise ValueError(f"pool: expected a positive int or None, got {pool!r}")
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    step = len(order) if pool is None else pool * batch_size
    batches = []
    for first in range(0, len(order), max(step, 1)):
        group = order[first:first + step]
        group = group[np.argsort(lengths[group], kind="stable")]
        batches += [group[i:i + batch_size] for i in range(0, len(group), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def trim_batch(batch: Batch) -> Batch:
    """``batch`` with each modality's features ``(B, T, d)`` and mask ``(B, T)`` cut to the batch's
    last real frame (at least one frame is kept); only all-padding tail positions go."""
    features, masks = {}, {}
    for name, mask in batch.masks.items():
        real = mask.any(0).nonzero()
        keep = int(real[-1]) + 1 if len(real) else 1
        features[name], masks[name] = batch.features[name][:, :keep], mask[:, :keep]
    alignment = None if batch.alignment is None else {m: t[:, :features[m].shape[1]] for m, t in batch.alignment.items()}
    return Batch(features, masks, batch.labels, batch.present, batch.ids, alignment)
