"""The core of the exercises: :class:`Verdict`, the registry of checks (:data:`CHECKS`, filled by
:func:`exercise`), :func:`check`, :class:`Exercises`, and the helpers the checks share to call an
answer and compare its result with the reference (hints, never the expected values)."""
from __future__ import annotations

import html
import inspect
import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from alignlib.notebooks import solutions as reference_solutions

SYMBOLS = {"passed": "✓", "failed": "✗", "unanswered": "…"}
COLOURS = {"passed": "#1a7f37", "failed": "#b42318", "unanswered": "#6e6e6e"}
UNANSWERED = "not answered yet: write your answer where the cell says `# your` and run the cell again"


class Unanswered(Exception):
    """The answer is still the notebook's empty template (``None``, or a function returning ``None``)."""


class Mismatch(Exception):
    """The answer differs from the reference; the message is the hint."""


class ExerciseFailed(AssertionError):
    """A reference solution failed its check (``solutions=True``)."""


@dataclass
class Verdict:
    """The outcome of one check: ``status`` is ``"passed"``, ``"failed"`` or ``"unanswered"``."""

    exercise: str
    status: str
    message: str
    solution: str = ""  # the reference solution's source, when solutions=True filled it in

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __repr__(self) -> str:
        filled = " (the reference solution, from alignlib/notebooks/solutions.py)" if self.solution else ""
        return f"{SYMBOLS[self.status]} {self.exercise}{filled}: {self.message}"

    def _repr_html_(self) -> str:
        line = (f"<div style='color:{COLOURS[self.status]}'><b>{SYMBOLS[self.status]} {html.escape(self.exercise)}"
                f"</b>: {html.escape(self.message)}</div>")
        if not self.solution:
            return line
        return (f"{line}<details><summary>reference solution (alignlib/notebooks/solutions.py)</summary>"
                f"<pre>{html.escape(self.solution)}</pre></details>")


CHECKS: dict[str, Callable[..., str]] = {}


def exercise(check: Callable[..., str]) -> Callable[..., str]:
    """Register ``check_<name>`` as the check of exercise ``<name>``."""
    CHECKS[check.__name__.removeprefix("check_")] = check
    return check


def check(name: str, answer, **context) -> Verdict:
    """Check ``answer`` for exercise ``name``; ``context`` holds what the notebook measured."""
    if name not in CHECKS:
        raise KeyError(f"no exercise {name!r}; known: {', '.join(sorted(CHECKS))}")
    try:
        note = CHECKS[name](answer, **context)
    except Unanswered as unanswered:
        return Verdict(name, "unanswered", str(unanswered) or UNANSWERED)
    except Mismatch as mismatch:
        return Verdict(name, "failed", f"not yet. {mismatch}")
    return Verdict(name, "passed", f"correct: {note}")


class Exercises:
    """One notebook's exercises: ``Exercises(solutions).check(name, answer, **context)``.

    With ``solutions`` true, every check runs the reference solution instead of ``answer``, shows
    it folded under the verdict, and raises :class:`ExerciseFailed` if it does not pass.
    """

    def __init__(self, solutions: bool = False):
        self.solutions = solutions

    def check(self, name: str, answer, **context) -> Verdict:
        if not self.solutions or name not in CHECKS:
            return check(name, answer, **context)
        reference = getattr(reference_solutions, name)
        verdict = check(name, reference, **context)
        verdict.solution = inspect.getsource(reference) if callable(reference) else f"{name} = {reference!r}"
        if not verdict.passed:
            raise ExerciseFailed(f"the reference solution of {name!r} fails its check: {verdict.message}")
        return verdict


# ---------------------------------------------------------------------------------------------
# Calling an answer and comparing its result with the reference.

def describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')} {tuple(value.shape)}"
    if isinstance(value, (list, tuple)):
        return f"{len(value)} x [{describe(value[0])}]" if value else "[]"
    return repr(value)


def call_answer(answer, case: str, *inputs):
    """The answer's result on one case (inputs are copies); an exception becomes a hint that names
    the case and the inputs' shapes."""
    if answer is None:
        raise Unanswered
    if not callable(answer):
        raise Mismatch(f"expected a function, got {type(answer).__name__}")
    copies = [value.clone() if isinstance(value, torch.Tensor) else value for value in inputs]
    try:
        result = answer(*copies)
    except Exception as error:  # noqa: BLE001 - any error of the answer is the student's to see
        shapes = ", ".join(describe(value) for value in inputs)
        raise Mismatch(f"on {case} (inputs: {shapes}) your function raised {type(error).__name__}: {error}") from None
    if result is None:
        raise Unanswered("not answered yet: your function returns None (the empty template, or a `return` is "
                         "missing); write your answer and run the cell again")
    return result


def as_tensor(value, case: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64)
    try:
        return torch.as_tensor(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        raise Mismatch(f"{case}: expected numbers (a tensor or an array), got {type(value).__name__}") from None


def as_number(value, case: str) -> float:
    tensor = as_tensor(value, case)
    if tensor.numel() != 1:
        raise Mismatch(f"{case}: expected one number, got shape {tuple(tensor.shape)}")
    number = tensor.item()
    if not math.isfinite(number):
        raise Mismatch(f"{case}: your answer is {number}")
    return number


def factor_name(ratio: float) -> str:
    return f"{ratio:.4g}" if abs(ratio) >= 1 else f"1/{1 / ratio:.4g}"


def compare(got, expected: torch.Tensor, case: str, mistakes: dict[str, torch.Tensor] | None = None,
             axes: str = "", explain: Callable[[torch.Tensor], None] | None = None,
             rtol: float = 1e-6, atol: float = 1e-9) -> None:
    """Raise :class:`Mismatch` with a hint unless ``got`` matches ``expected``.

    In order: a match passes; a known wrong answer (``mistakes``: hint -> its value) names its
    hint; then shape (and transposition), ``explain`` (the exercise's own diagnosis), NaN or inf, a
    constant factor, and finally where the values differ most.
    """
    got = as_tensor(got, case)
    expected = expected.detach().to(torch.float64)

    def close(a, b):
        return a.shape == b.shape and bool(torch.allclose(a, b.to(torch.float64), rtol=rtol, atol=atol))

    if close(got, expected):
        return
    for hint, wrong in (mistakes or {}).items():
        if close(got, wrong):
            raise Mismatch(f"{case}: {hint}")
    transposed = got.dim() >= 2 and close(got.mT, expected)
    if got.shape != expected.shape:
        kind = "transposed: " if transposed else ""
        raise Mismatch(f"{case}: {kind}shape {tuple(got.shape)}, expected {tuple(expected.shape)}{axes}")
    if explain is not None:
        explain(got)
    if not torch.isfinite(got).all():
        raise Mismatch(f"{case}: {int((~torch.isfinite(got)).sum())} of {got.numel()} values are NaN or infinite")
    if transposed:
        raise Mismatch(f"{case}: transposed{axes}")
    scale = expected.pow(2).sum()
    if scale > 0:
        ratio = ((got * expected).sum() / scale).item()
        if ratio != 0 and close(got, ratio * expected):
            raise Mismatch(f"{case}: off by a factor of {factor_name(ratio)}" if ratio != -1 else f"{case}: wrong sign")
    difference = (got - expected).abs()
    where = tuple(int(i) for i in np.unravel_index(int(difference.argmax()), tuple(got.shape)))
    raise Mismatch(f"{case}: values differ, by up to {difference.max().item():.3g} (at index {where})")


def compare_number(got: float, expected: float, case: str, mistakes: dict[str, float] | None = None,
                    rtol: float = 1e-6, atol: float = 1e-12) -> None:
    """:func:`compare` for one number."""
    if math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
        return
    for hint, wrong in (mistakes or {}).items():
        if math.isclose(got, wrong, rel_tol=rtol, abs_tol=atol):
            raise Mismatch(f"{case}: {hint}")
    if expected != 0 and got != 0:
        raise Mismatch(f"{case}: off by a factor of {factor_name(got / expected)}")
    raise Mismatch(f"{case}: your value {got:.6g} differs from the reference")


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)



# ---------------------------------------------------------------------------------------------
# Predictions about trained models: True or False, tested by a measurement the notebook makes.

def judge_prediction(prediction, holds: bool, measured: str, why: str = "") -> str:
    """Compare a True/False prediction with what the measurement says (``holds``)."""
    if prediction is None:
        raise Unanswered
    if not isinstance(prediction, (bool, np.bool_)):
        raise Mismatch(f"a prediction is True or False, got {prediction!r}")
    if bool(prediction) != holds:
        raise Mismatch(f"the measurement disagrees: {measured}" + (f". {why}" if why else ""))
    return f"the measurement agrees: {measured}"
