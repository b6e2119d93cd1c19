"""Missing modalities, as in AlignMamba's Table 1: at a missing rate ``r``, each modality of each
sample is dropped with probability ``r``, at least one modality kept, seeded."""
from __future__ import annotations

import numpy as np


def missing_modality_mask(n_samples: int, rate: float, n_modalities: int = 3, seed: int = 0) -> np.ndarray:
    """``(n_samples, n_modalities)`` bool, True where the modality is present.

    A sample that loses every modality gets one back, chosen uniformly, so no sample is empty.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate}")
    rng = np.random.default_rng(seed)
    present = rng.random((n_samples, n_modalities)) >= rate
    empty = ~present.any(axis=1)
    present[np.flatnonzero(empty), rng.integers(0, n_modalities, empty.sum())] = True
    return present
