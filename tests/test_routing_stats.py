"""Mutual information between modality and chosen expert, against scikit-learn and brute force."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import mutual_info_score

from alignlib.routing_stats import mutual_information_bits


def brute_force_bits(m, e):
    n = len(m)
    total = 0.0
    for a in set(m):
        for b in set(e):
            joint = sum(1 for x, y in zip(m, e) if x == a and y == b) / n
            if joint:
                total += joint * math.log2(joint / ((m.count(a) / n) * (e.count(b) / n)))
    return total


def test_matches_sklearn_and_brute_force():
    rng = np.random.default_rng(0)
    modality = rng.integers(0, 3, 500)
    expert = np.where(rng.random(500) < 0.6, modality, rng.integers(0, 4, 500))  # partly informative
    bits = mutual_information_bits(torch.from_numpy(modality).reshape(20, 25), torch.from_numpy(expert).reshape(20, 25))
    assert bits == pytest.approx(mutual_info_score(modality, expert) / math.log(2), abs=1e-12)
    assert bits == pytest.approx(brute_force_bits(modality.tolist(), expert.tolist()), abs=1e-12)


def test_limits():
    modality = torch.arange(3).repeat(40)
    assert mutual_information_bits(modality, (modality + 1) % 3) == pytest.approx(math.log2(3))
    assert mutual_information_bits(modality, torch.zeros_like(modality)) == pytest.approx(0.0, abs=1e-15)


def test_bad_input():
    with pytest.raises(ValueError, match="shapes differ"):
        mutual_information_bits(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer labels"):
        mutual_information_bits(torch.zeros(3), torch.zeros(3, dtype=torch.long))
