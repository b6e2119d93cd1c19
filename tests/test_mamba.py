"""The Mamba block: mamba-ssm's parameter layout and initialisation, recurrent steps equal to the
full forward, the two CPU scan backends equal, and clear errors."""
import math

import pytest
import torch

from alignlib.ssm.mamba import Block, Mamba, MambaLayer, MambaStack
from alignlib.ssm.selective_scan import mamba_ssm_kernel

# mamba_ssm.Mamba(d_model=32) (v1 defaults: d_state 16, d_conv 4, expand 2, dt_rank ceil(32/16) = 2)
MAMBA_SSM_LAYOUT = {
    "A_log": (64, 16), "D": (64,), "in_proj.weight": (128, 32), "conv1d.weight": (64, 1, 4), "conv1d.bias": (64,),
    "x_proj.weight": (2 + 32, 64), "dt_proj.weight": (64, 2), "dt_proj.bias": (64,), "out_proj.weight": (32, 64),
}


def test_state_dict_has_mamba_ssm_names_and_shapes():
    layout = {name: tuple(t.shape) for name, t in Mamba(32).state_dict().items()}
    assert layout == MAMBA_SSM_LAYOUT


def test_state_dict_loads_into_mamba_ssm_where_it_imports():
    try:
        from mamba_ssm import Mamba as ReferenceMamba
    except Exception as error:
        pytest.skip(f"mamba-ssm does not import here: {type(error).__name__}: {error}")
    ours = Mamba(32)
    reference = ReferenceMamba(d_model=32)
    reference.load_state_dict(ours.state_dict())
    ours.load_state_dict(reference.state_dict())


def test_initialisation():
    torch.manual_seed(0)
    block = Mamba(32, dt_min=0.001, dt_max=0.1)
    torch.testing.assert_close(-torch.exp(block.A_log.detach()), -torch.arange(1, 17.0).repeat(64, 1))
    dt = torch.nn.functional.softplus(block.dt_proj.bias)
    assert dt.min() >= 0.001 * (1 - 1e-4) and dt.max() <= 0.1 * (1 + 1e-4)
    bound = block.dt_rank**-0.5
    assert block.dt_proj.weight.abs().max() <= bound
    assert torch.equal(block.D, torch.ones(64))


def test_recurrent_steps_equal_the_full_forward():
    torch.manual_seed(1)
    block = Mamba(16, d_state=8).double()
    hidden = torch.randn(2, 11, 16, dtype=torch.float64)
    full = block(hidden)
    cache = block.allocate_cache(2, dtype=torch.float64)
    steps = []
    for t in range(11):
        out, cache = block.step(hidden[:, t], cache)
        steps.append(out)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("prefix", [2, 4, 7])
def test_forward_cache_continues_with_steps(prefix):
    torch.manual_seed(2)
    block = Mamba(16, d_state=4).double()
    hidden = torch.randn(1, 10, 16, dtype=torch.float64)
    full = block(hidden)
    out, cache = block(hidden[:, :prefix], return_cache=True)
    rest = []
    for t in range(prefix, 10):
        step_out, cache = block.step(hidden[:, t], cache)
        rest.append(step_out)
    torch.testing.assert_close(torch.cat([out, torch.stack(rest, dim=1)], dim=1), full, rtol=1e-10, atol=1e-10)


def test_backends_agree_and_gradients_flow():
    torch.manual_seed(3)
    hidden = torch.randn(2, 13, 16)
    fast, loop = Mamba(16, scan_backend="chunked"), Mamba(16, scan_backend="reference")
    loop.load_state_dict(fast.state_dict())
    torch.testing.assert_close(fast(hidden), loop(hidden), rtol=1e-5, atol=1e-5)
    fast(hidden).square().mean().backward()
    loop(hidden).square().mean().backward()
    for (name, p_fast), p_loop in zip(fast.named_parameters(), loop.parameters()):
        torch.testing.assert_close(p_fast.grad, p_loop.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_stack_forward_and_steps():
    torch.manual_seed(4)
    stack = MambaStack(16, n_layers=3, d_state=4).double().eval()
    hidden = torch.randn(2, 6, 16, dtype=torch.float64)
    full = stack(hidden)
    assert full.shape == (2, 6, 16)
    caches = stack.allocate_cache(2, dtype=torch.float64)
    outs = []
    for t in range(6):
        out, caches = stack.step(hidden[:, t], caches)
        outs.append(out)
    torch.testing.assert_close(torch.stack(outs, 1), full, rtol=1e-9, atol=1e-9)


def test_padding_anywhere_is_invisible_to_real_tokens():
    """A row with padding in the middle gives its real tokens exactly the outputs of the row
    without the padding (the causal conv and the scan never read padding), and zeros elsewhere."""
    torch.manual_seed(7)
    block = Mamba(16, d_state=4).double()
    hidden = torch.randn(3, 11, 16, dtype=torch.float64)
    mask = torch.ones(3, 11, dtype=torch.bool)
    mask[0, [0, 3, 4]] = False  # padding before and inside
    mask[1, 6:] = False  # trailing padding
    out = block(hidden, mask)
    for b in range(3):
        real = mask[b].nonzero()[:, 0]
        torch.testing.assert_close(out[b, real], block(hidden[b:b + 1, real])[0], rtol=1e-12, atol=1e-12)
        assert (out[b, ~mask[b]] == 0).all()
    zeroed = hidden.masked_fill(~mask[..., None], 0.0)
    assert (Mamba.forward(block, zeroed)[0, 5] - out[0, 5]).abs().max() > 1e-6, "zeroing padding is not enough"
    with pytest.raises(ValueError, match="return_cache"):
        block(hidden, mask, return_cache=True)
    with pytest.raises(ValueError, match="mask: expected a bool tensor"):
        block(hidden, mask[:, :5])


def test_block_wraps_any_mixer_and_returns_aux_losses():
    class Scale(torch.nn.Module):
        def forward(self, hidden, mask=None, factor=1.0):
            return factor * hidden, {"size": hidden.abs().mean()}

    block = Block(4, Scale()).double()
    hidden = torch.randn(2, 3, 4, dtype=torch.float64)
    out, aux = block(hidden, factor=2.0)
    torch.testing.assert_close(out, hidden + 2.0 * block.norm(hidden))
    torch.testing.assert_close(aux["size"], block.norm(hidden).abs().mean())
    layer = MambaLayer(16, d_state=4).double()
    hidden = torch.randn(2, 5, 16, dtype=torch.float64)
    out, aux = layer(hidden)
    assert aux == {}
    torch.testing.assert_close(out, hidden + layer.mixer(layer.norm(hidden)))


@pytest.mark.parametrize("hidden, message", [
    (torch.randn(2, 5), "expected \\(B, L, d_model\\)"),
    (torch.randn(2, 5, 8), "d_model=16"),
    (torch.randn(2, 0, 16), "empty sequence"),
    (torch.full((1, 3, 16), math.nan), "NaN or infinite"),
])
def test_bad_input(hidden, message):
    with pytest.raises(ValueError, match=message):
        Mamba(16)(hidden)


@pytest.mark.skipif(not torch.cuda.is_available() or mamba_ssm_kernel() is None,
                    reason="needs a CUDA GPU and mamba-ssm (pip install -e .[cuda])")
def test_block_on_the_cuda_kernel_equals_the_chunked_scan():
    torch.manual_seed(5)
    block = Mamba(64).cuda()
    hidden = torch.randn(2, 128, 64, device="cuda")
    kernel_out = block(hidden)
    block.scan_backend = "chunked"
    torch.testing.assert_close(kernel_out, block(hidden), rtol=1e-3, atol=1e-3)


def test_causal_depthwise_conv_equals_conv1d():
    from alignlib.ssm.mamba import causal_depthwise_conv

    torch.manual_seed(11)
    for length in (1, 3, 4, 17):
        conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3).double()
        x = torch.randn(2, 6, length, dtype=torch.float64, requires_grad=True)
        ours = causal_depthwise_conv(x, conv.weight, conv.bias)
        reference = conv(x)[..., :length]
        torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
        grad = torch.randn_like(ours)
        mine = torch.autograd.grad(ours, (x, conv.weight, conv.bias), grad)
        theirs = torch.autograd.grad(reference, (x, conv.weight, conv.bias), grad)
        for a, b in zip(mine, theirs):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
