"""Coupled Mamba: the summed-state parallel scan against the sequential oracle, the one-modality
case against the selective scan, and the layer and fusion model."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from alignlib.ssm.coupled import CoupledMambaLayer, coupled_scan, coupled_scan_reference
from alignlib.ssm.selective_scan import selective_scan_reference


def coupled_inputs(modalities=3, batch=2, channels=4, states=3, length=6, seed=0, dtype=torch.float64, stable=False):
    """Random coupled-scan inputs. ``stable``: delta |A| >= log(M) + 0.1, so sum_m Abar < 1 and the
    summed state cannot grow (otherwise it may: the coupled transition sums M decays)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    floor = math.log(modalities) + 0.1 if stable else 0.0
    return dict(u=r(modalities, batch, channels, length),
                delta=torch.nn.functional.softplus(r(modalities, batch, channels, length)) * 0.5 + floor,
                A=-torch.exp(r(modalities, channels, states)) - (1.0 if stable else 0.0),
                B=r(modalities, batch, states, length), C=r(modalities, batch, states, length))


@settings(max_examples=20, deadline=None)
@given(modalities=st.integers(1, 4), length=st.integers(1, 20), seed=st.integers(0, 1000))
def test_parallel_equals_loop_outputs_and_gradients(modalities, length, seed):
    args = {k: v.float() for k, v in coupled_inputs(modalities, length=length, seed=seed, stable=True).items()}
    loop = {k: v.clone().requires_grad_() for k, v in args.items()}
    fast = {k: v.clone().requires_grad_() for k, v in args.items()}
    y_loop, y_fast = coupled_scan_reference(**loop), coupled_scan(**fast)
    torch.testing.assert_close(y_fast, y_loop, rtol=1e-4, atol=1e-4)
    weights = torch.randn(y_loop.shape, generator=torch.Generator().manual_seed(seed))
    (y_loop * weights).sum().backward()
    (y_fast * weights).sum().backward()
    for name in args:
        torch.testing.assert_close(fast[name].grad, loop[name].grad, rtol=1e-4, atol=1e-4, msg=name)


def test_growing_states_agree_relative_to_their_scale():
    """With sum_m Abar > 1 the states grow (here to ~1e5); the two scans still agree to float32's
    relative precision."""
    args = {k: v.float() for k, v in coupled_inputs(4, length=11, seed=1).items()}
    y_loop, y_fast = coupled_scan_reference(**args), coupled_scan(**args)
    assert y_loop.abs().max() > 1e4
    torch.testing.assert_close(y_fast, y_loop, rtol=1e-4, atol=1e-5 * y_loop.abs().max().item())


def test_coupling_factor_scales_the_transition():
    args = coupled_inputs(seed=9)
    _, states = coupled_scan(**args, return_states=True, coupling=1 / 3)
    decay = torch.exp(torch.einsum("mbdl,mdn->mlbdn", args["delta"], args["A"])) / 3
    drive = torch.einsum("mbdl,mbnl->mlbdn", args["delta"] * args["u"], args["B"])
    torch.testing.assert_close(states[:, 4], decay[:, 4] * states[:, 3].sum(0) + drive[:, 4])
    torch.testing.assert_close(coupled_scan(**args, coupling=0.5), coupled_scan_reference(**args, coupling=0.5))


def test_the_layer_stays_finite_over_long_sequences_at_initialisation():
    torch.manual_seed(6)
    layer = CoupledMambaLayer(16, 3, d_state=4)
    hiddens = [torch.randn(2, 400, 16, requires_grad=True) for _ in range(3)]
    outputs = layer(hiddens)
    sum(o.sum() for o in outputs).backward()
    assert all(torch.isfinite(o).all() for o in outputs) and all(torch.isfinite(h.grad).all() for h in hiddens)


def test_one_modality_is_the_selective_scan():
    args = coupled_inputs(modalities=1, seed=1)
    expected = selective_scan_reference(args["u"][0], args["delta"][0], args["A"][0], args["B"][0], args["C"][0])
    torch.testing.assert_close(coupled_scan(**args)[0], expected)
    torch.testing.assert_close(coupled_scan_reference(**args)[0], expected)


def test_states_follow_the_equations():
    args = coupled_inputs(seed=2)
    _, states = coupled_scan(**args, return_states=True)  # (M, L, B, D, N)
    decay = torch.exp(torch.einsum("mbdl,mdn->mlbdn", args["delta"], args["A"]))
    drive = torch.einsum("mbdl,mbnl->mlbdn", args["delta"] * args["u"], args["B"])
    for t in range(1, 6):
        expected = decay[:, t] * states[:, t - 1].sum(0) + drive[:, t]
        torch.testing.assert_close(states[:, t], expected)


def test_a_pulse_spreads_into_the_other_chains():
    args = coupled_inputs(seed=3)
    args["u"] = torch.zeros_like(args["u"])
    args["u"][0, :, :, 2] = 1.0  # a pulse in modality 0 at t = 2
    _, states = coupled_scan(**args, return_states=True)
    assert states[1:, :3].abs().max() == 0, "nothing before the pulse reaches it"
    assert states[1:, 3].abs().min() > 0, "one step later every other chain holds it"


def test_layer_parallel_equals_loop_and_rejects_misaligned_sequences():
    torch.manual_seed(4)
    parallel = CoupledMambaLayer(16, 3, d_state=4).double()
    loop = CoupledMambaLayer(16, 3, d_state=4, scan="loop").double()
    loop.load_state_dict(parallel.state_dict())
    hiddens = [torch.randn(2, 7, 16, dtype=torch.float64) for _ in range(3)]
    for a, b in zip(parallel(hiddens), loop(hiddens)):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="time-aligned sequences of one shape"):
        parallel([torch.randn(2, 7, 16), torch.randn(2, 6, 16), torch.randn(2, 7, 16)])
    with pytest.raises(ValueError, match="expected 3 modality sequences"):
        parallel(hiddens[:2])


def test_layer_with_padding_equals_the_layer_on_the_real_steps():
    """Padding anywhere in the (time-aligned) rows: real steps see exactly the unpadded sequence."""
    torch.manual_seed(5)
    layer = CoupledMambaLayer(16, 3, d_state=4).double()
    hiddens = [torch.randn(2, 9, 16, dtype=torch.float64) for _ in range(3)]
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, [1, 4, 5]] = False
    mask[1, 7:] = False
    outputs = layer(hiddens, mask)
    for b in range(2):
        real = mask[b].nonzero()[:, 0]
        alone = layer([h[b:b + 1, real] for h in hiddens])
        for out, ref, h in zip(outputs, alone, hiddens):
            torch.testing.assert_close(out[b, real], ref[0])
            torch.testing.assert_close(out[b, ~mask[b]], h[b, ~mask[b]])  # padded steps keep their input


def test_bad_shapes():
    args = coupled_inputs()
    with pytest.raises(ValueError, match="B: expected shape"):
        coupled_scan(**{**args, "B": args["B"][:, :, :, :-1]})
    with pytest.raises(ValueError, match="positive entries"):
        coupled_scan(**{**args, "A": -args["A"]})
