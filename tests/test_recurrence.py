"""diagonal_scan against a plain Python loop, forward and gradients."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from alignlib.ssm.recurrence import diagonal_scan


def loop(decay, drive, initial):
    states, h = [], initial
    for decay_t, drive_t in zip(decay, drive):
        h = decay_t * h + drive_t
        states.append(h)
    return torch.stack(states)


@settings(max_examples=20, deadline=None)
@given(length=st.integers(1, 12), width=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_diagonal_scan_equals_the_loop(length, width, seed):
    g = torch.Generator().manual_seed(seed)
    tensors = (torch.rand(length, 2, width, generator=g, dtype=torch.float64),
               torch.randn(length, 2, width, generator=g, dtype=torch.float64),
               torch.randn(2, width, generator=g, dtype=torch.float64))
    fast = [t.clone().requires_grad_() for t in tensors]
    slow = [t.clone().requires_grad_() for t in tensors]
    weights = torch.randn(length, 2, width, generator=g, dtype=torch.float64)
    got, expected = diagonal_scan(*fast), loop(*slow)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    (got * weights).sum().backward()
    (expected * weights).sum().backward()
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)


def test_diagonal_scan_gradcheck_and_zero_initial():
    g = torch.Generator().manual_seed(1)
    decay = torch.rand(5, 3, generator=g, dtype=torch.float64).requires_grad_()
    drive = torch.randn(5, 3, generator=g, dtype=torch.float64).requires_grad_()
    initial = torch.randn(3, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(diagonal_scan, (decay, drive, initial))
    torch.testing.assert_close(diagonal_scan(decay, drive), loop(decay, drive, torch.zeros(3, dtype=torch.float64)))


def test_diagonal_scan_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must have one shape"):
        diagonal_scan(torch.rand(4, 2), torch.rand(4, 3))
