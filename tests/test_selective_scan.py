"""The reference selective scan against a scalar float64 loop, the convolution view of a
time-invariant SSM, and mamba-ssm's reference where it imports; the chunked and fused scans
against the reference."""
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from alignlib.ssm import kernels
from alignlib.ssm.selective_scan import (
    mamba_ssm_kernel,
    selective_scan,
    selective_scan_chunked,
    selective_scan_fused,
    selective_scan_reference,
)


def inputs(batch=2, channels=3, states=4, length=5, selective=True, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    u, delta, z = r(batch, channels, length), r(batch, channels, length), r(batch, channels, length)
    A = -torch.exp(r(channels, states))
    B = r(batch, states, length) if selective else r(channels, states)
    C = r(batch, states, length) if selective else r(channels, states)
    return dict(u=u, delta=delta, A=A, B=B, C=C, D=r(channels), z=z, delta_bias=r(channels))


def scalar_loop(u, delta, A, B, C, D, z, delta_bias):
    """Every multiplication written out, one (batch, channel, state) at a time, in float64."""
    u, delta, A, B, C, D, z, bias = (t.double().numpy() for t in (u, delta, A, B, C, D, z, delta_bias))
    batch, channels, length = u.shape
    out = np.zeros_like(u)
    for b in range(batch):
        for d in range(channels):
            h = np.zeros(A.shape[1])
            for t in range(length):
                dt = math.log1p(math.exp(delta[b, d, t] + bias[d]))  # softplus
                for n in range(A.shape[1]):
                    b_tn = B[b, n, t] if B.ndim == 3 else B[d, n]
                    h[n] = math.exp(dt * A[d, n]) * h[n] + dt * b_tn * u[b, d, t]
                c_t = C[b, :, t] if C.ndim == 3 else C[d]
                y = float(c_t @ h) + D[d] * u[b, d, t]
                out[b, d, t] = y * z[b, d, t] / (1 + math.exp(-z[b, d, t]))  # silu
    return out


@pytest.mark.parametrize("selective", [True, False])
@pytest.mark.parametrize("length", [1, 2, 7])
def test_reference_matches_scalar_loop(selective, length):
    args = inputs(length=length, selective=selective, seed=length)
    got = selective_scan_reference(**args, delta_softplus=True)
    np.testing.assert_allclose(got.numpy(), scalar_loop(**args), rtol=1e-10, atol=1e-12)


def test_time_invariant_scan_is_a_convolution():
    """With B, C fixed and delta constant in time, y = K * u with K_k = sum_n C_n (e^{dA_n})^k dB_n."""
    args = inputs(batch=1, channels=2, states=3, length=9, selective=False, seed=3)
    delta = torch.full_like(args["u"], 0.3)
    y = selective_scan_reference(args["u"], delta, args["A"], args["B"], args["C"])
    for d in range(2):
        abar = torch.exp(0.3 * args["A"][d])
        kernel = torch.stack([(args["C"][d] * abar**k * 0.3 * args["B"][d]).sum() for k in range(9)])
        conv = F.conv1d(F.pad(args["u"][:, d:d + 1], (8, 0)), kernel.flip(0)[None, None])
        np.testing.assert_allclose(y[:, d:d + 1].numpy(), conv.numpy(), rtol=1e-10, atol=1e-12)


def test_last_state_and_gradients():
    args = inputs(length=6, seed=4)
    leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
    out, last = selective_scan_reference(**leaves, delta_softplus=True, return_last_state=True)
    assert last.shape == (2, 3, 4)
    out.square().sum().backward()
    for name, leaf in leaves.items():
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all(), name
    check = {k: v.clone().requires_grad_() for k, v in inputs(batch=1, channels=2, states=2, length=4, seed=5).items()}
    assert torch.autograd.gradcheck(lambda *t: selective_scan_reference(*t, delta_softplus=True),
                                     tuple(check[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")))


def test_float32_in_float32_out():
    args = {k: v.float() for k, v in inputs(seed=6).items()}
    assert selective_scan_reference(**args).dtype == torch.float32


def test_matches_mamba_ssm_reference_where_it_imports():
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_ref
    except Exception as error:  # mamba-ssm may be absent, or fail on import without CUDA
        pytest.skip(f"mamba-ssm's selective_scan_ref does not import here: {type(error).__name__}: {error}")
    args = {k: v.float() for k, v in inputs(seed=7).items()}
    expected = selective_scan_ref(**args, delta_softplus=True)
    torch.testing.assert_close(selective_scan_reference(**args, delta_softplus=True), expected)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(u=torch.zeros(2, 3)), "u: expected shape"),
        (dict(delta=torch.zeros(2, 3, 4)), "delta: expected shape"),
        (dict(A=torch.ones(3, 4, dtype=torch.float64)), "positive entries"),
        (dict(A=-torch.ones(2, 4, dtype=torch.float64)), "A: expected shape"),
        (dict(B=torch.zeros(2, 4, 3, dtype=torch.float64)), "B: expected shape"),
        (dict(D=torch.zeros(2, dtype=torch.float64)), "D: expected shape"),
        (dict(u=torch.full((2, 3, 5), math.nan, dtype=torch.float64)), "u: contains NaN"),
        (dict(u=torch.zeros(2, 3, 0, dtype=torch.float64), delta=torch.zeros(2, 3, 0, dtype=torch.float64)), "empty sequence"),
    ],
)
def test_bad_input_gets_a_clear_error(change, message):
    args = {**inputs(), **change}
    with pytest.raises((ValueError, TypeError), match=message):
        selective_scan_reference(**args)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 3), channels=st.integers(1, 6), states=st.integers(1, 5), length=st.integers(1, 40),
       selective=st.booleans(), chunk=st.one_of(st.none(), st.integers(1, 9)), seed=st.integers(0, 10_000))
def test_chunked_scan_equals_the_loop(batch, channels, states, length, selective, chunk, seed):
    """Outputs, last state and the gradient of every input within 1e-4 in float32."""
    args = {k: v.float() for k, v in inputs(batch, channels, states, length, selective, seed).items()}
    ref_leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
    fast_leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
    y_ref, h_ref = selective_scan_reference(**ref_leaves, delta_softplus=True, return_last_state=True)
    y_fast, h_fast = selective_scan_chunked(**fast_leaves, delta_softplus=True, return_last_state=True, chunk=chunk)
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(h_fast, h_ref, rtol=1e-4, atol=1e-4)
    g = torch.Generator().manual_seed(seed)
    weights, state_weights = torch.randn(y_ref.shape, generator=g), torch.randn(h_ref.shape, generator=g)
    ((y_ref * weights).sum() + (h_ref * state_weights).sum()).backward()
    ((y_fast * weights).sum() + (h_fast * state_weights).sum()).backward()
    for name in args:
        torch.testing.assert_close(fast_leaves[name].grad, ref_leaves[name].grad, rtol=1e-4, atol=1e-4, msg=name)


def test_chunked_gradcheck():
    args = inputs(batch=2, channels=2, states=3, length=7, seed=8)
    names = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
    leaves = tuple(args[k].clone().requires_grad_() for k in names)
    assert torch.autograd.gradcheck(lambda *t: selective_scan_chunked(*t, delta_softplus=True, chunk=3), leaves)


def test_dispatcher():
    args = {k: v.float() for k, v in inputs(seed=9).items()}
    expected = selective_scan_reference(**args, delta_softplus=True)
    for backend in ("auto", "reference", "chunked", "fused"):
        torch.testing.assert_close(selective_scan(**args, delta_softplus=True, backend=backend), expected)
    assert torch.equal(selective_scan(**args, delta_softplus=True), selective_scan_fused(**args, delta_softplus=True)), \
        "auto runs the fused scan on CPU tensors"
    with pytest.raises(ValueError, match="unknown backend"):
        selective_scan(**args, backend="triton")
    with pytest.raises(RuntimeError, match="needs CUDA tensors and mamba-ssm"):
        selective_scan(**args, backend="cuda")


@pytest.mark.skipif(not torch.cuda.is_available() or mamba_ssm_kernel() is None,
                    reason="needs a CUDA GPU and mamba-ssm (pip install -e .[cuda])")
def test_cuda_kernel_equals_the_loop():
    args = {k: v.float().cuda() for k, v in inputs(batch=2, channels=8, states=16, length=64, seed=10).items()}
    expected = selective_scan_reference(**{k: v.cpu() for k, v in args.items()}, delta_softplus=True)
    got = selective_scan(**args, delta_softplus=True, backend="cuda")
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-3, atol=1e-3)


def fused_vs_loop(args, chunk=64, **options):
    """Largest gaps of the fused scan's output, last state and input gradients from the loop's."""
    ref_leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
    fast_leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
    y_ref, h_ref = selective_scan_reference(**ref_leaves, **options, return_last_state=True)
    y_fast, h_fast = selective_scan_fused(**fast_leaves, **options, return_last_state=True, chunk=chunk)
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(h_fast, h_ref, rtol=1e-4, atol=1e-4)
    g = torch.Generator().manual_seed(0)
    weights, state_weights = torch.randn(y_ref.shape, generator=g), torch.randn(h_ref.shape, generator=g)
    ((y_ref * weights).sum() + (h_ref * state_weights).sum()).backward()
    ((y_fast * weights).sum() + (h_fast * state_weights).sum()).backward()
    for name in args:
        torch.testing.assert_close(fast_leaves[name].grad, ref_leaves[name].grad, rtol=1e-4, atol=1e-4, msg=name)


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), channels=st.sampled_from([1, 5, 33, 70]), states=st.integers(1, 17),
       length=st.sampled_from([1, 2, 7, 64, 65, 150]), selective_B=st.booleans(), selective_C=st.booleans(),
       with_D=st.booleans(), with_z=st.booleans(), with_bias=st.booleans(), softplus=st.booleans(),
       chunk=st.sampled_from([1, 5, 64]), seed=st.integers(0, 10_000))
def test_fused_scan_equals_the_loop(batch, channels, states, length, selective_B, selective_C, with_D, with_z,
                                    with_bias, softplus, chunk, seed):
    """Outputs, last state and every input's gradient within 1e-4 in float32; channel counts
    across the kernel's 32-channel tasks, lengths across its checkpoint chunks."""
    full = {k: v.float() for k, v in inputs(batch, channels, states, length, True, seed).items()}
    fixed = {k: v.float() for k, v in inputs(batch, channels, states, length, False, seed).items()}
    args = {k: full[k] for k in ("u", "delta", "A")}
    args["B"] = full["B"] if selective_B else fixed["B"]
    args["C"] = full["C"] if selective_C else fixed["C"]
    if not softplus:  # delta must stay positive without softplus, as Mamba's is
        args["delta"] = args["delta"].abs() + 0.01
    for name, wanted in (("D", with_D), ("z", with_z), ("delta_bias", with_bias and softplus)):
        if wanted:
            args[name] = full[name]
    fused_vs_loop(args, chunk=chunk, delta_softplus=softplus)


@pytest.mark.parametrize("selective", [True, False])
def test_fused_gradcheck(selective):
    args = inputs(batch=2, channels=3, states=3, length=7, selective=selective, seed=11)
    names = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
    leaves = tuple(args[k].clone().requires_grad_() for k in names)
    assert torch.autograd.gradcheck(
        lambda *t: selective_scan_fused(*t, delta_softplus=True, return_last_state=True, chunk=3), leaves)


def test_fused_inference_without_checkpoints_equals_the_loop():
    args = {k: v.float() for k, v in inputs(batch=2, channels=40, states=16, length=100, seed=12).items()}
    with torch.no_grad():
        y, h = selective_scan_fused(**args, delta_softplus=True, return_last_state=True)
    y_ref, h_ref = selective_scan_reference(**args, delta_softplus=True, return_last_state=True)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(h, h_ref, rtol=1e-4, atol=1e-4)


def test_fused_scan_is_independent_of_the_thread_count():
    args = {k: v.float() for k, v in inputs(batch=3, channels=70, states=16, length=130, seed=13).items()}
    results = []
    threads = torch.get_num_threads()
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
            y, h = selective_scan_fused(**leaves, delta_softplus=True, return_last_state=True)
            (y.sin().sum() + h.sum()).backward()
            results.append([y, h] + [leaves[k].grad for k in args])
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results):
        assert torch.equal(one, two)


def test_fused_scan_falls_back_to_the_chunked_scan_with_one_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("ALIGNLIB_CACHE", str(tmp_path / "cache"))
    kernels.load.cache_clear()
    args = {k: v.float() for k, v in inputs(seed=14).items()}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = selective_scan(**args, delta_softplus=True, backend="fused")
            second = selective_scan(**args, delta_softplus=True)
    finally:
        kernels.load.cache_clear()
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == [
        f"alignlib: the C++ kernel 'selective_scan' is unavailable, using the pure-PyTorch fallback: "
        f"no C++ compiler found ({tmp_path / 'no-such-compiler'}; set CXX)"]
    expected = selective_scan_chunked(**args, delta_softplus=True)
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert not (tmp_path / "cache").exists()


def test_fused_scan_rejects_bad_options():
    args = {k: v.float() for k, v in inputs(seed=15).items()}
    with pytest.raises(ValueError, match="chunk: expected a positive int"):
        selective_scan_fused(**args, chunk=0)
    with pytest.raises(ValueError, match="runs on CPU tensors"):
        selective_scan_fused(**{k: v.to("meta") for k, v in args.items()})


def test_kernel_builds_once_into_its_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ALIGNLIB_CACHE", str(tmp_path))
    try:
        path = kernels.build("selective_scan")
    except kernels.KernelBuildError as error:
        pytest.skip(f"no working C++ compiler here: {error}")
    assert path.parent == tmp_path and list(tmp_path.iterdir()) == [path], "one library, no temporary file left"
    built = path.stat().st_mtime_ns
    assert kernels.build("selective_scan") == path and path.stat().st_mtime_ns == built, "the second call reuses it"
