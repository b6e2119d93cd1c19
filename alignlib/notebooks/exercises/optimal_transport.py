"""The checks of notebook 01 · optimal transport."""
from __future__ import annotations

import math
import warnings

import torch

from alignlib.notebooks.exercises.core import Mismatch, as_number, call_answer, compare, exercise, seeded


@exercise
def check_relaxed_plan(answer) -> str:
    """``relaxed_plan(cost (B, T_m, T_n), x_mask (B, T_m), y_mask (B, T_n)) -> (B, T_m, T_n)`` against
    :func:`alignlib.align.ot.relaxed_plan` on two padded batches."""
    from alignlib.align import ot

    cases = {"a batch of two 12 x 8 pairs, the second with 9 x 6 real tokens": (12, 8, 9, 6, 1),
             "a batch of two 5 x 9 pairs, the second with 4 x 7 real tokens": (5, 9, 4, 7, 2)}
    for case, (n_source, n_target, real_source, real_target, seed) in cases.items():
        x, y = (torch.randn(2, n, 6, generator=seeded(seed), dtype=torch.float64) for n in (n_source, n_target))
        x_mask, y_mask = torch.ones(2, n_source, dtype=torch.bool), torch.ones(2, n_target, dtype=torch.bool)
        x_mask[1, real_source:], y_mask[1, real_target:] = False, False
        cost = ot.cosine_cost(x, y)
        got = call_answer(answer, case, cost, x_mask, y_mask)
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
        compare(got, expected, case, mistakes, axes=" (B, T_m, T_n)", explain=explain)
    return "matches alignlib.align.ot.relaxed_plan on two padded batches"


@exercise
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
        got = call_answer(answer, case, plan[0], source[0])
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
        compare(got, expected, case, mistakes, axes=" (T_n, d)", explain=explain)
    return "matches alignlib.align.ot.transport(plan, x, barycentric=True) on a relaxed and an entropic plan"


def _row_entropy(source: torch.Tensor, target: torch.Tensor, blur: float) -> float:
    """Entropy per source token of the entropic plan, ``H(M) - H(a) = -sum M log(T_m M)``, in nats."""
    from alignlib.align import ot

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # at small blurs the polish may stop at its iteration cap
        plan = ot.entropic_plan(source[None].double(), target[None].double(), blur=blur)[0]
    return -torch.special.xlogy(plan, plan * plan.shape[0]).sum().item()


@exercise
def check_entropy_halving_blur(answer, source: torch.Tensor, target: torch.Tensor) -> str:
    """``entropy_halving_blur(source (T_m, d), target (T_n, d)) -> blur``: at the answer's blur the
    entropic plan's entropy per source token must be ``log(T_n) / 2`` within 1 %, on the notebook's
    pair and on a 16 x 6 pair of the check's own."""
    from alignlib.data.warped_pairs import warped_pair

    other = warped_pair(16, 6, dim=6, seed=5)
    for case, (x, y) in {"the notebook's pair": (source, target),
                         "a 16 x 6 pair": (other.source[0], other.target[0])}.items():
        blur = as_number(call_answer(answer, case, x, y), case)
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
