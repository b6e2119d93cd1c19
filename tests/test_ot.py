"""Local alignment (OT) against independent sources: brute-force loops, scipy's LP solver,
POT's exact and log-domain Sinkhorn solvers, and closed-form properties; the plan dispatcher."""
import math
import warnings

import numpy as np
import ot as pot
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from alignlib.align import ot
from alignlib.data.warped_pairs import warp_indices, warped_pair


def random_tokens(batch, n_source, n_target, dim, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n_source, dim, generator=generator, dtype=dtype)
    y = torch.randn(batch, n_target, dim, generator=generator, dtype=dtype)
    return x, y


def uniform(n):
    return np.full(n, 1.0 / n)


def test_cosine_cost_matches_double_loop():
    x, y = random_tokens(2, 5, 4, 3)
    cost = ot.cosine_cost(x, y)
    for k in range(2):
        for i in range(5):
            for j in range(4):
                u, v = x[k, i].numpy(), y[k, j].numpy()
                expected = 1 - u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
                assert cost[k, i, j].item() == pytest.approx(expected, abs=1e-12)


def test_relaxed_plan_is_the_closed_form():
    x, y = random_tokens(3, 7, 5, 4)
    plan = ot.relaxed_plan(x, y)
    cost = ot.cosine_cost(x, y).numpy()
    for k in range(3):
        expected = np.zeros((7, 5))
        expected[np.arange(7), cost[k].argmin(axis=1)] = 1 / 7
        np.testing.assert_allclose(plan[k].numpy(), expected)


@settings(max_examples=40, deadline=None)
@given(n_source=st.integers(1, 9), n_target=st.integers(1, 9), dim=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_relaxed_cost_is_never_above_exact(n_source, n_target, dim, seed):
    x, y = random_tokens(1, n_source, n_target, dim, seed)
    cost = ot.cosine_cost(x, y)
    relaxed = ot.plan_cost(ot.relaxed_plan(x, y), cost).item()
    exact = pot.emd2(uniform(n_source), uniform(n_target), cost[0].numpy())
    assert relaxed <= exact + 1e-12


def test_exact_plan_matches_linear_program():
    x, y = random_tokens(1, 5, 4, 3, seed=3)
    cost = ot.cosine_cost(x, y)[0].numpy()
    # Eq. 3 as an LP over the 20 plan entries: row sums 1/5, column sums 1/4, P >= 0.
    rows = np.kron(np.eye(5), np.ones((1, 4)))
    cols = np.kron(np.ones((1, 5)), np.eye(4))
    lp = linprog(cost.ravel(), A_eq=np.vstack([rows, cols]), b_eq=np.r_[uniform(5), uniform(4)], bounds=(0, None))
    plan = ot.exact_plan(x, y)
    assert ot.plan_cost(plan, ot.cosine_cost(x, y)).item() == pytest.approx(lp.fun, abs=1e-10)
    row, col = ot.marginals(plan)
    np.testing.assert_allclose(row[0].numpy(), uniform(5), atol=1e-12)
    np.testing.assert_allclose(col[0].numpy(), uniform(4), atol=1e-12)


def test_entropic_plan_marginals_and_pot_agreement():
    pair = warped_pair(14, 10, dim=8, noise=0.3, warp=0.5, batch=3, seed=1)
    blur = 0.2
    plan = ot.entropic_plan(pair.source, pair.target, blur=blur, tol=1e-9)
    row, col = ot.marginals(plan)
    np.testing.assert_allclose(row.numpy(), np.tile(uniform(14), (3, 1)), atol=1e-5)
    np.testing.assert_allclose(col.numpy(), np.tile(uniform(10), (3, 1)), atol=1e-5)
    cost = ot.cosine_cost(pair.source, pair.target).numpy()
    for k in range(3):
        reference = pot.sinkhorn(uniform(14), uniform(10), cost[k], blur**2, method="sinkhorn_log",
                                 numItermax=100_000, stopThr=1e-12)
        np.testing.assert_allclose(plan[k].numpy(), reference, atol=1e-7)


def test_entropic_cost_tends_to_exact_as_blur_shrinks():
    pair = warped_pair(10, 8, dim=8, noise=0.4, warp=0.0, batch=2, seed=2)
    cost = ot.cosine_cost(pair.source, pair.target)
    exact = ot.plan_cost(ot.exact_plan(pair.source, pair.target), cost)
    gaps = []
    for blur in (0.5, 0.2, 0.1):
        plan = ot.entropic_plan(pair.source, pair.target, blur=blur, tol=1e-7, max_iter=20_000)
        gaps.append((ot.plan_cost(plan, cost) - exact).abs().max().item())
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 2e-3


def test_ot_distance_converges_to_entropic_ot_value():
    """GeomLoss's loss (debias=False) with a slow annealing equals <P,C> + eps KL(P | a b^T)
    evaluated on POT's converged plan."""
    pair = warped_pair(9, 7, dim=6, noise=0.3, warp=0.3, batch=1, seed=4)
    blur = 0.3
    eps = blur**2
    cost = ot.cosine_cost(pair.source, pair.target)[0].numpy()
    a, b = uniform(9), uniform(7)
    plan = pot.sinkhorn(a, b, cost, eps, method="sinkhorn_log", numItermax=100_000, stopThr=1e-13)
    expected = (plan * cost).sum() + eps * (plan * np.log(plan / np.outer(a, b))).sum()
    got = ot.ot_distance(pair.source, pair.target, blur=blur, scaling=0.995).item()
    assert got == pytest.approx(expected, rel=1e-3)


def test_ot_distance_gradients_are_finite_and_ignore_padding():
    x, y = random_tokens(2, 6, 5, 4, seed=5)
    x_mask = torch.ones(2, 6, dtype=torch.bool)
    x_mask[1, 4:] = False
    x = x.requires_grad_()
    loss = ot.ot_distance(x, y, x_mask=x_mask).sum()
    loss.backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad[1, 4:].abs().max().item() == 0.0
    assert x.grad[1, :4].abs().max().item() > 0.0


@pytest.mark.parametrize("method", ["relaxed", "entropic", "exact", "proportional"])
def test_padding_equals_the_unpadded_problem(method):
    x, y = random_tokens(1, 8, 6, 4, seed=6)
    x_mask = torch.tensor([[True] * 5 + [False] * 3])
    y_mask = torch.tensor([[True] * 4 + [False] * 2])
    padded = ot.plan(x, y, x_mask, y_mask, method=method, blur=0.3, tol=1e-10)
    alone = ot.plan(x[:, :5], y[:, :4], method=method, blur=0.3, tol=1e-10)
    np.testing.assert_allclose(padded[:, :5, :4].numpy(), alone.numpy(), atol=1e-9)
    assert padded[:, 5:].abs().max().item() == 0.0 and padded[:, :, 4:].abs().max().item() == 0.0


def test_transport_is_plan_transpose_times_x():
    x, y = random_tokens(2, 6, 4, 3, seed=7)
    plan = ot.relaxed_plan(x, y)
    aligned = ot.transport(plan, x)
    assert aligned.shape == (2, 4, 3)
    for k in range(2):
        for j in range(4):
            expected = sum(plan[k, i, j] * x[k, i] for i in range(6))
            np.testing.assert_allclose(aligned[k, j].numpy(), expected.numpy(), atol=1e-12)
    averaged = ot.transport(plan, x, barycentric=True)
    received = plan.sum(dim=1)
    hit = received > 0
    np.testing.assert_allclose(averaged[hit].numpy(), (aligned[hit] / received[hit][:, None]).numpy())
    assert (averaged[~hit] == 0).all()


def test_warp_indices_are_monotone_and_cover_the_ends():
    for warp in (-3.0, 0.0, 1.0, 3.0):
        index = warp_indices(40, 25, warp)
        assert (index[1:] >= index[:-1]).all()
        assert index.min() >= 0 and index.max() <= 24
    assert warp_indices(10, 10, 0.0).tolist() == list(range(10))


def test_known_time_warp_is_recovered():
    pair = warped_pair(30, 20, dim=16, noise=0.3, warp=1.0, batch=8, seed=0)
    accuracy = {
        "relaxed": ot.correspondence_accuracy(ot.relaxed_plan(pair.source, pair.target), pair.correspondence),
        "exact": ot.correspondence_accuracy(ot.exact_plan(pair.source, pair.target), pair.correspondence),
        "entropic": ot.correspondence_accuracy(
            ot.entropic_plan(pair.source, pair.target, blur=0.05, tol=1e-3), pair.correspondence),
    }
    print("recovered correspondence accuracy:", accuracy)
    assert accuracy["relaxed"] > 0.9
    assert accuracy["exact"] > 0.8
    assert accuracy["entropic"] > 0.8


@pytest.mark.filterwarnings("ignore:sinkhorn_log stopped")
def test_tiny_blur_and_huge_features_stay_finite():
    x, y = random_tokens(2, 12, 9, 5, seed=8, dtype=torch.float32)
    for scale in (1e-4, 1.0, 1e4):
        plan = ot.entropic_plan(x * scale, y * scale, blur=1e-3, max_iter=50)
        assert torch.isfinite(plan).all()
        assert plan.sum(dim=(1, 2)).sub(1).abs().max().item() < 1e-3
        assert torch.isfinite(ot.ot_distance(x * scale, y * scale, blur=1e-3)).all()
        assert torch.isfinite(ot.relaxed_plan(x * scale, y * scale)).all()


@pytest.mark.parametrize(
    "x, y, x_mask, blur, message",
    [
        (torch.randn(1, 4, 3), torch.randn(1, 5, 2), None, 0.05, "feature dims differ"),
        (torch.randn(1, 0, 3), torch.randn(1, 5, 3), None, 0.05, "empty sequence"),
        (torch.randn(1, 4, 3), torch.randn(2, 5, 3), None, 0.05, "batch sizes differ"),
        (torch.randn(4, 3), torch.randn(1, 5, 3), None, 0.05, "expected 3 dims"),
        (torch.randn(1, 4, 3), torch.randn(1, 5, 3), torch.zeros(1, 4, dtype=torch.bool), 0.05, "all tokens are padding"),
        (torch.randn(1, 4, 3), torch.randn(1, 5, 3), torch.ones(1, 3, dtype=torch.bool), 0.05, "x_mask: expected shape"),
        (torch.tensor([[[math.nan, 0, 1]]]), torch.randn(1, 5, 3), None, 0.05, "NaN or infinite"),
        (torch.tensor([[[math.inf, 0, 1]]]), torch.randn(1, 5, 3), None, 0.05, "NaN or infinite"),
        (torch.randn(1, 4, 3), torch.randn(1, 5, 3), None, 0.0, "blur must be a positive"),
        (torch.randn(1, 4, 3), torch.randn(1, 5, 3), None, -1.0, "blur must be a positive"),
    ],
)
def test_bad_input_gets_a_clear_error(x, y, x_mask, blur, message):
    with pytest.raises((ValueError, TypeError), match=message):
        ot.entropic_plan(x, y, x_mask=x_mask, blur=blur)
    if "blur" not in message:
        with pytest.raises((ValueError, TypeError), match=message):
            ot.relaxed_plan(x, y, x_mask=x_mask)
        with pytest.raises((ValueError, TypeError), match=message):
            ot.exact_plan(x, y, x_mask=x_mask)


def test_integer_tokens_are_rejected():
    with pytest.raises(TypeError, match="floating dtype"):
        ot.cosine_cost(torch.ones(1, 2, 3, dtype=torch.long), torch.ones(1, 2, 3, dtype=torch.long))


def test_barycentric_transport_has_finite_gradients_for_empty_targets():
    """A target that receives no mass must not turn the backward pass into NaN (0 * inf)."""
    x = torch.randn(1, 3, 4, dtype=torch.float32, requires_grad=True)
    plan = torch.zeros(1, 3, 5)
    plan[0, :, 0] = 1 / 3  # every source sends its mass to target 0; targets 1..4 receive nothing
    aligned = ot.transport(plan, x, barycentric=True)
    (aligned * 1e6).sum().backward()
    assert torch.isfinite(x.grad).all()
    torch.testing.assert_close(aligned[0, 0], x[0].mean(0))
    assert (aligned[0, 1:] == 0).all()


# -- the plan dispatcher ----------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["exact", "entropic", "relaxed", "proportional"])
def test_plan_is_each_methods_solver_and_ignores_settings_it_does_not_take(method):
    x, y = random_tokens(2, 9, 6, 3, seed=12)
    x_mask = torch.tensor([[True] * 9, [True] * 7 + [False] * 2])
    solver = {"exact": ot.exact_plan, "relaxed": ot.relaxed_plan, "proportional": ot.proportional_plan,
              "entropic": lambda *args: ot.entropic_plan(*args, blur=0.2, tol=1e-8)}[method]
    dispatched = ot.plan(x, y, x_mask, method=method, blur=0.2, tol=1e-8)
    torch.testing.assert_close(dispatched, solver(x, y, x_mask), rtol=0, atol=0)
    assert ("blur" in ot.PLAN_METHODS[method].settings) == (method == "entropic")


def test_proportional_plan_matches_a_loop():
    frames = torch.tensor([[True] * 7 + [False] * 3, [True] * 10, [True] * 3 + [False] * 7])
    words = torch.tensor([[True] * 3 + [False], [True] * 4, [True] * 4])
    x, y = random_tokens(3, 10, 4, 2, seed=13)
    plan = ot.plan(x, y, frames, words, method="proportional")
    for b in range(3):
        n, w = int(frames[b].sum()), int(words[b].sum())
        expected = torch.zeros(10, 4, dtype=torch.float64)
        for t in range(n):
            expected[t, math.floor(t * w / n)] = 1 / n
        torch.testing.assert_close(plan[b], expected, rtol=0, atol=1e-15)


def test_unknown_methods_and_settings_are_named_and_a_method_can_be_added(monkeypatch):
    x, y = random_tokens(1, 3, 4, 2, seed=14)
    with pytest.raises(ValueError, match="method: unknown 'greedy'; choose one of"):
        ot.plan(x, y, method="greedy")
    with pytest.raises(ValueError, match=r"unknown plan setting\(s\) \['tolerance'\]"):
        ot.plan(x, y, method="exact", tolerance=1e-3)
    monkeypatch.setattr(ot, "PLAN_METHODS", dict(ot.PLAN_METHODS))

    @ot.register_plan("uniform", settings=("scale",))
    def uniform_plan(x, y, x_mask=None, y_mask=None, *, scale=1.0):
        return torch.full((x.shape[0], x.shape[1], y.shape[1]), scale / (x.shape[1] * y.shape[1]), dtype=x.dtype)

    torch.testing.assert_close(ot.plan(x, y, method="uniform", blur=9.0, scale=2.0), uniform_plan(x, y, scale=2.0))
    assert ot.plan(x, y, method="exact", scale=2.0).sum().item() == pytest.approx(1.0)  # a setting of another method
    with pytest.raises(ValueError, match="'exact' is already registered"):
        ot.register_plan("exact")(uniform_plan)


# -- order-preserving transport ---------------------------------------------------------------------
def test_time_prior_plan_is_pots_sinkhorn_on_the_cost_with_the_time_term():
    x, y = random_tokens(3, 9, 5, 4, seed=15)
    x_mask = torch.ones(3, 9, dtype=torch.bool)
    x_mask[1, 6:] = False
    x_mask[2, 0] = False  # padding first: positions count the real tokens only
    y_mask = torch.ones(3, 5, dtype=torch.bool)
    y_mask[2, 4] = False
    for weight in (0.0, 2.0):
        plan = ot.plan(x, y, x_mask, y_mask, method="time_prior", blur=0.3, time_weight=weight, tol=1e-9,
                       max_iter=20000)
        for b in range(3):
            rows, cols = x_mask[b].numpy(), y_mask[b].numpy()
            n, w = rows.sum(), cols.sum()
            cost = ot.cosine_cost(x[b:b + 1], y[b:b + 1])[0].numpy()[np.ix_(rows, cols)]
            s, t = (np.arange(n) + 0.5) / n, (np.arange(w) + 0.5) / w
            expected = pot.sinkhorn(uniform(n), uniform(w), cost + weight * np.abs(s[:, None] - t[None]), 0.3**2,
                                    method="sinkhorn_log", stopThr=1e-13, numItermax=100000)
            np.testing.assert_allclose(plan[b].numpy()[np.ix_(rows, cols)], expected, atol=1e-7)
            assert plan[b][~x_mask[b]].abs().sum() == 0 and plan[b][:, ~y_mask[b]].abs().sum() == 0
    # a heavy prior leaves the features no say: the plan is entropic transport along the diagonal
    heavy = ot.plan(x, y, method="time_prior", blur=0.3, time_weight=50.0)
    assert (heavy[0].argmax(1) == torch.div(torch.arange(9) * 5 + 2, 9, rounding_mode="floor")).float().mean() > 0.7
    with pytest.raises(ValueError, match="time_weight: must be >= 0"):
        ot.plan(x, y, method="time_prior", time_weight=-1.0)


def padded_problem(seed: int = 0, batch: int = 6, rows: int = 17, columns: int = 9):
    """A cosine cost ``(B, n, m)`` with random weights, some rows and columns padded (zero weight)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(batch, rows, 5, generator=g, dtype=torch.float64), dim=-1)
    y = torch.nn.functional.normalize(torch.randn(batch, columns, 5, generator=g, dtype=torch.float64), dim=-1)
    a = torch.rand(batch, rows, generator=g, dtype=torch.float64)
    b = torch.rand(batch, columns, generator=g, dtype=torch.float64)
    a[:, rows - 4:], a[1, :3], b[2, columns - 3:] = 0, 0, 0  # padding at the end and at the start
    return 1 - x @ y.transpose(1, 2), a / a.sum(1, keepdim=True), b / b.sum(1, keepdim=True)


@pytest.mark.parametrize("blur, max_iter", [(0.3, 2000), (0.05, 40)])  # converged, and stopped by max_iter
def test_compiled_sinkhorn_equals_the_pytorch_updates(monkeypatch, blur, max_iter):
    from alignlib.ssm import kernels

    if kernels.load("sinkhorn") is None:
        pytest.skip("no working C++ compiler here")
    cost, a, b = padded_problem()
    with warnings.catch_warnings(record=True) as compiled_warnings:
        warnings.simplefilter("always")
        f, g = ot.sinkhorn_log(cost, a, b, blur**2, max_iter=max_iter)
    monkeypatch.setattr(ot, "_compiled_sinkhorn", lambda *inputs: None)
    with warnings.catch_warnings(record=True) as torch_warnings:
        warnings.simplefilter("always")
        f_torch, g_torch = ot.sinkhorn_log(cost, a, b, blur**2, max_iter=max_iter)
    torch.testing.assert_close(f, f_torch, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g, g_torch, rtol=1e-12, atol=1e-12)
    assert [str(w.message) for w in compiled_warnings] == [str(w.message) for w in torch_warnings]
    assert bool(compiled_warnings) == (max_iter == 40)
    # each batch item is one task: the potentials do not depend on the thread count
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        monkeypatch.undo()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            one = ot.sinkhorn_log(cost, a, b, blur**2, max_iter=max_iter)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], f) and torch.equal(one[1], g)


def test_compiled_sinkhorn_plan_is_pots(monkeypatch):
    """The plan from the C++ iterations against POT's log-domain Sinkhorn, item by item."""
    cost, a, b = padded_problem(seed=1)
    eps = 0.2**2
    f, g = ot.sinkhorn_log(cost, a, b, eps, tol=1e-12, max_iter=20_000)
    plan = ot.plan_from_potentials(f, g, cost, a, b, eps)
    for k in range(len(cost)):
        rows, columns = a[k] > 0, b[k] > 0
        expected = pot.sinkhorn(a[k][rows].numpy(), b[k][columns].numpy(), cost[k][rows][:, columns].numpy(), eps,
                                method="sinkhorn_log", numItermax=100_000, stopThr=1e-13)
        np.testing.assert_allclose(plan[k][rows][:, columns].numpy(), expected, atol=1e-9)
        assert (plan[k][~rows] == 0).all() and (plan[k][:, ~columns] == 0).all()


def test_sinkhorn_falls_back_to_pytorch_with_one_warning(monkeypatch, tmp_path):
    from alignlib.ssm import kernels

    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("ALIGNLIB_CACHE", str(tmp_path / "cache"))
    kernels.load.cache_clear()
    cost, a, b = padded_problem(seed=2)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            f, g = ot.sinkhorn_log(cost, a, b, 0.3**2)
            ot.sinkhorn_log(cost, a, b, 0.3**2)
    finally:
        kernels.load.cache_clear()
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == [
        f"alignlib: the C++ kernel 'sinkhorn' is unavailable, using the pure-PyTorch fallback: "
        f"no C++ compiler found ({tmp_path / 'no-such-compiler'}; set CXX)"]
    monkeypatch.setattr(ot, "_compiled_sinkhorn", lambda *inputs: None)
    expected = ot.sinkhorn_log(cost, a, b, 0.3**2)
    assert torch.equal(f, expected[0]) and torch.equal(g, expected[1])


def loop_sinkhorn(cost, a, b, epsilon, g, tol, max_iter, check_every):
    """The iterations written out as :func:`ot.sinkhorn_log` documents them: f from g, a check of the
    column marginals every ``check_every`` iterations and after ``max_iter``; ``(f, g, converged)``."""
    log_a, log_b = a.log(), b.log()
    f = -epsilon * torch.logsumexp(log_b[:, None, :] + (g[:, None, :] - cost) / epsilon, dim=2)
    for iteration in range(max_iter + 1):
        if iteration % check_every == 0 or iteration == max_iter:
            plan = ot.plan_from_potentials(f, g, cost, a, b, epsilon)
            if (plan.sum(dim=1) - b).abs().sum(dim=1).max().item() < tol:
                return f, g, True
        if iteration < max_iter:
            g = -epsilon * torch.logsumexp(log_a[:, :, None] + (f[:, :, None] - cost) / epsilon, dim=1)
            f = -epsilon * torch.logsumexp(log_b[:, None, :] + (g[:, None, :] - cost) / epsilon, dim=2)
    return f, g, False


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("blur, max_iter, check_every", [(0.3, 2000, 10), (0.3, 2000, 7), (0.05, 45, 10)])
def test_sinkhorn_iterations_and_checks_follow_the_written_loop(monkeypatch, compiled, blur, max_iter, check_every):
    """Both paths against the loop above, from a warm start that they leave unchanged; the same
    number of iterations (a check cadence of 7, and a cap of 45 that is not a multiple of it)."""
    if not compiled:
        monkeypatch.setattr(ot, "_compiled_sinkhorn", lambda *inputs: None)
    cost, a, b = padded_problem(seed=3)
    warm = torch.randn(b.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 0.01
    given = warm.clone()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f, g = ot.sinkhorn_log(cost, a, b, blur**2, g=warm, max_iter=max_iter, check_every=check_every)
    assert torch.equal(warm, given), "the warm start is the caller's: left as it was"
    f_loop, g_loop, converged = loop_sinkhorn(cost, a, b, blur**2, given, 1e-5, max_iter, check_every)
    torch.testing.assert_close(f, f_loop, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(g, g_loop, rtol=1e-11, atol=1e-11)
    assert len(caught) == (not converged)


@pytest.mark.parametrize("compiled", [True, False])
def test_sinkhorn_warns_on_a_nan_and_rejects_check_every_0(monkeypatch, compiled):
    if not compiled:
        monkeypatch.setattr(ot, "_compiled_sinkhorn", lambda *inputs: None)
    cost, a, b = padded_problem(seed=5)
    warm = torch.zeros_like(b)
    warm[2, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="marginal error nan"):
        f, _ = ot.sinkhorn_log(cost, a, b, 0.3**2, g=warm, max_iter=30)
    assert f[2].isnan().all() and not f[0].isnan().any()
    with pytest.raises(ValueError, match="check_every must be at least 1, got 0"):
        ot.sinkhorn_log(cost, a, b, 0.3**2, check_every=0)
