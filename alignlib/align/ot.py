"""Local cross-modal alignment with Optimal Transport.

Token sequences of two modalities, ``x`` of shape ``(B, Tm, d)`` (audio or video) and ``y`` of
shape ``(B, Tn, d)`` (language, the anchor), are seen as uniform discrete distributions over
their real (unpadded) tokens. A transport plan ``P`` of shape ``(B, Tm, Tn)`` says how much mass
source token ``i`` sends to target token ``j``.

* :func:`plan` -- every plan behind one dispatcher, ``plan(x, y, x_mask, y_mask, method=..., blur=BLUR)``,
  over the methods of :data:`PLAN_METHODS`; :func:`register_plan` adds a method:

  - ``exact`` (:func:`exact_plan`) -- exact OT with POT's network simplex: the oracle;
  - ``entropic`` (:func:`entropic_plan`) -- the entropic plan rebuilt from GeomLoss's dual potentials
    and polished by log-domain Sinkhorn iterations until its marginals are met;
  - ``relaxed`` (:func:`relaxed_plan`) -- AlignMamba-1's closed form: drop the column constraint and
    every source token sends its mass ``1/Tm`` to its cheapest target token;
  - ``proportional`` (:func:`proportional_plan`) -- no features: source token ``t`` of ``n`` goes to
    target ``floor(t W / n)`` of ``W``, the floor a plan has to beat;
  - ``time_prior`` (:func:`time_prior_plan`) -- the entropic plan of the cosine cost plus a cost on
    the distance between the tokens' relative positions in time (order-preserving transport);
  - ``oracle`` and ``shuffled`` (:func:`oracle_plan`, :func:`shuffled_plan`) -- controls from a
    correspondence table (``truth=``): the true plan, and the true plan with its words rotated;
  - ``monotone`` (:func:`alignlib.align.monotone.monotone_plan`) -- frames that run forward in time
    through the words (registered by :mod:`alignlib.align.monotone`).
* :func:`cosine_cost` -- the ground cost ``C_ij = 1 - cos(x_i, y_j)`` (AlignMamba-2, Eq. 4).
* :func:`transport` -- the aligned sequence ``P^T X`` of shape ``(B, Tn, d)``.
* :func:`ot_distance` -- the entropic OT loss of AlignMamba-2 (Eq. 5), computed by GeomLoss.

GeomLoss convention: the entropic regularisation is ``epsilon = blur**2``; the cosine cost lies
in ``[0, 2]``, so the annealing schedule starts at the diameter ``2``. :data:`BLUR` is the blur of
AlignMamba-2's OT loss (GeomLoss's default) and every default blur in alignlib.
"""
from __future__ import annotations

import ctypes
import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from alignlib.common.checks import check_mask, check_pair, check_positive
from alignlib.common.sequences import pack_order
from alignlib.data.mmsa import NO_WORD, PADDING

COSINE_DIAMETER = 2.0
BLUR = 0.05  # the OT loss's blur (AlignMamba-2, GeomLoss's default): epsilon = BLUR**2


@dataclass(frozen=True)
class PlanMethod:
    """A way to compute a plan: ``solve(x, y, x_mask, y_mask, **settings) -> (B, Tm, Tn)``, and the
    names of the keyword ``settings`` it takes (``blur`` among them for an entropic method)."""

    solve: Callable[..., torch.Tensor]
    settings: tuple[str, ...] = ()


PLAN_METHODS: dict[str, PlanMethod] = {}


def register_plan(name: str, *, settings: tuple[str, ...] = ()):
    """Decorator adding a solver ``(x, y, x_mask=None, y_mask=None, **settings) -> (B, Tm, Tn)`` to
    :data:`PLAN_METHODS` as the method ``name``; ``settings`` names its keyword arguments."""
    def register(solve):
        if name in PLAN_METHODS:
            raise ValueError(f"plan method {name!r} is already registered")
        PLAN_METHODS[name] = PlanMethod(solve, tuple(settings))
        return solve
    return register


def plan(
    x: torch.Tensor,
    y: torch.Tensor,
    x_mask: torch.Tensor | None = None,
    y_mask: torch.Tensor | None = None,
    *,
    method: str = "entropic",
    blur: float = BLUR,
    **settings,
) -> torch.Tensor:
    """The transport plan ``(B, Tm, Tn)`` of ``method`` (a name in :data:`PLAN_METHODS`) from
    ``x (B, Tm, d)`` onto ``y (B, Tn, d)``, with padding masks ``(B, Tm)``, ``(B, Tn)``.

    ``blur`` and the other ``settings`` (``entropic``: ``tol``, ``max_iter``) go to the methods that
    take them and are ignored by the others, so one call serves every method; a setting that no
    method takes is an error.
    """
    if method not in PLAN_METHODS:
        raise ValueError(f"method: unknown {method!r}; choose one of {tuple(PLAN_METHODS)}")
    unknown = set(settings) - {name for known in PLAN_METHODS.values() for name in known.settings}
    if unknown:
        raise ValueError(f"unknown plan setting(s) {sorted(unknown)}")
    chosen = PLAN_METHODS[method]
    given = {"blur": blur, **settings}
    return chosen.solve(x, y, x_mask, y_mask, **{name: value for name, value in given.items() if name in chosen.settings})


def cosine_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cosine distance ``1 - <x_i, y_j> / (|x_i| |y_j|)`` between every pair of tokens.

    Args:
        x: ``(B, Tm, d)`` source tokens.
        y: ``(B, Tn, d)`` target tokens.
    Returns:
        ``(B, Tm, Tn)`` costs in ``[0, 2]``; a zero token counts as orthogonal to everything.
    """
    check_pair(x, y)
    return _cosine_cost(x, y)


def _cosine_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # Normalising first keeps features scaled by 1e4 (or 1e-4) finite and exact.
    x_unit = torch.nn.functional.normalize(x, dim=-1)
    y_unit = torch.nn.functional.normalize(y, dim=-1)
    return (1.0 - x_unit @ y_unit.transpose(1, 2)).clamp(0.0, COSINE_DIAMETER)


def uniform_weights(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Uniform probability weights ``(B, T)`` over the real tokens of a padding mask ``(B, T)``."""
    weights = mask.to(dtype)
    return weights / weights.sum(dim=1, keepdim=True)


def _prepare(x, y, x_mask, y_mask):
    check_pair(x, y)
    x_mask = check_mask(x_mask, x, "x_mask")
    y_mask = check_mask(y_mask, y, "y_mask")
    return _cosine_cost(x, y), uniform_weights(x_mask, x.dtype), uniform_weights(y_mask, y.dtype)


@register_plan("relaxed")
def relaxed_plan(
    x: torch.Tensor,
    y: torch.Tensor,
    x_mask: torch.Tensor | None = None,
    y_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """AlignMamba-1's relaxed transport plan.

    Only the source marginal is kept (``sum_j P_ij = 1/Tm``), so the optimum is in closed form:
    ``P_ij = 1/Tm`` if ``j = argmin_j C_ij`` else ``0``.

    Args:
        x: ``(B, Tm, d)`` source tokens; y: ``(B, Tn, d)`` target tokens.
        x_mask, y_mask: ``(B, Tm)``, ``(B, Tn)`` bool, True for real tokens. Padded sources send
            nothing; padded targets receive nothing.
    Returns:
        ``(B, Tm, Tn)`` plan; each real row has a single non-zero entry.
    """
    cost, a, _ = _prepare(x, y, x_mask, y_mask)
    if y_mask is not None:
        cost = cost.masked_fill(~y_mask[:, None, :], math.inf)
    cheapest = cost.argmin(dim=2, keepdim=True)  # (B, Tm, 1)
    plan = torch.zeros_like(cost)
    return plan.scatter(2, cheapest, a.unsqueeze(2))


def transport(plan: torch.Tensor, x: torch.Tensor, *, barycentric: bool = False) -> torch.Tensor:
    """Move the source tokens onto the target time axis: ``P^T X``.

    Args:
        plan: ``(B, Tm, Tn)`` transport plan; x: ``(B, Tm, d)`` source tokens.
        barycentric: divide each target row by the mass it received, so an aligned token is a
            weighted *average* of source tokens (the paper's ``P^T X`` is a weighted *sum*, with
            total mass 1 spread over ``Tn`` rows). Targets that receive no mass stay zero.
    Returns:
        ``(B, Tn, d)`` aligned sequence.
    """
    if plan.dim() != 3 or x.dim() != 3 or plan.shape[:2] != x.shape[:2]:
        raise ValueError(
            f"plan (B, Tm, Tn) and x (B, Tm, d) disagree: plan {tuple(plan.shape)}, x {tuple(x.shape)}"
        )
    aligned = plan.transpose(1, 2) @ x
    if barycentric:
        received = plan.sum(dim=1).unsqueeze(2)  # (B, Tn, 1)
        # Rows that received nothing are zero; divide them by 1, not by a tiny number, whose
        # reciprocal would overflow in the backward pass and turn 0 * inf into NaN.
        aligned = aligned / torch.where(received > 0, received, torch.ones_like(received))
    return aligned


def plan_cost(plan: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
    """Transport cost ``<P, C>`` per batch item: ``(B, Tm, Tn), (B, Tm, Tn) -> (B,)``."""
    return (plan * cost).sum(dim=(1, 2))


def geomloss_sinkhorn(blur: float, *, scaling: float = 0.5, debias: bool = False, potentials: bool = False,
                      cost: Callable = _cosine_cost, diameter: float = COSINE_DIAMETER):
    """GeomLoss's Sinkhorn solver with this module's conventions: cosine cost (or ``cost(x, y) ->
    (B, Tm, Tn)`` of the largest value ``diameter``), annealing from the diameter down to
    ``epsilon = blur**2``, tensorized backend (no pykeops).

    Call it as ``solver(a, x, b, y)`` with weights ``(B, Tm)``, ``(B, Tn)`` and tokens
    ``(B, Tm, d)``, ``(B, Tn, d)``; it returns losses ``(B,)`` or potentials ``f, g``.
    """
    from geomloss import SamplesLoss

    check_positive(blur, "blur")
    return SamplesLoss("sinkhorn", blur=blur, scaling=scaling, diameter=diameter, cost=cost,
                       debias=debias, potentials=potentials, backend="tensorized")


def ot_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    x_mask: torch.Tensor | None = None,
    y_mask: torch.Tensor | None = None,
    *,
    blur: float = BLUR,
    debias: bool = False,
    scaling: float = 0.5,
) -> torch.Tensor:
    """Entropic OT loss between token sets (AlignMamba-2, Eq. 5), differentiable in ``x`` and ``y``.

    Computed by GeomLoss (tensorized backend, cosine cost, epsilon-scaling from the cost's
    diameter 2 down to ``epsilon = blur**2``). With ``debias=False`` this is
    ``min_P <P, C> + epsilon KL(P | a b^T)``, the paper's objective up to a constant; with
    ``debias=True`` it is the Sinkhorn divergence, which is zero for identical sets.

    Returns:
        ``(B,)`` losses.
    """
    check_pair(x, y)  # GeomLoss computes the cost itself: only the weights here
    a = uniform_weights(check_mask(x_mask, x, "x_mask"), x.dtype)
    b = uniform_weights(check_mask(y_mask, y, "y_mask"), y.dtype)
    loss = geomloss_sinkhorn(blur, scaling=scaling, debias=debias)
    return loss(a, x, b, y)


def sinkhorn_log(
    cost: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    epsilon: float,
    *,
    g: torch.Tensor | None = None,
    tol: float = 1e-5,
    max_iter: int = 2000,
    check_every: int = 10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-domain Sinkhorn iterations for the dual potentials of entropic OT.

    Alternates ``g_j = -eps LSE_i(log a_i + (f_i - C_ij)/eps)`` and
    ``f_i = -eps LSE_j(log b_j + (g_j - C_ij)/eps)``. The row marginals are exact after each
    ``f`` update; every ``check_every`` iterations the column marginals are compared with ``b``,
    and the loop stops once they miss it by less than ``tol`` in L1.

    Convergence is linear and slows down as epsilon shrinks: at ``blur = BLUR`` a plan whose
    source tokens skip some targets can need thousands of iterations. A warning says when
    ``max_iter`` ran out first. On the CPU in float64 the iterations run in C++
    (``alignlib/ssm/kernels/sinkhorn.cpp``, a batch item per thread); elsewhere in PyTorch.

    Args:
        cost: ``(B, Tm, Tn)``; a: ``(B, Tm)``, b: ``(B, Tn)`` probability weights (zeros allowed).
        epsilon: the entropic regularisation.
        g: ``(B, Tn)`` warm start (for example GeomLoss's potential); zeros if None.
        tol: L1 marginal error to stop at.
    Returns:
        ``f (B, Tm), g (B, Tn)`` with plan ``P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)``.
    """
    if check_every < 1:
        raise ValueError(f"check_every must be at least 1, got {check_every}")
    log_a, log_b = a.log(), b.log()  # -inf on padding: those rows/columns get no mass
    g = torch.zeros_like(b) if g is None else g
    # -C / eps once, and its transpose laid out for g's update: each update is then one addition
    # and a log-sum-exp over the last axis.
    kernel = -cost / epsilon
    kernel_t = kernel.transpose(1, 2).contiguous()
    if (library := _compiled_sinkhorn(cost, a, b, g)) is not None:
        steps = _compiled_steps(library, kernel, kernel_t, log_a, log_b, b, g, epsilon)
    else:
        steps = _torch_steps(cost, kernel, kernel_t, log_a, log_b, a, b, g, epsilon)
    f, g, column_error = steps(True, 0)  # f from the initial g, and the first check
    done = 0
    while not column_error < tol and done < max_iter:  # a check every check_every iterations, and after the last (NaN: on to the warning)
        n = min(check_every, max_iter - done)
        f, g, column_error = steps(False, n)
        done += n
    if not column_error < tol:
        warnings.warn(
            f"sinkhorn_log stopped after {max_iter} iterations with marginal error {column_error:.2e} "
            f"(tol {tol:.0e}); a larger blur converges faster",
            RuntimeWarning,
            stacklevel=2,
        )
    return f, g


def _compiled_sinkhorn(cost, a, b, g):
    """The C++ iterations (``alignlib/ssm/kernels/sinkhorn.cpp``) where the cost ``(B, n, m)``, ``a
    (B, n)``, ``b`` and ``g (B, m)`` are all CPU float64 tensors that need no gradient, else None:
    the PyTorch updates (other devices, dtypes or broadcast shapes, gradients, or no compiler: one
    warning)."""
    batch, rows, columns = cost.shape
    shapes = ((cost, cost.shape), (a, (batch, rows)), (b, (batch, columns)), (g, (batch, columns)))
    if any(t.device.type != "cpu" or t.dtype != torch.float64 or t.shape != shape or t.requires_grad
           for t, shape in shapes):
        return None
    from alignlib.ssm import kernels

    return kernels.load("sinkhorn")


def _torch_steps(cost, kernel, kernel_t, log_a, log_b, a, b, g, epsilon):
    """``steps(first, n)`` for :func:`sinkhorn_log` in PyTorch: with ``first``, ``f = update_f(g)``;
    then ``n`` times ``g = update_g(f)``, ``f = update_f(g)``. Returns ``f``, ``g`` and the largest
    L1 error of the plan's column marginals over the batch."""
    def update(rows, log_w, v):
        return -epsilon * torch.logsumexp(rows + (log_w + v / epsilon)[:, None, :], dim=2)

    f = None

    def steps(first: bool, n: int):
        nonlocal f, g
        if first:
            f = update(kernel, log_b, g)
        for _ in range(n):
            g = update(kernel_t, log_a, f)
            f = update(kernel, log_b, g)
        plan = plan_from_potentials(f, g, cost, a, b, epsilon)
        return f, g, (plan.sum(dim=1) - b).abs().sum(dim=1).max().item()

    return steps


def _compiled_steps(library, kernel, kernel_t, log_a, log_b, b, g, epsilon):
    """:func:`_torch_steps` by ``sinkhorn_steps_f64`` of the C++ kernel (float64, in place)."""
    inputs = [t.contiguous() for t in (kernel, kernel_t, log_a, log_b, b)]  # alive through the calls
    f, g = torch.empty_like(inputs[2]), g.clone().contiguous()
    dims = (ctypes.c_int64 * 3)(*kernel.shape)
    library.sinkhorn_steps_f64.restype = ctypes.c_double

    def steps(first: bool, n: int):
        error = library.sinkhorn_steps_f64(*(ctypes.c_void_p(t.data_ptr()) for t in (*inputs, f, g)), dims,
                                           ctypes.c_double(epsilon), ctypes.c_int64(first), ctypes.c_int64(n),
                                           torch.get_num_threads())
        return f, g, error

    return steps


def plan_from_potentials(f, g, cost, a, b, epsilon):
    """Entropic plan ``P_ij = a_i b_j exp((f_i + g_j - C_ij)/eps)``: ``(B, Tm, Tn)``."""
    log_plan = a.log()[:, :, None] + b.log()[:, None, :] + (f[:, :, None] + g[:, None, :] - cost) / epsilon
    return log_plan.exp()


@register_plan("entropic", settings=("blur", "tol", "max_iter"))
def entropic_plan(
    x: torch.Tensor,
    y: torch.Tensor,
    x_mask: torch.Tensor | None = None,
    y_mask: torch.Tensor | None = None,
    *,
    blur: float = BLUR,
    tol: float = 1e-5,
    max_iter: int = 2000,
) -> torch.Tensor:
    """Entropic transport plan ``(B, Tm, Tn)`` with ``epsilon = blur**2`` and cosine cost.

    GeomLoss's epsilon-scaling gives dual potentials after about one iteration at the final
    epsilon; a plan rebuilt from them alone can miss its marginals at small blur. Log-domain
    Sinkhorn iterations started from GeomLoss's ``g`` (:func:`sinkhorn_log`) then bring the column
    marginals within ``tol`` (L1); the row marginals are exact. The iterations run in float64
    whatever the input dtype: at tiny blur, ``(f + g - C) / eps`` is too large for float32.
    """
    cost, a, b = _prepare(x, y, x_mask, y_mask)
    return _polished_plan(cost, a, b, geomloss_sinkhorn(blur, potentials=True), x, y, blur, tol, max_iter)


def _polished_plan(cost, a, b, solver, x, y, blur, tol, max_iter):
    """The entropic plan of ``cost (B, Tm, Tn)``: GeomLoss's ``solver(a, x, b, y)`` warm-starts
    :func:`sinkhorn_log` (float64) at ``epsilon = blur**2``. GeomLoss leaves gradients switched on
    when it returns; the context restores the caller's setting."""
    with torch.set_grad_enabled(torch.is_grad_enabled()):
        _, g = solver(a, x, b, y)
    epsilon = blur**2
    cost, a, b, g = cost.double(), a.double(), b.double(), g.double()
    f, g = sinkhorn_log(cost, a, b, epsilon, g=g, tol=tol, max_iter=max_iter)
    return plan_from_potentials(f, g, cost, a, b, epsilon).to(x.dtype)


def relative_positions(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(B, T)`` the place of each real token in its sequence, ``(rank + 0.5) / n`` in ``(0, 1)``
    (``n`` real tokens, counted in order wherever the padding sits); 0 on padding."""
    rank = mask.long().cumsum(1) - 1
    return torch.where(mask, (rank + 0.5) / mask.sum(1, keepdim=True).clamp_min(1), 0).to(dtype)


def _time_prior_cost(time_weight: float):
    """``cost(x, y)`` for tokens whose last feature is their relative position: the cosine cost of
    the others plus ``time_weight * |s_i - t_j|``."""
    def cost(x, y):
        return _cosine_cost(x[..., :-1], y[..., :-1]) + time_weight * (x[..., -1:] - y[..., -1:].transpose(1, 2)).abs()
    return cost


@register_plan("time_prior", settings=("blur", "time_weight", "tol", "max_iter"))
def time_prior_plan(
    x: torch.Tensor,
    y: torch.Tensor,
    x_mask: torch.Tensor | None = None,
    y_mask: torch.Tensor | None = None,
    *,
    blur: float = BLUR,
    time_weight: float = 1.0,
    tol: float = 1e-5,
    max_iter: int = 2000,
) -> torch.Tensor:
    """Order-preserving entropic transport ``(B, Tm, Tn)``: the entropic plan (as :func:`entropic_plan`,
    ``epsilon = blur**2``) of the cost ``C_ij + time_weight * |s_i - t_j|``, where ``C`` is the
    cosine cost and ``s_i``, ``t_j`` the relative positions of source token ``i`` and target token
    ``j`` among their real tokens (:func:`relative_positions`). The prior draws mass towards the
    diagonal of proportional time; ``time_weight = 0`` is :func:`entropic_plan`."""
    if not time_weight >= 0:
        raise ValueError(f"time_weight: must be >= 0, got {time_weight}")
    cost, a, b = _prepare(x, y, x_mask, y_mask)
    s, t = relative_positions(a > 0, x.dtype), relative_positions(b > 0, y.dtype)
    cost = cost + time_weight * (s[:, :, None] - t[:, None, :]).abs()
    solver = geomloss_sinkhorn(blur, potentials=True, cost=_time_prior_cost(time_weight),
                               diameter=COSINE_DIAMETER + time_weight)
    return _polished_plan(cost, a, b, solver, torch.cat([x, s[..., None]], -1), torch.cat([y, t[..., None]], -1),
                          blur, tol, max_iter)


@register_plan("exact")
def exact_plan(
    x: torch.Tensor,
    y: torch.Tensor,
    x_mask: torch.Tensor | None = None,
    y_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Exact OT plan ``(B, Tm, Tn)`` from POT's network simplex, solved in float64 per batch item.

    The oracle: no gradient, a Python loop over the batch, ``O(T^3)`` per item.
    """
    import ot as pot

    cost, a, b = _prepare(x, y, x_mask, y_mask)
    cost64 = cost.detach().cpu().double().numpy()
    a64, b64 = a.detach().cpu().double().numpy(), b.detach().cpu().double().numpy()
    plans = np.zeros_like(cost64)
    for k in range(cost64.shape[0]):
        rows, cols = a64[k] > 0, b64[k] > 0
        sub = pot.emd(a64[k][rows], b64[k][cols], np.ascontiguousarray(cost64[k][np.ix_(rows, cols)]))
        plans[k][np.ix_(rows, cols)] = sub
    return torch.from_numpy(plans).to(dtype=x.dtype, device=x.device)


@register_plan("proportional")
def proportional_plan(
    x: torch.Tensor,
    y: torch.Tensor,
    x_mask: torch.Tensor | None = None,
    y_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The proportional-time plan ``(B, Tm, Tn)``: real source token ``t`` of ``n`` sends its mass
    ``1/n`` to real target token ``floor(t W / n)`` of ``W`` (counting real tokens only).

    It reads no feature: right only when the source keeps a constant pace along the target, so it
    is the floor a plan that reads the features has to beat.
    """
    check_pair(x, y)
    x_mask, y_mask = check_mask(x_mask, x, "x_mask"), check_mask(y_mask, y, "y_mask")
    rank = x_mask.long().cumsum(1).sub(1).clamp_min(0)  # (B, Tm): each source token's place among the real ones
    target_rank = rank * y_mask.sum(1, keepdim=True) // x_mask.sum(1, keepdim=True)
    target = pack_order(y_mask).gather(1, target_rank)  # (B, Tm): the position of that real target
    mass = uniform_weights(x_mask, x.dtype)  # 1/n on the real source tokens, 0 on padding
    plan = torch.zeros(x.shape[0], x.shape[1], y.shape[1], dtype=x.dtype, device=x.device)
    return plan.scatter(2, target[:, :, None], mass[:, :, None])


def _truth_plan(x, y, x_mask, y_mask, words):
    """Real source token ``i`` sends ``1/n`` to target position ``words[b, i]`` (-1: nowhere)."""
    check_pair(x, y)
    x_mask, y_mask = check_mask(x_mask, x, "x_mask"), check_mask(y_mask, y, "y_mask")
    if not isinstance(words, torch.Tensor) or tuple(words.shape) != tuple(x.shape[:2]):
        raise ValueError(f"truth: expected a (B, Tm) = {tuple(x.shape[:2])} tensor of word positions")
    words = words.to(x.device).long()
    sent = x_mask & (words >= 0)
    if (words >= y.shape[1]).any() or (sent & ~y_mask.gather(1, words.clamp(0, y.shape[1] - 1))).any():
        raise ValueError("truth: a real frame points past the words or at a padded word")
    mass = uniform_weights(x_mask, x.dtype) * sent
    plan = torch.zeros(x.shape[0], x.shape[1], y.shape[1], dtype=x.dtype, device=x.device)
    return plan.scatter(2, words.clamp_min(0)[:, :, None], mass[:, :, None])


@register_plan("oracle", settings=("truth",))
def oracle_plan(x, y, x_mask=None, y_mask=None, *, truth: torch.Tensor) -> torch.Tensor:
    """The true plan ``(B, Tm, Tn)`` from a correspondence table ``truth (B, Tm)`` (the position of
    each source token's target, -1 on padding): each real source token sends ``1/n`` to its own
    target. Reads no feature: the ceiling every plan is measured against."""
    return _truth_plan(x, y, x_mask, y_mask, truth)


@register_plan("shuffled", settings=("truth",))
def shuffled_plan(x, y, x_mask=None, y_mask=None, *, truth: torch.Tensor) -> torch.Tensor:
    """The true plan with the targets rotated by half a clip: real target ``r`` of ``W`` becomes
    ``(r + W // 2) mod W``. The segments stay whole and in order, but each lands on another word: a
    negative control (what a plan of the right shape but the wrong binding gives)."""
    y_mask = check_mask(y_mask, y, "y_mask")
    words = y_mask.sum(1, keepdim=True)
    rank = y_mask.long().cumsum(1).sub(1).gather(1, truth.clamp_min(0).to(y.device).long())
    rotated = pack_order(y_mask).gather(1, (rank + words // 2) % words)
    return _truth_plan(x, y, x_mask, y_mask, torch.where(truth.to(y.device) >= 0, rotated, -1))


def marginals(plan: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column sums of a plan ``(B, Tm, Tn)``: ``(B, Tm)`` and ``(B, Tn)``."""
    return plan.sum(dim=2), plan.sum(dim=1)


def frame_words(plan: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, Tm)`` the target each source token is sent to: its heaviest plan entry, or
    :data:`~alignlib.data.NO_WORD` where it sends less than half of its share ``1/n`` (``n`` real
    source tokens: the rest of its mass went to no target, as a plan with a "no word" state sends
    it), :data:`~alignlib.data.PADDING` on padding. Every plan that sends each real token's full
    share (all of this module's but the controls on a pause) names a target for every real token."""
    x_mask = torch.ones(plan.shape[:2], dtype=torch.bool, device=plan.device) if x_mask is None else x_mask
    share = 1.0 / x_mask.sum(1, keepdim=True).clamp_min(1)
    words = torch.where(plan.sum(2) < share / 2, NO_WORD, plan.argmax(dim=2))
    return torch.where(x_mask, words, PADDING)


def correspondence_accuracy(plan: torch.Tensor, truth: torch.Tensor, x_mask: torch.Tensor | None = None) -> float:
    """Share of the real source tokens that have a target (``truth >= 0``: not padding, not
    :data:`~alignlib.data.NO_WORD`) whose :func:`frame_words` entry is their true target.

    Args:
        plan: ``(B, Tm, Tn)``; truth: ``(B, Tm)`` index of the true target of each source token; a
            negative code (padding, or a frame in a pause with no word) is left out, as is ``~x_mask``.
    """
    truth = truth.to(plan.device)
    scored = (truth >= 0) if x_mask is None else x_mask & (truth >= 0)
    return (frame_words(plan, x_mask)[scored] == truth[scored]).float().mean().item()
