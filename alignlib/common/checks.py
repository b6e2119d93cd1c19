"""Input validation shared by every alignlib function that takes token sequences.

Each check raises a ``ValueError`` (or ``TypeError``) whose message names the argument
and what is wrong with it, so a user sees "x: expected 3 dims (B, T, d), got (4, 5)" rather
than a broadcasting error deep inside a solver.

The NaN/inf checks (:func:`check_finite`) read every value, on every call: inside :func:`trusted`
they are skipped. The trainer runs its models there, on batches of data validated once, where it was
loaded (:func:`alignlib.data.load_mmsa`); shape, dtype and mask checks always run.
"""
from __future__ import annotations

import contextlib
import contextvars

import torch

_TRUSTED = contextvars.ContextVar("alignlib_trusted_values", default=False)


@contextlib.contextmanager
def trusted():
    """Skip the NaN/inf checks inside: the values come from data validated where it was loaded."""
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def check_finite(x: torch.Tensor, name: str) -> None:
    """Raise a ``ValueError`` naming ``name`` if ``x`` holds a NaN or inf (skipped inside :func:`trusted`)."""
    if not _TRUSTED.get() and not torch.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or infinite values")


def check_tokens(x: torch.Tensor, name: str) -> None:
    """Check a batch of token sequences ``(B, T, d)``: floating dtype, non-empty, finite."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"{name}: expected 3 dims (B, T, d), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating dtype, got {x.dtype}")
    batch, length, dim = x.shape
    if batch == 0 or length == 0 or dim == 0:
        raise ValueError(f"{name}: empty sequence batch, shape {tuple(x.shape)} (B, T, d must be > 0)")
    check_finite(x, name)


def check_pair(x: torch.Tensor, y: torch.Tensor, x_name: str = "x", y_name: str = "y") -> None:
    """Check two token batches ``(B, Tm, d)`` and ``(B, Tn, d)`` that will be compared token by token."""
    check_tokens(x, x_name)
    check_tokens(y, y_name)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"batch sizes differ: {x_name} has {x.shape[0]}, {y_name} has {y.shape[0]}")
    if x.shape[2] != y.shape[2]:
        raise ValueError(
            f"feature dims differ: {x_name} has d={x.shape[2]}, {y_name} has d={y.shape[2]}; "
            "project both modalities to a common width first"
        )
    if x.dtype != y.dtype:
        raise TypeError(f"dtypes differ: {x_name} is {x.dtype}, {y_name} is {y.dtype}")


def check_mask(mask: torch.Tensor | None, x: torch.Tensor, name: str) -> torch.Tensor:
    """Return a boolean padding mask ``(B, T)`` for ``x`` (True = real token).

    ``None`` means every token is real. A row with no real token is an error: there is
    nothing to align.
    """
    batch, length = x.shape[:2]
    if mask is None:
        return torch.ones(batch, length, dtype=torch.bool, device=x.device)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(mask).__name__}")
    if tuple(mask.shape) != (batch, length):
        raise ValueError(f"{name}: expected shape {(batch, length)} (B, T), got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{name}: expected a bool mask (True = real token), got {mask.dtype}")
    empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"{name}: all tokens are padding in batch item(s) {empty}")
    return mask.to(x.device)


def check_positive(value: float, name: str) -> None:
    """Check a strictly positive, finite scalar (a blur, a bandwidth)."""
    if not (isinstance(value, (int, float)) and value > 0 and value != float("inf")):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
