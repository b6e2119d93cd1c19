"""The Modality-Aware Mamba layer against per-token loops and a vanilla Mamba with summed weights."""
import pytest
import torch
import torch.nn.functional as F

from alignlib.ssm.mamba import Mamba
from alignlib.ssm.modality_mamba import ExpertLinear, ModalityAwareMamba, Router, record_experts


def tokens_and_ids(batch=2, length=9, d=16, modalities=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, length, d, generator=g, dtype=torch.float64)
    return hidden, torch.randint(0, modalities, (batch, length), generator=g)


def test_expert_projection_equals_the_per_token_loop():
    torch.manual_seed(0)
    layer = ExpertLinear(16, 8, n_experts=3, bias=True).double()
    hidden, modality = tokens_and_ids()
    out = layer(hidden, modality)
    for b in range(2):
        for t in range(9):
            m = modality[b, t].item()
            expected = layer.weight[m] @ hidden[b, t] + layer.bias[m] + layer.shared(hidden[b, t])
            torch.testing.assert_close(out[b, t], expected)


def test_gated_projection_equals_the_per_token_loop():
    torch.manual_seed(1)
    layer = ExpertLinear(16, 8, n_experts=3).double()
    hidden, _ = tokens_and_ids(seed=1)
    gates = torch.softmax(torch.randn(2, 9, 3, dtype=torch.float64), dim=-1)
    gates[..., 1] = 0.0  # an expert some tokens do not use
    out = layer(hidden, gates=gates)
    for b in range(2):
        for t in range(9):
            expected = sum(gates[b, t, m] * (layer.weight[m] @ hidden[b, t]) for m in range(3)) + layer.shared(hidden[b, t])
            torch.testing.assert_close(out[b, t], expected)


def test_one_modality_is_a_vanilla_mamba_with_summed_weights():
    torch.manual_seed(2)
    aware = ModalityAwareMamba(16, n_modalities=1).double()
    vanilla = Mamba(16).double()
    state = {k: v for k, v in aware.state_dict().items() if not k.startswith(("in_proj", "out_proj"))}
    state["in_proj.weight"] = aware.in_proj.weight[0] + aware.in_proj.shared.weight
    state["out_proj.weight"] = aware.out_proj.weight[0] + aware.out_proj.shared.weight
    vanilla.load_state_dict(state)
    hidden, _ = tokens_and_ids(modalities=1, seed=2)
    torch.testing.assert_close(aware(hidden, torch.zeros(2, 9, dtype=torch.long))[0], vanilla(hidden))


def test_modalities_are_processed_differently_and_the_core_is_shared():
    torch.manual_seed(3)
    aware = ModalityAwareMamba(16, n_modalities=3).double()
    hidden, _ = tokens_and_ids(seed=3)
    outputs = [aware(hidden, torch.full((2, 9), m))[0] for m in range(3)]
    assert (outputs[0] - outputs[1]).abs().max() > 1e-3
    names = {name for name, _ in aware.named_parameters()}
    assert {"conv1d.weight", "x_proj.weight", "dt_proj.weight", "A_log", "D"} <= names
    assert "in_proj.weight" in names and tuple(aware.in_proj.weight.shape) == (3, 64, 16)


def test_router_gates_and_uniform_load_balancing_loss():
    router = Router(16, n_experts=4, top_k=2).double()
    hidden, _ = tokens_and_ids(seed=4)
    gates, _ = router(hidden)
    assert ((gates > 0).sum(-1) == 2).all()
    torch.testing.assert_close(gates.sum(-1), torch.ones(2, 9, dtype=torch.float64))
    torch.nn.init.zeros_(router.gate.weight)  # uniform probabilities: importance 1/M; ties pick expert 0
    _, balance = router(hidden)
    assert balance.item() == pytest.approx(1.0)


def test_learned_routing_trains_and_reports_its_aux_loss():
    torch.manual_seed(5)
    aware = ModalityAwareMamba(16, n_modalities=3, routing="learned", top_k=1).double()
    hidden, modality = tokens_and_ids(seed=5)
    out, aux = aware(hidden, modality)
    (out.square().mean() + 0.01 * aux["load_balance"]).backward()
    assert aux["load_balance"].item() >= 2.0 - 1e-9, "n * sum f_m P_m >= 1 per router (two routers) for top-1 routing"
    assert aware.in_router.gate.weight.grad.abs().sum() > 0
    assert not hasattr(aware, "aux_loss"), "auxiliary losses are returned, not stored on the module"
    _, deterministic = ModalityAwareMamba(16, n_modalities=3).double()(hidden, modality)
    assert deterministic == {}


def test_load_balancing_counts_only_real_tokens():
    router = Router(16, n_experts=3, top_k=1).double()
    hidden, _ = tokens_and_ids(seed=8)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, 5:] = False
    _, masked = router(hidden, mask)
    _, real_only = router(torch.cat([hidden[0, :5], hidden[1]])[None])
    torch.testing.assert_close(masked, real_only)


@pytest.mark.parametrize("routing", ["modality", "learned"])
def test_steps_equal_the_full_forward(routing):
    torch.manual_seed(9)
    aware = ModalityAwareMamba(16, n_modalities=3, routing=routing, d_state=4).double()
    hidden, modality = tokens_and_ids(seed=9)
    full, _ = aware(hidden, modality)
    cache = aware.allocate_cache(2, dtype=torch.float64)
    steps = []
    for t in range(hidden.shape[1]):
        out, cache = aware.step(hidden[:, t], cache, modality=modality[:, t])
        steps.append(out)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, rtol=1e-10, atol=1e-10)


def test_record_experts_reports_contributions_per_layer():
    torch.manual_seed(6)
    aware = ModalityAwareMamba(16, n_modalities=3).double()
    hidden, modality = tokens_and_ids(seed=6)
    with record_experts(aware) as records:
        aware(hidden, modality)
    assert set(records) == {"in_proj", "out_proj"}
    norms = records["in_proj"]
    assert norms.shape == (2, 9, 4)
    own = norms[..., :3].gather(-1, modality[..., None])[..., 0]
    expected_own = torch.stack([F.linear(hidden[b, t], aware.in_proj.weight[modality[b, t]]).norm()
                                for b in range(2) for t in range(9)]).view(2, 9)
    torch.testing.assert_close(own, expected_own)
    assert (norms[..., :3].sum(-1) - own).abs().max() == 0, "other experts contribute nothing"
    torch.testing.assert_close(norms[..., 3], aware.in_proj.shared(hidden).norm(dim=-1))
    assert not aware.in_proj.recording


@pytest.mark.parametrize("modality, error, message", [
    (torch.full((2, 9), 3), ValueError, r"ids must be in \[0, 3\)"),
    (torch.full((2, 9), -1), ValueError, r"ids must be in \[0, 3\)"),
    (torch.zeros(2, 8, dtype=torch.long), ValueError, r"expected shape \(2, 9\)"),
    (torch.zeros(2, 9), TypeError, "integer tensor"),
])
def test_bad_modality_ids(modality, error, message):
    hidden, _ = tokens_and_ids()
    with pytest.raises(error, match=message):
        ModalityAwareMamba(16, n_modalities=3).double()(hidden, modality)


def test_unknown_routing():
    with pytest.raises(ValueError, match="unknown routing"):
        ModalityAwareMamba(16, n_modalities=3, routing="random")
