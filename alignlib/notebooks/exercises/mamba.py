"""The checks of notebook 03 · Mamba."""
from __future__ import annotations

import torch

from alignlib.notebooks.exercises.core import call_answer, compare, exercise, seeded


@exercise
def check_zoh_step(answer) -> str:
    """``zoh_step(h (N,), u, a (N,), b (N,), delta) -> (N,)``: one exact zero-order-hold step of
    ``h' = a h + b u``, against SciPy's ODE solver."""
    from scipy.integrate import solve_ivp

    generator = seeded(11)
    cases = {
        "N = 4, delta 0.1": (torch.ones(4, dtype=torch.float64), 0.7, -torch.arange(1.0, 5.0, dtype=torch.float64),
                             torch.ones(4, dtype=torch.float64), 0.1),
        "N = 2, delta 0.5": (torch.randn(2, generator=generator, dtype=torch.float64), -1.3,
                             torch.tensor([-0.5, -5.0], dtype=torch.float64), torch.tensor([2.0, -1.0], dtype=torch.float64), 0.5),
    }
    for case, (h, u, a, b, delta) in cases.items():
        got = call_answer(answer, case, h, u, a, b, delta)
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
        compare(got, expected, case, mistakes, axes=" (N,)", atol=1e-8)
    return "matches SciPy's ODE solver over one step, in two cases"


@exercise
def check_selective_scan_loop(answer) -> str:
    """``selective_scan_loop(u, delta (batch, D, L), A (D, N), B, C (batch, N, L)) -> (batch, D, L)``
    against :func:`alignlib.ssm.selective_scan.selective_scan_reference`."""
    from alignlib.ssm.selective_scan import selective_scan_reference as scan

    generator = seeded(12)
    batch, channels, states, length = 2, 3, 4, 9
    u = torch.randn(batch, channels, length, generator=generator, dtype=torch.float64)
    delta = torch.nn.functional.softplus(torch.randn(batch, channels, length, generator=generator, dtype=torch.float64))
    A = -torch.rand(channels, states, generator=generator, dtype=torch.float64) * 3 - 0.5
    B, C = (torch.randn(batch, states, length, generator=generator, dtype=torch.float64) for _ in range(2))
    case = "batch 2, D = 3, N = 4, L = 9"
    got = call_answer(answer, case, u, delta, A, B, C)
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
    compare(got, expected, case, mistakes, axes=" (batch, D, L)")
    return "matches alignlib.ssm.selective_scan.selective_scan_reference"


@exercise
def check_impulse_response(answer) -> str:
    """``impulse_response(a, b, c (N,), delta, length) -> (length,)``: the kernel ``K_k`` of the
    time-invariant SSM with Mamba's ``B_bar = delta b``, against the response of
    :func:`alignlib.ssm.selective_scan.selective_scan_reference` to a unit spike."""
    from alignlib.ssm.selective_scan import selective_scan_reference as scan

    a = torch.tensor([-1.0, -2.0, -3.0], dtype=torch.float64)
    b = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    c = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    delta, length, case = 0.1, 12, "N = 3, delta 0.1, 12 lags"
    got = call_answer(answer, case, a, b, c, delta, length)
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
    compare(got, expected, case, mistakes, axes=" (length,)")
    return "matches the scan's response to a unit spike, lag by lag"
