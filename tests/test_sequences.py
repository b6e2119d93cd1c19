"""Packing padded sequences, and proportional-time resampling, against brute force and PyTorch."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from alignlib.common.sequences import (concat_packed, last_real, masked_mean, pack, proportional_windows, trails,
                                unpack)


@settings(max_examples=30, deadline=None)
@given(rows=st.lists(st.lists(st.booleans(), min_size=5, max_size=5), min_size=1, max_size=4))
def test_pack_puts_real_tokens_first_in_order_and_unpack_inverts(rows):
    mask = torch.tensor(rows)
    values = torch.randn(*mask.shape, 3)
    packed, packed_mask, order = pack(values, mask)
    for b in range(mask.shape[0]):
        real = values[b, mask[b]]
        torch.testing.assert_close(packed[b, :len(real)], real)
        assert packed_mask[b].tolist() == [True] * len(real) + [False] * (5 - len(real))
    assert trails(packed_mask)
    torch.testing.assert_close(unpack(packed, order), values)


def test_trails():
    assert trails(torch.tensor([[True, True, False], [True, False, False]]))
    assert not trails(torch.tensor([[True, False, True]]))


def test_concat_packed_keeps_part_order_and_trims():
    a, b = torch.arange(4.0)[None, :, None], 10 + torch.arange(3.0)[None, :, None]
    values, mask, order = concat_packed([a, b], [torch.tensor([[True, False, True, False]]),
                                                 torch.tensor([[False, True, True]])])
    assert values[0, :, 0].tolist() == [0.0, 2.0, 11.0, 12.0] and mask.all() and order.tolist() == [[0, 2, 5, 6]]


def test_last_real_and_masked_mean():
    values = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, False, True], [True, False, False, False]])
    torch.testing.assert_close(last_real(values, mask), torch.stack([values[0, 3], values[1, 0]]))
    torch.testing.assert_close(masked_mean(values, mask), torch.stack([values[0, [0, 1, 3]].mean(0), values[1, 0]]))


@pytest.mark.parametrize("n_source, n_target", [(375, 50), (7, 3), (3, 7), (10, 10), (1, 5), (50, 49)])
def test_proportional_windows_are_adaptive_average_pooling_per_clip(n_source, n_target):
    source = torch.randn(1, n_source, 4, dtype=torch.float64)
    padded = torch.cat([source, torch.randn(1, 6, 4, dtype=torch.float64)], dim=1)
    source_mask = torch.arange(n_source + 6)[None] < n_source
    target_mask = torch.arange(n_target + 2)[None] < n_target
    resampled = proportional_windows(source_mask, target_mask, torch.float64) @ padded
    expected = F.adaptive_avg_pool1d(source.transpose(1, 2), n_target).transpose(1, 2)
    torch.testing.assert_close(resampled[:, :n_target], expected, rtol=1e-12, atol=1e-12)
    assert (resampled[:, n_target:] == 0).all()
