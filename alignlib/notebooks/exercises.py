"""Exercises with checks, for the ``## Exercises`` section that ends every notebook.

An exercise asks for a function (or a prediction). :meth:`Exercises.check` runs the answer on the
check's own cases, compares each result with an independent reference (alignlib's implementation,
a closed form, SciPy, scikit-learn, or a measurement the notebook just made) and returns a
:class:`Verdict`: passed, not answered yet, or failed with a hint that names what differs (shape,
transposed, off by a factor, mask ignored, wrong axis, ...), never the expected values.

``Exercises(solutions=True)`` (the notebooks' ``solutions`` parameter; the regression run sets it)
checks the reference solutions of :mod:`alignlib.notebooks.solutions` instead of the answer cells,
folds each one under its verdict, and raises :class:`ExerciseFailed` if one does not pass.

Each ``check_<name>`` below is the check of exercise ``<name>``; its docstring says what it verifies.
"""
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


def _exercise(check: Callable[..., str]) -> Callable[..., str]:
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

def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')} {tuple(value.shape)}"
    if isinstance(value, (list, tuple)):
        return f"{len(value)} x [{_describe(value[0])}]" if value else "[]"
    return repr(value)


def _call(answer, case: str, *inputs):
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
        shapes = ", ".join(_describe(value) for value in inputs)
        raise Mismatch(f"on {case} (inputs: {shapes}) your function raised {type(error).__name__}: {error}") from None
    if result is None:
        raise Unanswered("not answered yet: your function returns None (the empty template, or a `return` is "
                         "missing); write your answer and run the cell again")
    return result


def _tensor(value, case: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64)
    try:
        return torch.as_tensor(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        raise Mismatch(f"{case}: expected numbers (a tensor or an array), got {type(value).__name__}") from None


def _number(value, case: str) -> float:
    tensor = _tensor(value, case)
    if tensor.numel() != 1:
        raise Mismatch(f"{case}: expected one number, got shape {tuple(tensor.shape)}")
    number = tensor.item()
    if not math.isfinite(number):
        raise Mismatch(f"{case}: your answer is {number}")
    return number


def _factor(ratio: float) -> str:
    return f"{ratio:.4g}" if abs(ratio) >= 1 else f"1/{1 / ratio:.4g}"


def _compare(got, expected: torch.Tensor, case: str, mistakes: dict[str, torch.Tensor] | None = None,
             axes: str = "", explain: Callable[[torch.Tensor], None] | None = None,
             rtol: float = 1e-6, atol: float = 1e-9) -> None:
    """Raise :class:`Mismatch` with a hint unless ``got`` matches ``expected``.

    In order: a match passes; a known wrong answer (``mistakes``: hint -> its value) names its
    hint; then shape (and transposition), ``explain`` (the exercise's own diagnosis), NaN or inf, a
    constant factor, and finally where the values differ most.
    """
    got = _tensor(got, case)
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
            raise Mismatch(f"{case}: off by a factor of {_factor(ratio)}" if ratio != -1 else f"{case}: wrong sign")
    difference = (got - expected).abs()
    where = tuple(int(i) for i in np.unravel_index(int(difference.argmax()), tuple(got.shape)))
    raise Mismatch(f"{case}: values differ, by up to {difference.max().item():.3g} (at index {where})")


def _compare_number(got: float, expected: float, case: str, mistakes: dict[str, float] | None = None,
                    rtol: float = 1e-6, atol: float = 1e-12) -> None:
    """:func:`_compare` for one number."""
    if math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
        return
    for hint, wrong in (mistakes or {}).items():
        if math.isclose(got, wrong, rel_tol=rtol, abs_tol=atol):
            raise Mismatch(f"{case}: {hint}")
    if expected != 0 and got != 0:
        raise Mismatch(f"{case}: off by a factor of {_factor(got / expected)}")
    raise Mismatch(f"{case}: your value {got:.6g} differs from the reference")


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# 01 · optimal transport

@_exercise
def check_relaxed_plan(answer) -> str:
    """``relaxed_plan(cost (B, T_m, T_n), x_mask (B, T_m), y_mask (B, T_n)) -> (B, T_m, T_n)`` against
    :func:`alignlib.align.ot.relaxed_plan` on two padded batches."""
    from alignlib.align import ot

    cases = {"a batch of two 12 x 8 pairs, the second with 9 x 6 real tokens": (12, 8, 9, 6, 1),
             "a batch of two 5 x 9 pairs, the second with 4 x 7 real tokens": (5, 9, 4, 7, 2)}
    for case, (n_source, n_target, real_source, real_target, seed) in cases.items():
        x, y = (torch.randn(2, n, 6, generator=_generator(seed), dtype=torch.float64) for n in (n_source, n_target))
        x_mask, y_mask = torch.ones(2, n_source, dtype=torch.bool), torch.ones(2, n_target, dtype=torch.bool)
        x_mask[1, real_source:], y_mask[1, real_target:] = False, False
        cost = ot.cosine_cost(x, y)
        got = _call(answer, case, cost, x_mask, y_mask)
        expected = ot.relaxed_plan(x, y, x_mask, y_mask)
        real_counts = x_mask.sum(1, keepdim=True).double()

        def explain(plan, cost=cost, x_mask=x_mask, y_mask=y_mask, real_counts=real_counts, case=case):
            if plan[~y_mask[:, None, :].expand_as(plan)].abs().max() > 0:
                raise Mismatch(f"{case}: a padded target token receives mass: padded targets (y_mask False) receive "
                               "nothing")
            sums = plan.sum(2)
            if (sums[~x_mask].abs() > 1e-12).any():
                raise Mismatch(f"{case}: a padded source token sends mass: rows with x_mask False stay zero")
            if not torch.allclose(sums[x_mask], (1.0 / real_counts).expand_as(sums)[x_mask]):
                raise Mismatch(f"{case}: each real source token must carry 1/n, n the real source tokens of its clip; "
                               f"your real rows sum to {sums[x_mask].min().item():.4g} ... {sums[x_mask].max().item():.4g}")
            cheapest = cost.masked_fill(~y_mask[:, None, :], math.inf).min(2).values
            heaviest = plan.argmax(2)
            wrong = (x_mask & (cost.gather(2, heaviest[..., None])[..., 0] > cheapest + 1e-12)).nonzero()
            if len(wrong):
                b, i = (int(v) for v in wrong[0])
                raise Mismatch(f"{case}: clip {b}, row {i} puts its mass on column {int(heaviest[b, i])}, which is not "
                               "the cheapest real target of that row")

        mistakes = {
            "the masks are ignored: padded source tokens (x_mask False) send nothing, padded target tokens (y_mask "
            "False) receive nothing": ot.relaxed_plan(x, y),
            "a padded target token receives mass: each row's argmin runs over the real targets only":
                ot.relaxed_plan(x, y, x_mask),
            "each real source token carries 1/n, n the real source tokens of its clip, not 1/T_m":
                expected * real_counts[..., None] / n_source,
            "each row carries a mass of 1; between two uniform distributions, a source token carries 1/n":
                expected * real_counts[..., None],
            "each row's mass sits on its most expensive real column: the plan minimises <M, C>":
                torch.zeros_like(cost).scatter(2, cost.masked_fill(~y_mask[:, None, :], -math.inf).argmax(2, keepdim=True),
                                               (x_mask / real_counts)[..., None].to(cost.dtype)),
            "the argmin runs along the wrong axis: each source token (a row) sends its mass to its cheapest target "
            "token (a column), not each column to its cheapest row":
                ot.relaxed_plan(y, x, y_mask, x_mask).transpose(1, 2),
        }
        _compare(got, expected, case, mistakes, axes=" (B, T_m, T_n)", explain=explain)
    return "matches alignlib.align.ot.relaxed_plan on two padded batches"


@_exercise
def check_aligned_average(answer) -> str:
    """``aligned_average(plan (T_m, T_n), source (T_m, d)) -> (T_n, d)`` against
    ``alignlib.align.ot.transport(..., barycentric=True)``, on a relaxed plan (some words receive
    nothing) and an entropic one."""
    from alignlib.align import ot
    from alignlib.data.warped_pairs import warped_pair

    relaxed = warped_pair(6, 9, dim=6, seed=3)  # six frames for nine words: some words receive nothing
    entropic = warped_pair(7, 5, dim=6, seed=4)
    cases = {"a relaxed 6 x 9 plan": (ot.relaxed_plan(relaxed.source, relaxed.target), relaxed.source),
             "an entropic 7 x 5 plan": (ot.entropic_plan(entropic.source, entropic.target, blur=0.3), entropic.source)}
    for case, (plan, source) in cases.items():
        got = _call(answer, case, plan[0], source[0])
        expected = ot.transport(plan, source, barycentric=True)[0]
        received = plan[0].sum(0)

        def explain(aligned, received=received, case=case):
            empty = received == 0
            if empty.any() and not torch.isfinite(aligned[empty]).all():
                raise Mismatch(f"{case}: NaN or inf in the rows of words that received no mass (0 / 0); "
                               "those rows stay zero")

        mistakes = {
            "a weighted sum (M^T X as AlignMamba-1 writes it): divide each word's row by the mass that word "
            "received, so it becomes a weighted average": ot.transport(plan, source)[0],
            "divided by the mass each source token sends (T_m times the sum): a word's row is divided by the mass "
            "it received, the column sum of M": ot.transport(plan, source)[0] * plan.shape[1],
        }
        _compare(got, expected, case, mistakes, axes=" (T_n, d)", explain=explain)
    return "matches alignlib.align.ot.transport(plan, x, barycentric=True) on a relaxed and an entropic plan"


def _row_entropy(source: torch.Tensor, target: torch.Tensor, blur: float) -> float:
    """Entropy per source token of the entropic plan, ``H(M) - H(a) = -sum M log(T_m M)``, in nats."""
    from alignlib.align import ot

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # at small blurs the polish may stop at its iteration cap
        plan = ot.entropic_plan(source[None].double(), target[None].double(), blur=blur)[0]
    return -torch.special.xlogy(plan, plan * plan.shape[0]).sum().item()


@_exercise
def check_entropy_halving_blur(answer, source: torch.Tensor, target: torch.Tensor) -> str:
    """``entropy_halving_blur(source (T_m, d), target (T_n, d)) -> blur``: at the answer's blur the
    entropic plan's entropy per source token must be ``log(T_n) / 2`` within 1 %, on the notebook's
    pair and on a 16 x 6 pair of the check's own."""
    from alignlib.data.warped_pairs import warped_pair

    other = warped_pair(16, 6, dim=6, seed=5)
    for case, (x, y) in {"the notebook's pair": (source, target),
                         "a 16 x 6 pair": (other.source[0], other.target[0])}.items():
        blur = _number(_call(answer, case, x, y), case)
        if blur <= 0:
            raise Mismatch(f"{case}: a blur is a positive length, got {blur:.4g}")
        goal = math.log(y.shape[0]) / 2
        if abs(_row_entropy(x, y, blur) - goal) <= 0.01 * goal:
            continue
        if abs(_row_entropy(x, y, math.sqrt(blur)) - goal) <= 0.01 * goal:
            raise Mismatch(f"{case}: you returned epsilon = blur^2, not the blur")
        entropy = _row_entropy(x, y, blur)
        direction = "smaller" if entropy > goal else "larger"
        raise Mismatch(f"{case}: at blur {blur:.4g} the entropy per source token is {entropy:.4f} nats; half of "
                       f"log T_n is {goal:.4f}, and the entropy grows with the blur: try a {direction} one")
    return "the entropy per source token is half of log T_n at your blur, on the notebook's pair and a 16 x 6 one"


# ---------------------------------------------------------------------------------------------
# 02 · MMD

def _clouds(m: int, n: int, dim: int, shift: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = _generator(seed)
    x = torch.randn(m, dim, generator=generator, dtype=torch.float64)
    return x, torch.randn(n, dim, generator=generator, dtype=torch.float64) + shift


def _squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x, y).pow(2)


@_exercise
def check_kernel_matrix(answer) -> str:
    """``kernel_matrix(x (m, d), y (n, d), gamma) -> (m, n)`` against scikit-learn's ``rbf_kernel``."""
    from sklearn.metrics.pairwise import rbf_kernel

    for case, (m, n, dim, gamma, seed) in {"6 x 4 tokens, gamma 0.5": (6, 4, 3, 0.5, 6),
                                           "5 x 7 tokens, gamma 1/8": (5, 7, 8, 0.125, 7)}.items():
        x, y = _clouds(m, n, dim, 0.5, seed)
        got = _call(answer, case, x, y, gamma)
        expected = torch.from_numpy(rbf_kernel(x.numpy(), y.numpy(), gamma=gamma))
        sq = _squared_distances(x, y)
        mistakes = {
            "the distance is not squared: k(x, y) = exp(-gamma |x - y|^2)": torch.exp(-gamma * sq.sqrt()),
            "gamma read as the width sigma of Eq. 7, exp(-|x - y|^2 / (2 gamma^2)): here gamma multiplies the "
            "squared distance (reading A)": torch.exp(-sq / (2 * gamma**2)),
            "gamma divides the squared distance: it multiplies it, exp(-gamma |x - y|^2)": torch.exp(-sq / gamma),
            "the exponent's sign: a Gaussian kernel decays with the distance": torch.exp(gamma * sq),
        }
        _compare(got, expected, case, mistakes, axes=" (m, n)")
    return "matches scikit-learn's rbf_kernel on two pairs of token sets"


@_exercise
def check_unbiased_mmd2(answer) -> str:
    """``unbiased_mmd2(x (m, d), y (n, d), gamma) -> float`` against
    ``alignlib.align.mmd.mmd2(..., estimator="unbiased")``, with ``m != n``."""
    from alignlib.align import mmd

    for case, (m, n, dim, gamma, seed) in {"7 x 11 tokens, gamma 0.3": (7, 11, 3, 0.3, 8),
                                           "5 x 4 tokens, gamma 1": (5, 4, 2, 1.0, 9)}.items():
        x, y = _clouds(m, n, dim, 0.4, seed)
        got = _number(_call(answer, case, x, y, gamma), case)
        expected = mmd.mmd2(x[None], y[None], bandwidth=gamma, estimator="unbiased").item()
        k_xx, k_yy, k_xy = (torch.exp(-gamma * _squared_distances(u, v)) for u, v in ((x, x), (y, y), (x, y)))
        off_x, off_y = k_xx.sum() - m, k_yy.sum() - n
        mistakes = {
            "the within-set sums keep their diagonal k(x_i, x_i) = 1: that is the biased V-statistic; the unbiased "
            "one leaves i = i' out": (k_xx.mean() + k_yy.mean() - 2 * k_xy.mean()).item(),
            "with the diagonal left out, a within-set sum has m (m - 1) terms, not m^2":
                (off_x / m**2 + off_y / n**2 - 2 * k_xy.mean()).item(),
            "the cross term counts twice: - 2/(m n) sum_ij k(x_i, y_j)":
                (off_x / (m * (m - 1)) + off_y / (n * (n - 1)) - k_xy.mean()).item(),
        }
        _compare_number(got, expected, case, mistakes)
    return "matches alignlib.align.mmd.mmd2(..., estimator='unbiased') on sets of unequal sizes"


@_exercise
def check_equivalent_gamma(answer) -> str:
    """``equivalent_gamma(gamma, alpha) -> gamma'`` such that the kernel of features scaled by
    ``alpha`` under ``gamma`` equals the kernel of the original features under ``gamma'``; checked
    on :func:`alignlib.align.mmd.gaussian_kernel` matrices."""
    from alignlib.align import mmd

    x, y = _clouds(5, 6, 4, 0.3, 10)
    for case, (gamma, alpha) in {"gamma 1/8, alpha 0.1": (0.125, 0.1), "gamma 2, alpha 3": (2.0, 3.0),
                                 "gamma 0.5, alpha 0.5": (0.5, 0.5)}.items():
        got = _number(_call(answer, case, gamma, alpha), case)
        if got <= 0:
            raise Mismatch(f"{case}: gamma' must be positive, got {got:.4g}")
        scaled = mmd.gaussian_kernel(alpha * x[None], alpha * y[None], torch.tensor([[gamma]], dtype=torch.float64))
        mine = mmd.gaussian_kernel(x[None], y[None], torch.tensor([[got]], dtype=torch.float64))
        if torch.allclose(mine, scaled, rtol=1e-9, atol=1e-12):
            continue
        mistakes = {"off by a factor alpha: the kernel sees the squared distance |alpha x - alpha y|^2": gamma * alpha,
                    "inverted: shrinking the features (alpha < 1) widens the kernel, so gamma' is smaller than gamma":
                        gamma / alpha**2}
        _compare_number(got, gamma * alpha**2, case, mistakes)
    return "the kernel of the scaled features equals the original features' kernel at your gamma', in three cases"


@_exercise
def check_peak_gamma(answer) -> str:
    """``peak_gamma(shift, dim) -> gamma``: the population MMD^2 between N(0, I_d) and
    N(shift 1, I_d) at the answer must be within 0.1 % of its maximum over gamma (found by SciPy
    on :func:`alignlib.align.mmd.gaussian_mmd2`)."""
    from scipy.optimize import minimize_scalar

    from alignlib.align import mmd

    for case, (shift, dim) in {"shift 0.5, d = 8": (0.5, 8), "shift 2, d = 2": (2.0, 2)}.items():
        got = _number(_call(answer, case, shift, dim), case)
        if got <= 0:
            raise Mismatch(f"{case}: gamma must be positive, got {got:.4g} (a log of gamma?)")
        best = minimize_scalar(lambda log_gamma: -mmd.gaussian_mmd2(shift, math.exp(log_gamma), dim),
                               bounds=(-12.0, 6.0), method="bounded", options={"xatol": 1e-10})
        peak, value = math.exp(best.x), -best.fun
        mine = mmd.gaussian_mmd2(shift, got, dim)
        if mine >= (1 - 1e-3) * value:
            continue
        if math.isclose(got, 1 / dim):
            raise Mismatch(f"{case}: gamma = 1/d is the paper's choice, not the peak of this curve")
        side = "larger" if got < peak else "smaller"
        raise Mismatch(f"{case}: at gamma {got:.4g} the population MMD^2 is {100 * (1 - mine / value):.1f} % below "
                       f"its peak, which lies at a {side} gamma")
    return "your gamma reaches the peak of the population MMD^2 (within 0.1 %) in both cases"


# ---------------------------------------------------------------------------------------------
# 03 · Mamba

@_exercise
def check_zoh_step(answer) -> str:
    """``zoh_step(h (N,), u, a (N,), b (N,), delta) -> (N,)``: one exact zero-order-hold step of
    ``h' = a h + b u``, against SciPy's ODE solver."""
    from scipy.integrate import solve_ivp

    generator = _generator(11)
    cases = {
        "N = 4, delta 0.1": (torch.ones(4, dtype=torch.float64), 0.7, -torch.arange(1.0, 5.0, dtype=torch.float64),
                             torch.ones(4, dtype=torch.float64), 0.1),
        "N = 2, delta 0.5": (torch.randn(2, generator=generator, dtype=torch.float64), -1.3,
                             torch.tensor([-0.5, -5.0], dtype=torch.float64), torch.tensor([2.0, -1.0], dtype=torch.float64), 0.5),
    }
    for case, (h, u, a, b, delta) in cases.items():
        got = _call(answer, case, h, u, a, b, delta)
        ode = solve_ivp(lambda t, state: a.numpy() * state + b.numpy() * u, (0, delta), h.numpy(), rtol=1e-12, atol=1e-14)
        expected = torch.from_numpy(ode.y[:, -1])
        decay = torch.exp(delta * a)
        mistakes = {
            "that is Mamba's first-order input matrix B_bar = delta b; the exact ZOH one is (e^{delta a} - 1) / a b":
                decay * h + delta * b * u,
            "A_bar = e^{delta a}: the decay rate a is multiplied by the step delta":
                torch.exp(a) * h + torch.expm1(a) / a * b * u,
            "B_bar has the wrong sign: (e^{delta a} - 1) / a is positive for a < 0":
                decay * h - torch.expm1(delta * a) / a * b * u,
        }
        _compare(got, expected, case, mistakes, axes=" (N,)", atol=1e-8)
    return "matches SciPy's ODE solver over one step, in two cases"


@_exercise
def check_selective_scan_loop(answer) -> str:
    """``selective_scan_loop(u, delta (batch, D, L), A (D, N), B, C (batch, N, L)) -> (batch, D, L)``
    against :func:`alignlib.ssm.selective_scan.selective_scan_reference`."""
    from alignlib.ssm.selective_scan import selective_scan_reference as scan

    generator = _generator(12)
    batch, channels, states, length = 2, 3, 4, 9
    u = torch.randn(batch, channels, length, generator=generator, dtype=torch.float64)
    delta = torch.nn.functional.softplus(torch.randn(batch, channels, length, generator=generator, dtype=torch.float64))
    A = -torch.rand(channels, states, generator=generator, dtype=torch.float64) * 3 - 0.5
    B, C = (torch.randn(batch, states, length, generator=generator, dtype=torch.float64) for _ in range(2))
    case = "batch 2, D = 3, N = 4, L = 9"
    got = _call(answer, case, u, delta, A, B, C)
    expected = scan(u, delta, A, B, C)
    next_readout = torch.cat([C[..., 1:], C[..., -1:]], dim=-1)  # C_{t+1} read at step t
    lagged = torch.cat([torch.zeros_like(u[..., :1]), scan(u, delta, A, B, next_readout)[..., :-1]], dim=-1)
    mistakes = {
        "the input enters as delta_t B_t u_t (B_bar = delta B); yours leaves delta out": scan(u / delta, delta, A, B, C),
        "the decay is e^{delta_t A}: A is multiplied by the step delta_t": scan(u * delta, torch.ones_like(delta), A, B, C),
        "your output lags one step: y_t = C_t h_t reads the state after step t's update": lagged,
        "your output is shifted one step late: y_t belongs at position t, the step that produced h_t":
            torch.cat([torch.zeros_like(u[..., :1]), expected[..., :-1]], dim=-1),
    }
    _compare(got, expected, case, mistakes, axes=" (batch, D, L)")
    return "matches alignlib.ssm.selective_scan.selective_scan_reference"


@_exercise
def check_impulse_response(answer) -> str:
    """``impulse_response(a, b, c (N,), delta, length) -> (length,)``: the kernel ``K_k`` of the
    time-invariant SSM with Mamba's ``B_bar = delta b``, against the response of
    :func:`alignlib.ssm.selective_scan.selective_scan_reference` to a unit spike."""
    from alignlib.ssm.selective_scan import selective_scan_reference as scan

    a = torch.tensor([-1.0, -2.0, -3.0], dtype=torch.float64)
    b = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    c = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    delta, length, case = 0.1, 12, "N = 3, delta 0.1, 12 lags"
    got = _call(answer, case, a, b, c, delta, length)
    spike = torch.zeros(1, 1, length + 1, dtype=torch.float64)
    spike[..., 0] = 1.0

    def response(input_matrix):
        return scan(spike, torch.full_like(spike, delta), a[None], input_matrix[None], c[None])[0, 0]

    kernel = response(b)
    expected = kernel[:length]
    mistakes = {
        "reversed: K_0, the response at lag 0 (the spike's own step), comes first": expected.flip(0),
        "starts one lag late: K_0 = C B_bar, the spike's own step, with no decay yet": kernel[1:],
        "starts one lag early: the spike reaches the output at its own step, K_0 = C B_bar":
            torch.cat([torch.zeros(1, dtype=torch.float64), kernel[:length - 1]]),
        "that uses the exact ZOH B_bar = (e^{delta a} - 1) / a b; this notebook's scans use Mamba's delta b":
            response(torch.expm1(delta * a) / (delta * a) * b)[:length],
    }
    _compare(got, expected, case, mistakes, axes=" (length,)")
    return "matches the scan's response to a unit spike, lag by lag"


# ---------------------------------------------------------------------------------------------
# 04 · experts and coupling

@_exercise
def check_route_by_modality(answer) -> str:
    """``route_by_modality(tokens (B, L, d_in), modality (B, L), experts (M, d_out, d_in),
    shared (d_out, d_in)) -> (B, L, d_out)`` against
    :class:`alignlib.ssm.modality_mamba.ExpertLinear`."""
    from alignlib.ssm.modality_mamba import ExpertLinear

    generator = _generator(13)
    batch, length, d_in, d_out, experts = 2, 6, 5, 7, 3
    layer = ExpertLinear(d_in, d_out, experts).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(experts, d_out, d_in, generator=generator, dtype=torch.float64))
        layer.shared.weight.copy_(torch.randn(d_out, d_in, generator=generator, dtype=torch.float64))
    tokens = torch.randn(batch, length, d_in, generator=generator, dtype=torch.float64)
    modality = torch.tensor([[0, 0, 1, 1, 2, 2], [2, 1, 0, 2, 1, 0]])
    weights, shared = layer.weight.detach(), layer.shared.weight.detach()
    case = f"{batch} x {length} tokens of {experts} modalities"
    got = _call(answer, case, tokens, modality, weights, shared)
    with torch.no_grad():
        expected = layer(tokens, modality)
    own = torch.einsum("blod,bld->blo", weights[modality], tokens)
    mistakes = {
        "the shared expert is missing: every token gets E_m(h) + E_shared(h)": own,
        "only the shared expert: each token also goes through its own modality's expert": tokens @ shared.T,
        "every token goes through expert 0: route each token to the expert of its own modality":
            tokens @ weights[0].T + tokens @ shared.T,
        "every expert is applied to every token: a token gets only its own modality's expert (plus the shared one)":
            torch.einsum("mod,bld->blo", weights, tokens) + tokens @ shared.T,
    }
    _compare(got, expected, case, mistakes, axes=" (B, L, d_out)")
    return "matches alignlib.ssm.modality_mamba.ExpertLinear with deterministic routing"


@_exercise
def check_load_balancing_loss(answer) -> str:
    """``load_balancing_loss(probabilities (B, L, M)) -> float`` against the loss
    :class:`alignlib.ssm.modality_mamba.Router` returns with those gate probabilities."""
    from alignlib.ssm.modality_mamba import Router

    generator = _generator(14)
    router = Router(6, 3).double()
    with torch.no_grad():
        router.gate.weight.copy_(2 * torch.randn(3, 6, generator=generator, dtype=torch.float64))
        _, expected = router(torch.randn(2, 10, 6, generator=generator, dtype=torch.float64))
    probabilities = router.last_probabilities
    case = "20 tokens, 3 experts"
    got = _number(_call(answer, case, probabilities), case)
    experts = probabilities.shape[-1]
    mean_probability = probabilities.flatten(0, 1).mean(0)
    mistakes = {
        "missing the factor M (the number of experts): a uniform load should give 1": expected.item() / experts,
        "f_m is the share of tokens whose first choice is m (a count of argmaxes), not the mean probability":
            experts * mean_probability.pow(2).sum().item(),
    }
    _compare_number(got, expected.item(), case, mistakes)
    return "matches the load-balancing loss of alignlib.ssm.modality_mamba.Router"


@_exercise
def check_blowup_coupling(answer) -> str:
    """``blowup_coupling(a (M,), delta) -> c``: at coupling ``c`` the summed state of M scalar chains
    with decay rates ``a`` and step ``delta`` must neither grow nor decay, measured with
    :func:`alignlib.ssm.coupled.coupled_scan_reference` after a pulse."""
    from alignlib.ssm.coupled import coupled_scan_reference

    for case, (rates, delta) in {"a = (-0.5, -1, -2), delta 0.1": ((-0.5, -1.0, -2.0), 0.1),
                                 "a = (-1, -3), delta 0.5": ((-1.0, -3.0), 0.5)}.items():
        a = torch.tensor(rates, dtype=torch.float64)
        got = _number(_call(answer, case, a, delta), case)
        chains, length = len(rates), 6
        pulse = torch.zeros(chains, 1, 1, length, dtype=torch.float64)
        pulse[0, ..., 0] = 1.0
        ones = torch.ones(chains, 1, 1, length, dtype=torch.float64)
        _, states = coupled_scan_reference(pulse, delta * ones, a[:, None, None], ones, ones, return_states=True,
                                           coupling=got)
        summed = states.sum(0).flatten()  # S_t, (L,)
        growth = (summed[-1] / summed[-2]).item()
        if abs(growth - 1) < 1e-9:
            continue
        abar = torch.exp(delta * a)
        mistakes = {
            "that is 1/M, the mean coupling the layer uses; the threshold depends on delta and a": 1 / chains,
            "inverted: the summed state is multiplied by c sum_m A_bar^m per step": abar.sum().item(),
            "A_bar^m = e^{delta a_m}: the rates are multiplied by the step delta": 1 / torch.exp(a).sum().item(),
        }
        for hint, wrong in mistakes.items():
            if math.isclose(got, wrong, rel_tol=1e-9):
                raise Mismatch(f"{case}: {hint}")
        trend = "grows" if growth > 1 else "decays"
        raise Mismatch(f"{case}: at coupling {got:.4g} the summed state is multiplied by {growth:.4f} per step: it {trend}")
    return "at your coupling the summed state neither grows nor decays, in both cases"


@_exercise
def check_modality_information_bits(answer) -> str:
    """``modality_information_bits(modality, expert) -> float``: ``I(modality; expert)`` in bits
    against scikit-learn's ``mutual_info_score`` (nats) divided by ``ln 2``."""
    from sklearn.metrics import mutual_info_score

    generator = _generator(15)
    modality = torch.arange(3).repeat_interleave(40)
    noisy = torch.where(torch.rand(120, generator=generator) < 0.7, modality, torch.randint(0, 3, (120,), generator=generator))
    cases = {"an expert that mostly follows the modality": (modality, noisy),
             "two experts, four unbalanced modalities": (torch.randint(0, 4, (90,), generator=generator).sort().values,
                                                         torch.randint(0, 2, (90,), generator=generator))}
    for case, (labels, expert) in cases.items():
        got = _number(_call(answer, case, labels, expert), case)
        nats = mutual_info_score(labels.numpy(), expert.numpy())
        counts = torch.bincount(labels).double() / len(labels)
        mistakes = {"in nats: divide by ln 2 for bits": nats,
                    "that is the entropy of the modality, the most the expert could tell about it":
                        -torch.special.xlogy(counts, counts).sum().item() / math.log(2)}
        _compare_number(got, nats / math.log(2), case, mistakes, atol=1e-12)
    return "matches scikit-learn's mutual_info_score / ln 2 in two cases"


# ---------------------------------------------------------------------------------------------
# 05 · data

@_exercise
def check_proportional_guess(answer) -> str:
    """``proportional_guess(n_frames, n_words) -> (n_frames,)`` word indices against the argmax of
    :func:`alignlib.align.ot.proportional_plan`."""
    from alignlib.align import ot

    for case, (frames, words) in {"10 frames, 4 words": (10, 4), "13 frames, 5 words": (13, 5),
                                  "7 frames, 7 words": (7, 7), "3 frames, 8 words": (3, 8)}.items():
        got = _call(answer, case, frames, words)
        plan = ot.proportional_plan(torch.ones(1, frames, 1), torch.ones(1, words, 1))[0]
        t = torch.arange(frames, dtype=torch.float64)
        mistakes = {
            "rounded to the nearest word: the guess takes the floor of t W / n": torch.round(t * words / frames),
            "stretched from the first to the last word: the guess cuts the frames into W equal runs, floor(t W / n)":
                torch.floor(t * (words - 1) / max(frames - 1, 1)),
        }
        _compare(got, plan.argmax(1).double(), case, mistakes, axes=" (n_frames,)")
    return "matches alignlib.align.ot.proportional_plan in four cases"


@_exercise
def check_recovery_accuracy(answer) -> str:
    """``recovery_accuracy(plan (B, T_m, T_n), truth (B, T_m), mask (B, T_m)) -> float`` against
    :func:`alignlib.align.ot.correspondence_accuracy`, on a batch with padded frames."""
    from alignlib.align import ot

    generator = _generator(16)
    plan = torch.rand(2, 6, 4, generator=generator, dtype=torch.float64)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    plan[~mask] = 0.0  # padded frames send nothing; their argmax is word 0, their truth 0
    truth = torch.where(mask, plan.argmax(2), 0)
    truth[:, 0] = (truth[:, 0] + 1) % 4  # one miss in each clip: 5 of 6 and 2 of 3 frames recovered
    case = "2 clips of 6 and 3 real frames, 4 words"
    got = _number(_call(answer, case, plan, truth, mask), case)
    hits = plan.argmax(2) == truth
    mistakes = {
        "the padded frames count: score only the real frames (mask)": hits.double().mean().item(),
        "averaged per clip, then over clips: the share is over all real frames pooled":
            np.mean([hits[b][mask[b]].double().mean().item() for b in range(2)]),
    }
    _compare_number(got, ot.correspondence_accuracy(plan, truth, mask), case, mistakes)
    return "matches alignlib.align.ot.correspondence_accuracy on a padded batch"


@_exercise
def check_expected_missing_share(answer) -> str:
    """``expected_missing_share(rate, n_modalities) -> float``: the share of modality slots dropped
    by :func:`alignlib.data.missing_modality_mask`, against its empirical share over 200 000
    samples (within 4 standard errors)."""
    from alignlib.data import missing_modality_mask

    samples = 200_000
    for case, (rate, modalities) in {"r = 0.3, M = 3": (0.3, 3), "r = 0.7, M = 3": (0.7, 3),
                                     "r = 0.5, M = 2": (0.5, 2)}.items():
        got = _number(_call(answer, case, rate, modalities), case)
        share = float((~missing_modality_mask(samples, rate, modalities, seed=0)).mean())
        tolerance = 4 * math.sqrt(share * (1 - share) / (samples * modalities))
        if abs(got - share) <= tolerance:
            continue
        mistakes = {"that is the rate before the rule 'at least one kept': a clip that drew all M as missing gets "
                    "one back": rate,
                    "a clip that lost all M gets only one modality back, one of its M slots, not all of them":
                        rate - rate**modalities}
        for hint, wrong in mistakes.items():
            if math.isclose(got, wrong, rel_tol=1e-9):
                raise Mismatch(f"{case}: {hint}")
        raise Mismatch(f"{case}: your share {got:.4f} is off by {got - share:+.4f}; the mask's own is known to "
                       f"+-{tolerance:.4f}")
    return "agrees with missing_modality_mask's empirical share in three cases"


# ---------------------------------------------------------------------------------------------
# Predictions about trained models: True or False, tested by a measurement the notebook makes.

def _prediction(prediction, holds: bool, measured: str, why: str = "") -> str:
    """Compare a True/False prediction with what the measurement says (``holds``)."""
    if prediction is None:
        raise Unanswered
    if not isinstance(prediction, (bool, np.bool_)):
        raise Mismatch(f"a prediction is True or False, got {prediction!r}")
    if bool(prediction) != holds:
        raise Mismatch(f"the measurement disagrees: {measured}" + (f". {why}" if why else ""))
    return f"the measurement agrees: {measured}"


# ---------------------------------------------------------------------------------------------
# 06 · training

@_exercise
def check_mult_acc_7(answer) -> str:
    """``mult_acc_7(pred (N,), truth (N,)) -> float`` against ``Mult_acc_7`` of
    :func:`alignlib.metrics.msa_metrics` (MMSA: clip to [-3, 3], round half to even, compare)."""
    from alignlib.metrics import msa_metrics

    truth = torch.tensor([-3.0, -2.6, -0.4, 0.0, 0.5, 1.5, 2.4, 3.0, 2.5, -1.2, 1.8, 0.6], dtype=torch.float64)
    pred = torch.tensor([-4.2, -2.4, -0.6, 0.4, 0.6, 2.5, 3.6, 2.7, 2.5, -0.5, 1.2, 0.9], dtype=torch.float64)
    case = "12 clips, some predictions beyond [-3, 3] and some on a half"
    got = _number(_call(answer, case, pred, truth), case)
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
    _compare_number(got, msa_metrics(p, t)["Mult_acc_7"], case, mistakes)
    return "matches alignlib.metrics (MMSA's Mult_acc_7)"


@_exercise
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
        got = _call(answer, case, list(history), window, 0.01)
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


@_exercise
def check_oracle_survives_shuffled_plan(prediction, shuffled_mae: float, oracle_mae: float,
                                        set_level_mae: float) -> str:
    """A prediction (True or False): the model trained with the true plan, given the shuffled plan
    at test time, stays below the set_level reference line. Tested by the notebook's measurement."""
    holds = shuffled_mae < set_level_mae
    measured = (f"with the shuffled plan its test MAE is {shuffled_mae:.3f} (with the true plan {oracle_mae:.3f}; "
                f"set_level {set_level_mae:.3f})")
    why = ("" if holds else "It learned to read each word's aligned frames; with the frames scattered, "
           "the cues it reads sit on the wrong words")
    return _prediction(prediction, holds, measured, why)


# ---------------------------------------------------------------------------------------------
# 07 · inside trained models

@_exercise
def check_state_spread(answer) -> str:
    """``state_spread(states (B, T, d), mask (B, T)) -> float`` against
    :func:`alignlib.analysis.state_spread` on a padded batch."""
    from alignlib.analysis import state_spread

    generator = _generator(21)
    states = torch.randn(3, 7, 5, generator=generator, dtype=torch.float64) + 0.5
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3, [False, True, True, False, True, True, False]])
    states[~mask] = 50 * torch.randn(int((~mask).sum()), 5, generator=generator, dtype=torch.float64)
    case = "3 clips of 7, 4 and 4 real tokens (padding anywhere), width 5"
    got = _number(_call(answer, case, states, mask), case)
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
    _compare_number(got, state_spread(states, mask), case, mistakes, rtol=1e-6)
    return "matches alignlib.analysis.state_spread on a padded batch"


@_exercise
def check_clip_accuracy_interval(answer) -> str:
    """``clip_accuracy_interval(guess (B, T), truth (B, T), mask (B, T)) -> (mean, low, high)``:
    the mean of per-clip accuracies with its 95 % Student-t interval, against
    :func:`alignlib.analysis.per_clip_accuracy` and :func:`alignlib.experiments.stats.mean_ci`."""
    from scipy import stats as scipy_stats

    from alignlib.analysis import per_clip_accuracy
    from alignlib.experiments.stats import mean_ci

    generator = _generator(22)
    truth = torch.randint(0, 5, (6, 9), generator=generator)
    lengths = torch.tensor([9, 7, 5, 9, 6, 8])
    mask = torch.arange(9)[None] < lengths[:, None]
    guess = torch.where(torch.rand(6, 9, generator=generator) < torch.linspace(0.2, 0.9, 6)[:, None], truth, 5)
    guess[~mask] = truth[~mask]  # padding "right": only an answer that ignores the mask counts it
    case = "6 clips of 5 to 9 real frames"
    got = _tensor(_call(answer, case, guess, truth, mask), case).flatten()
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
    _compare(got, torch.tensor([mean, low, high]), case, mistakes, axes=" (mean, low, high)")
    return "matches per_clip_accuracy with stats.mean_ci (Student's t)"


@_exercise
def check_order_matters_to_alignmamba2(prediction, change: float) -> str:
    """A prediction (True or False): the trained AlignMamba-2's test MAE changes by more than 0.01
    when every clip's audio and video frames are reversed in time. Tested by the notebook's ``change``."""
    holds = abs(change) > 0.01
    why = ("" if holds else "The scan reads its tokens in order, but what the model learned hardly depends on it: "
           "its losses compare sets, and its answer rests on cues that a bag of frames holds (section 2 found no "
           "frame on its word)")
    return _prediction(prediction, holds, f"reversing the frames changes the test MAE by {change:+.4f}", why)


# ---------------------------------------------------------------------------------------------
# 08 · the papers' experiments

@_exercise
def check_mean_interval(answer) -> str:
    """``mean_interval(values (n,)) -> (mean, low, high)``: the 95 % Student-t interval, against
    :func:`alignlib.experiments.stats.mean_ci` and SciPy's ``t.interval``."""
    from scipy import stats as scipy_stats

    for case, values in {"3 seeds": [0.91, 0.88, 0.95], "5 seeds": [1.02, 0.97, 1.10, 0.99, 1.04]}.items():
        x = np.asarray(values)
        got = _tensor(_call(answer, case, torch.tensor(values, dtype=torch.float64)), case).flatten()
        if got.numel() != 3:
            raise Mismatch(f"{case}: expected three numbers (mean, low, high), got {got.numel()}")
        scale = x.std(ddof=1) / math.sqrt(x.size)
        low, high = scipy_stats.t.interval(0.95, x.size - 1, loc=x.mean(), scale=scale)
        mean = x.mean()
        mistakes = {
            f"a normal interval (1.96): with {x.size} values the interval uses Student's t with {x.size - 1} "
            "degrees of freedom": torch.tensor([mean, mean - 1.96 * scale, mean + 1.96 * scale]),
            "the standard deviation divides by n: the sample standard deviation divides by n - 1 (ddof=1)":
                torch.tensor([mean, *scipy_stats.t.interval(0.95, x.size - 1, loc=mean, scale=x.std() / math.sqrt(x.size))]),
            f"t with n = {x.size} degrees of freedom: an interval for a mean has n - 1":
                torch.tensor([mean, *scipy_stats.t.interval(0.95, x.size, loc=mean, scale=scale)]),
            "the interval of one value (mean ± t s), not of the mean: divide s by sqrt(n)":
                torch.tensor([mean, *scipy_stats.t.interval(0.95, x.size - 1, loc=mean, scale=x.std(ddof=1))]),
        }
        _compare(got, torch.tensor([mean, low, high]), case, mistakes, axes=" (mean, low, high)")
    return "matches stats.mean_ci and scipy.stats.t.interval"


@_exercise
def check_paired_interval(answer) -> str:
    """``paired_interval(a (n,), b (n,)) -> (mean, low, high)``: the 95 % interval of the mean
    difference ``a - b`` over paired seeds, against SciPy's ``ttest_rel(a, b).confidence_interval()``."""
    from scipy import stats as scipy_stats

    a = np.array([0.912, 0.934, 0.905, 0.921])  # one variant, seeds 0-3
    b = np.array([0.930, 0.951, 0.917, 0.940])  # another, the same seeds (the seed moves both)
    case = "4 paired seeds"
    got = _tensor(_call(answer, case, torch.tensor(a), torch.tensor(b)), case).flatten()
    if got.numel() != 3:
        raise Mismatch(f"{case}: expected three numbers (mean, low, high), got {got.numel()}")
    interval = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
    unpaired = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    mistakes = {
        "unpaired (two independent samples): pair each seed's two runs and take the interval of the differences":
            torch.tensor([(a - b).mean(), unpaired.low, unpaired.high]),
        "the sign: the difference is a - b": -torch.tensor([(a - b).mean(), interval.high, interval.low]),
    }
    _compare(got, torch.tensor([(a - b).mean(), interval.low, interval.high]), case, mistakes, axes=" (mean, low, high)")
    return "matches scipy.stats.ttest_rel(a, b).confidence_interval()"


# ---------------------------------------------------------------------------------------------
# 09 · EMMA

@_exercise
def check_patchify(answer) -> str:
    """``patchify(images (B, H, W), patch_size) -> (B, P, patch_size^2)`` against
    :func:`alignlib.models.emma.patchify` (raster order of patches and of pixels inside them)."""
    from alignlib.models import emma

    generator = _generator(17)
    for case, (shape, size) in {"2 images of 8 x 12, patches of 4": ((2, 8, 12), 4),
                                "1 image of 16 x 16, patches of 8": ((1, 16, 16), 8)}.items():
        images = torch.rand(shape, generator=generator, dtype=torch.float64)
        got = _call(answer, case, images, size)
        expected = emma.patchify(images, size)
        batch, height, width = shape
        grid = images.reshape(batch, height // size, size, width // size, size)
        mistakes = {
            "a plain reshape: each 'patch' is a run of consecutive pixels along image rows, not a square":
                images.reshape(batch, -1, size * size),
            "the patches are in column order: raster order runs along a row of patches first":
                grid.permute(0, 3, 1, 2, 4).reshape(batch, -1, size * size),
            "the pixels inside each patch are transposed: raster order inside a patch runs along its rows":
                grid.permute(0, 1, 3, 4, 2).reshape(batch, -1, size * size),
        }
        _compare(got, expected, case, mistakes, axes=" (B, P, patch_size^2)")
    return "matches alignlib.models.emma.patchify on square and oblong images"


@_exercise
def check_multi_scale_fusion(answer) -> str:
    """``multi_scale_fusion(states [L x (B, P, d)], weight (d, L d), bias (d,)) -> (B, P, d)``
    against :class:`alignlib.models.emma.MultiScaleFusion` with that projection."""
    from alignlib.models.emma import MultiScaleFusion

    generator = _generator(18)
    batch, patches, width, sources = 2, 4, 6, 3
    fusion = MultiScaleFusion(width, sources).double()
    with torch.no_grad():
        fusion.proj.weight.copy_(torch.randn(width, sources * width, generator=generator, dtype=torch.float64))
        fusion.proj.bias.copy_(torch.randn(width, generator=generator, dtype=torch.float64))
    states = [scale * torch.randn(batch, patches, width, generator=generator, dtype=torch.float64) + offset
              for scale, offset in ((0.5, 0.0), (1.0, 0.5), (10.0, -2.0))]
    weight, bias = fusion.proj.weight.detach(), fusion.proj.bias.detach()
    case = f"{sources} states of shape ({batch}, {patches}, {width})"
    got = _call(answer, case, states, weight, bias)
    with torch.no_grad():
        expected = fusion(states)

    def fuse(normalise):
        return torch.cat([normalise(s) for s in states], dim=-1) @ weight.T + bias

    def centred(s):
        s = s - s.mean(-1, keepdim=True)
        return s / s.pow(2).mean(-1, keepdim=True).sqrt()

    mistakes = {
        "the states are not normalised: RMSNorm divides each token's state by its root mean square": fuse(lambda s: s),
        "the mean is subtracted (a LayerNorm): RMSNorm only divides by the root mean square, it does not centre":
            fuse(centred),
        "normalised over the wrong axis: RMSNorm takes the root mean square over each token's d features":
            fuse(lambda s: s / s.pow(2).mean(-2, keepdim=True).sqrt()),
    }
    _compare(got, expected, case, mistakes, axes=" (B, P, d)", rtol=1e-4)  # any small eps of the norm passes
    return "matches alignlib.models.emma.MultiScaleFusion"


@_exercise
def check_probe_r2(answer) -> str:
    """``probe_r2(train_states (N, d), train_pixels (N, k), test_states, test_pixels) -> float``: a
    least-squares probe with an intercept, scored by pooled R^2 on the test set, against
    scikit-learn's ``LinearRegression`` and ``r2_score(..., multioutput="variance_weighted")``."""
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    generator = _generator(19)
    width, pixels = 6, 5
    mixing = torch.randn(width, pixels, generator=generator, dtype=torch.float64) * torch.tensor([0.2, 0.5, 1.0, 2.0, 4.0])

    def draw(n):
        states = torch.randn(n, width, generator=generator, dtype=torch.float64) + 1.0
        return states, states @ mixing + 3.0 + torch.randn(n, pixels, generator=generator, dtype=torch.float64)

    (train_x, train_y), (test_x, test_y) = draw(300), draw(200)
    case = "300 training and 200 test tokens, 6 features, 5 pixels"
    got = _number(_call(answer, case, train_x, train_y, test_x, test_y), case)
    fitted = LinearRegression().fit(train_x.numpy(), train_y.numpy())
    predicted = fitted.predict(test_x.numpy())
    no_intercept = LinearRegression(fit_intercept=False).fit(train_x.numpy(), train_y.numpy()).predict(test_x.numpy())
    mistakes = {
        "no intercept: the pixels have a mean the states do not explain; fit a bias too (or centre both sides)":
            r2_score(test_y.numpy(), no_intercept, multioutput="variance_weighted"),
        "R^2 averaged over pixels with equal weights: pool the squared errors over all pixels (variance_weighted)":
            r2_score(test_y.numpy(), predicted, multioutput="uniform_average"),
        "scored on the training tokens: score the probe on the held-out ones":
            r2_score(train_y.numpy(), fitted.predict(train_x.numpy()), multioutput="variance_weighted"),
    }
    _compare_number(got, r2_score(test_y.numpy(), predicted, multioutput="variance_weighted"), case, mistakes)
    return "matches scikit-learn's LinearRegression scored by r2_score(multioutput='variance_weighted')"


@_exercise
def check_answers_unchanged_by_padding(prediction, gap: float) -> str:
    """A prediction (True or False): the trained model's answers do not change when every question
    gets more padding. Tested by the notebook's measurement ``gap``, the largest change of a logit
    (unchanged below 1e-5)."""
    unchanged = gap < 1e-5
    why = ("Causality is a property of the architecture, not of the weights: the answer position reads only "
           "earlier positions, and the padding comes after it" if unchanged else "")
    return _prediction(prediction, unchanged, f"the largest change of a logit is {gap:.2e}", why)


# ---------------------------------------------------------------------------------------------
# 10 · learned alignment

def _monotone_cases():
    generator = _generator(31)
    return {f"{frames} frames, {words} words": torch.randn(frames, words, generator=generator, dtype=torch.float64)
            for frames, words in ((6, 3), (5, 5), (8, 1), (9, 4))}


def _paths(frames: int, words: int):
    """Every monotone path of ``frames`` frames through ``words`` words (brute force)."""
    from itertools import combinations

    for cuts in combinations(range(1, frames), words - 1):  # the frames where the next word starts
        bounds = (0, *cuts, frames)
        yield [w for w in range(words) for _ in range(bounds[w], bounds[w + 1])]


@_exercise
def check_log_partition_loop(answer) -> str:
    """``log_partition_loop(scores (T, W)) -> float``: the forward recursion's ``log Z`` of one clip,
    against :func:`alignlib.align.monotone.log_partition` and a sum over every path."""
    from alignlib.align import monotone

    for case, scores in _monotone_cases().items():
        got = _number(_call(answer, case, scores), case)
        frames, words = scores.shape
        paths = torch.tensor(list(_paths(frames, words)))
        totals = scores[torch.arange(frames), paths].sum(1)
        mistakes = {
            "the best path's score (a max): log Z sums exp(score) over every path (logsumexp)": totals.max().item(),
        }
        if words > 1:
            alpha = scores[0].clone()
            alpha[1:] = -math.inf
            for i in range(1, frames):
                alpha = scores[i] + torch.logaddexp(alpha, torch.cat([alpha.new_full((1,), -math.inf), alpha[:-1]]))
            mistakes["the path may end on any word: every path ends on the last word (take alpha[T-1, W-1])"] = \
                torch.logsumexp(alpha, 0).item()
            mistakes["the path starts anywhere: every path starts on the first word"] = _any_start(scores)
        _compare_number(got, torch.logsumexp(totals, 0).item(), case, mistakes, rtol=1e-9, atol=1e-9)
        assert math.isclose(monotone.log_partition(scores[None]).item(), torch.logsumexp(totals, 0).item(), rel_tol=1e-9)
    return "matches monotone.log_partition and the sum over every path, in four clips"


def _any_start(scores):
    alpha = scores[0].clone()
    for i in range(1, len(scores)):
        alpha = scores[i] + torch.logaddexp(alpha, torch.cat([alpha.new_full((1,), -math.inf), alpha[:-1]]))
    return alpha[-1].item()


@_exercise
def check_best_path_loop(answer) -> str:
    """``best_path_loop(scores (T, W)) -> (T,)`` word indices of the highest-scoring monotone path
    (Viterbi), against :func:`alignlib.align.monotone.best_path` and the best of every path."""
    from alignlib.align import monotone

    for case, scores in _monotone_cases().items():
        got = _call(answer, case, scores)
        expected = monotone.best_path(scores[None])[0]
        frames, words = scores.shape
        paths = torch.tensor(list(_paths(frames, words)))
        assert torch.equal(paths[scores[torch.arange(frames), paths].sum(1).argmax()], expected)
        path = _tensor(got, case)
        if torch.equal(path, scores.argmax(1).double()) and not torch.equal(path, expected.double()):
            raise Mismatch(f"{case}: each frame's best word on its own: the path must run forward through every "
                           "word in order")
        if path.shape == expected.shape and (path.diff() < 0).any():
            raise Mismatch(f"{case}: your path goes back to an earlier word: a monotone path never does")
        if path.shape == expected.shape and (path.diff() > 1).any():
            raise Mismatch(f"{case}: your path skips a word: each next frame stays on its word or moves to the next")
        _compare(got, expected.double(), case, axes=" (T,)")
    return "matches monotone.best_path and the best of every path, in four clips"


@_exercise
def check_word_normalised_scores(answer) -> str:
    """``word_normalised_scores(similarity (B, T, W), frame_mask (B, T), word_mask (B, W)) -> (B, T, W)``:
    ``log p(frame | word)``, against :func:`alignlib.align.monotone.emission_scores` on the real entries."""
    from alignlib.align import monotone

    generator = _generator(32)
    similarity = torch.randn(2, 6, 4, generator=generator, dtype=torch.float64)
    frame_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    word_mask = torch.tensor([[True] * 4, [True] * 3 + [False]])
    case = "2 clips, the second with 4 of 6 frames and 3 of 4 words real"
    got = _tensor(_call(answer, case, similarity, frame_mask, word_mask), case)
    real = frame_mask[:, :, None] & word_mask[:, None, :]
    expected = monotone.emission_scores(similarity, frame_mask, word_mask, normalise="words")
    if got.shape == expected.shape:  # padded entries are free: only the real ones are compared
        got = torch.where(real, got, expected)
    mistakes = {
        "wrong axis: that is log p(word | frame), normalised over each frame's words (the hub word's choice); "
        "normalise over each word's frames": torch.where(real, monotone.emission_scores(
            similarity, frame_mask, word_mask, normalise="frames"), expected),
        "the padded frames count: the softmax runs over each word's real frames (mask)":
            torch.where(real, similarity.log_softmax(1), expected),
        "not normalised: log p(frame | word) is the similarity minus each word's logsumexp over its frames":
            torch.where(real, similarity, expected),
    }
    _compare(got, expected, case, mistakes, axes=" (B, T, W)")
    return "matches monotone.emission_scores(normalise='words') on every real entry"


@_exercise
def check_learned_plan_survives_reversal(prediction, reversed_accuracy: float, accuracy: float) -> str:
    """A prediction (True or False): the trained learned plan still puts more than half of the audio
    frames on their true word when every clip's frames are reversed in time. Tested by the notebook."""
    holds = reversed_accuracy > 0.5
    measured = (f"with the frames reversed the learned plan finds {reversed_accuracy:.2f} of the frames' words "
                f"(in order: {accuracy:.2f})")
    why = ("" if holds else "The monotone plan assumes the first frame sits on the first word: reversed, the "
           "words are met last to first, and only the middle of a clip can still land on its word")
    return _prediction(prediction, holds, measured, why)
