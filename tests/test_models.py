"""The models against brute-force constructions: AlignMamba-1's aligned, interleaved sequence
built token by token, AlignMamba-2's alignment losses recomputed with GeomLoss and a triple-loop
MMD, no alignment at inference, and the ablation flags."""
import math

import pytest
import torch
from geomloss import SamplesLoss

from alignlib.align import mmd, ot
from alignlib.data import Batch
from alignlib.models.sentiment import AlignMamba2, ModelConfig, build_model
from alignlib.ssm.modality_mamba import ModalityAwareMamba

DIMS = {"text": 6, "audio": 5, "vision": 4}
LENGTHS = {"text": [7, 4, 5], "audio": [9, 6, 3], "vision": [8, 8, 5]}
NO_DROPOUT = dict(d_model=12, n_layers=1, d_state=4, dropout=0.0)


def make_batch(seed=0) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    features, masks = {}, {}
    for m, lengths in LENGTHS.items():
        steps = max(lengths)
        masks[m] = torch.arange(steps)[None, :] < torch.tensor(lengths)[:, None]
        features[m] = torch.randn(len(lengths), steps, DIMS[m], generator=generator) * masks[m][..., None]
    n = len(LENGTHS["text"])
    return Batch(features, masks, torch.randn(n, generator=generator), torch.ones(n, 3, dtype=torch.bool), list(range(n)))


def capture_inputs(module):
    """Record the first positional input of every call of ``module``."""
    seen = []
    module.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    return seen


def capture_outputs(module):
    seen = []
    module.register_forward_hook(lambda _, __, out: seen.append(out))
    return seen


def test_alignmamba1_stack_input_is_the_interleaved_aligned_sequence():
    torch.manual_seed(0)
    model = build_model("alignmamba1", DIMS, ModelConfig(**NO_DROPOUT)).eval()
    batch = make_batch()
    stack_input = capture_inputs(model.stack)
    with torch.no_grad():
        model(batch)
        projected = {m: model.inputs[m](batch.features[m]) for m in DIMS}
    expected = torch.zeros_like(stack_input[0])
    for b in range(3):
        text = projected["text"][b, : LENGTHS["text"][b]]
        for k, m in enumerate(("audio", "vision")):
            # every real audio/video token goes to its most cosine-similar real text token;
            # each text position gets the mean of what arrived (zero if nothing did)
            arrived = {j: [] for j in range(len(text))}
            for token in projected[m][b, : LENGTHS[m][b]]:
                similarity = [float(token @ t / (token.norm() * t.norm())) for t in text]
                arrived[max(range(len(text)), key=similarity.__getitem__)].append(token)
            for j, tokens in arrived.items():
                if tokens:
                    expected[b, 3 * j + k] = torch.stack(tokens).mean(0)
        for j in range(len(text)):
            expected[b, 3 * j + 2] = text[j]
    real = batch.masks["text"].repeat_interleave(3, dim=1)[..., None]  # padded text steps are not compared
    torch.testing.assert_close(stack_input[0] * real, expected, rtol=1e-5, atol=1e-6)


def brute_force_mmd2(x, y):
    gamma = 1.0 / x.shape[1]
    kernel = lambda p, q: math.exp(-gamma * float(((p - q) ** 2).sum()))
    mean = lambda s, t: sum(kernel(p, q) for p in s for q in t) / (len(s) * len(t))
    return mean(x, x) + mean(y, y) - 2 * mean(x, y)


def test_alignmamba2_alignment_losses_match_geomloss_and_a_brute_force_mmd():
    torch.manual_seed(0)
    config = ModelConfig(**NO_DROPOUT)
    model = build_model("alignmamba2", DIMS, config).train()
    batch = make_batch(1)
    unimodal = {m: capture_outputs(model.unimodal[m]) for m in DIMS}
    _, aux = model(batch)
    h = {m: seen[0][0].detach().double() for m, seen in unimodal.items()}  # a Block returns (hidden, aux)

    def cosine(x, y):  # (B, N, D), (B, M, D) -> (B, N, M), written independently of alignlib.align.ot
        return 1 - (x @ y.transpose(1, 2)) / (x.norm(dim=2)[:, :, None] * y.norm(dim=2)[:, None, :])

    sinkhorn = SamplesLoss("sinkhorn", blur=config.blur, diameter=2.0, cost=cosine, debias=False,
                           backend="tensorized")
    ot_total, mmd_total = 0.0, 0.0
    for m in ("audio", "vision"):
        for b in range(3):
            x, y = h[m][b, : LENGTHS[m][b]], h["text"][b, : LENGTHS["text"][b]]
            ot_total += float(sinkhorn(x[None], y[None])) / 3
            mmd_total += brute_force_mmd2(x, y) / 3
    assert aux["ot"].item() == pytest.approx(config.lambda_ot * ot_total, rel=1e-4)
    assert aux["mmd"].item() == pytest.approx(config.lambda_mmd * mmd_total, rel=1e-4)


def test_alignmamba2_inference_computes_no_alignment(monkeypatch):
    torch.manual_seed(0)
    model = build_model("alignmamba2", DIMS, ModelConfig(**NO_DROPOUT)).eval()
    batch = make_batch()

    def forbidden(*args, **kwargs):
        raise AssertionError("alignment computed at inference")

    monkeypatch.setattr(ot, "ot_distance", forbidden)
    monkeypatch.setattr(mmd, "mmd2", forbidden)
    prediction, aux = model(batch)
    assert prediction.shape == (3,) and aux == {}


@pytest.mark.parametrize("flags, aux_names, experts", [
    ({}, {"ot", "mmd"}, True),
    ({"align_loss": False}, set(), True),
    ({"moe": False}, {"ot", "mmd"}, False),
    ({"align_loss": False, "moe": False}, set(), False),
    ({"routing": "learned"}, {"ot", "mmd", "load_balance"}, True),
])
def test_alignmamba2_ablation_flags(flags, aux_names, experts):
    torch.manual_seed(0)
    model = build_model("alignmamba2", DIMS, ModelConfig(**NO_DROPOUT, **flags)).train()
    assert isinstance(model, AlignMamba2)
    assert any(isinstance(layer, ModalityAwareMamba) for layer in model.modules()) == experts
    prediction, aux = model(make_batch())
    assert set(aux) == aux_names
    (prediction.sum() + sum(aux.values(), torch.zeros(()))).backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_readouts_against_hand_pooling():
    from alignlib.models.sentiment import readout

    hidden = torch.randn(2, 5, 3, dtype=torch.float64)
    mask = torch.tensor([[True, True, True, True, False], [True, True, False, False, False]])
    ids = torch.tensor([[1, 1, 1, 0, 0], [2, 0, 0, 0, 0]])
    torch.testing.assert_close(readout(hidden, mask, ids, "last"), torch.stack([hidden[0, 3], hidden[1, 1]]))
    torch.testing.assert_close(readout(hidden, mask, ids, "mean"),
                               torch.stack([hidden[0, :4].mean(0), hidden[1, :2].mean(0)]))
    expected = torch.stack([(hidden[0, :3].mean(0) + hidden[0, 3]) / 2, (hidden[1, 0] + hidden[1, 1]) / 2])
    torch.testing.assert_close(readout(hidden, mask, ids, "modality_mean"), expected)


@pytest.mark.parametrize("name", ["alignmamba1", "alignmamba2", "concat"])
def test_readout_option_reaches_the_head(name):
    torch.manual_seed(0)
    outputs = []
    for how in ("mean", "modality_mean", "last"):
        torch.manual_seed(0)
        model = build_model(name, DIMS, ModelConfig(**NO_DROPOUT, readout=how)).eval()
        head_input = capture_inputs(model.head)
        model(make_batch())
        outputs.append(head_input[0])
    assert (outputs[0] - outputs[2]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="readout: unknown 'max'"):
        ModelConfig(readout="max")


def test_alignmamba1_without_local_ot_resamples_proportionally():
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = build_model("alignmamba1", DIMS, ModelConfig(**NO_DROPOUT, plan="proportional")).eval()
    batch = make_batch()
    stack_input = capture_inputs(model.stack)
    with torch.no_grad():
        model(batch)
        b = 0
        audio = model.inputs["audio"](batch.features["audio"][b:b + 1, :LENGTHS["audio"][b]])
        expected = F.adaptive_avg_pool1d(audio.transpose(1, 2), LENGTHS["text"][b]).transpose(1, 2)[0]
    torch.testing.assert_close(stack_input[0][b, 0:3 * LENGTHS["text"][b]:3], expected)


def test_alignmamba1_oracle_aligns_each_word_with_its_own_frames():
    torch.manual_seed(0)
    model = build_model("alignmamba1", DIMS, ModelConfig(**NO_DROPOUT, plan="oracle")).eval()
    batch = make_batch()
    with pytest.raises(ValueError, match="true frame-to-word tables"):
        model(batch)
    words, frames = LENGTHS["text"][0], LENGTHS["audio"][0]
    truth = {m: torch.full(batch.masks[m].shape, -1) for m in ("audio", "vision")}
    for m in truth:
        for b in range(batch.masks[m].shape[0]):
            n, w = int(batch.masks[m][b].sum()), int(batch.masks["text"][b].sum())
            truth[m][b, :n] = torch.arange(n) * w // n
    batch.alignment = truth
    stack_input = capture_inputs(model.stack)
    with torch.no_grad():
        model(batch)
        audio = model.inputs["audio"](batch.features["audio"][0, :frames])
    for j in range(words):  # word j's audio slot is the mean of the frames the table gives it
        expected = audio[truth["audio"][0, :frames] == j].mean(0)
        torch.testing.assert_close(stack_input[0][0, 3 * j], expected)


def test_alignmamba1_takes_every_registered_plan_method_and_learned(monkeypatch):
    """The plans come from alignlib.align.ot's registry: a method registered there (here a uniform
    plan) is a plan of AlignMamba-1, computed by ot.plan on the projected tokens without gradient;
    an unknown name is one line naming the choices."""
    from alignlib.common.errors import UserError
    from alignlib.common.sequences import pack
    from alignlib.models.sentiment import alignmamba1_plans

    assert set(alignmamba1_plans()) == set(ot.PLAN_METHODS) | {"learned"}
    assert {"relaxed", "proportional", "oracle", "shuffled", "learned"} <= set(alignmamba1_plans())

    def uniform(x, y, x_mask=None, y_mask=None):
        weights = y_mask.double() / y_mask.sum(1, keepdim=True)
        return (x_mask.double()[..., None] * weights[:, None, :]) / x_mask.sum(1)[:, None, None]

    monkeypatch.setitem(ot.PLAN_METHODS, "uniform", ot.PlanMethod(uniform, ()))
    torch.manual_seed(0)
    model = build_model("alignmamba1", DIMS, ModelConfig(**NO_DROPOUT, plan="uniform")).eval()
    batch = make_batch()
    assert not model.needs_alignment
    with torch.no_grad():
        h = model.project(batch)
        plans, losses = model.plans(batch, h)
    text, text_mask, _ = pack(h["text"], batch.masks["text"])
    for m in ("audio", "vision"):
        torch.testing.assert_close(plans[m], uniform(h[m], text, batch.masks[m], text_mask))
    assert losses == {}
    assert build_model("alignmamba1", DIMS, ModelConfig(**NO_DROPOUT, plan="shuffled")).needs_alignment
    with pytest.raises(UserError, match=r"plan: unknown 'greedy'; choose one of \(.*'uniform', 'learned'\)"):
        ModelConfig(plan="greedy")


def test_the_load_balance_weight_is_a_model_option():
    """``lambda_balance`` (default 0.01) weights the sum of the fusion blocks' own load-balancing losses."""
    for weight in (None, 0.05):
        options = {} if weight is None else {"lambda_balance": weight}
        torch.manual_seed(0)
        model = build_model("alignmamba2", DIMS, ModelConfig(**{**NO_DROPOUT, "n_layers": 2}, routing="learned", **options))
        blocks = [capture_outputs(block) for block in model.fusion]
        _, aux = model.train()(make_batch())
        balance = sum(seen[0][1]["load_balance"] for seen in blocks)
        torch.testing.assert_close(aux["load_balance"], (weight or 0.01) * balance)
