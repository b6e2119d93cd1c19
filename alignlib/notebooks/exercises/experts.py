"""The checks of notebook 04 · experts and coupling."""
from __future__ import annotations

import math

import torch

from alignlib.notebooks.exercises.core import (Mismatch, as_number, call_answer, compare, compare_number,
                                               exercise, seeded)


@exercise
def check_route_by_modality(answer) -> str:
    """``route_by_modality(tokens (B, L, d_in), modality (B, L), experts (M, d_out, d_in),
    shared (d_out, d_in)) -> (B, L, d_out)`` against
    :class:`alignlib.ssm.modality_mamba.ExpertLinear`."""
    from alignlib.ssm.modality_mamba import ExpertLinear

    generator = seeded(13)
    batch, length, d_in, d_out, experts = 2, 6, 5, 7, 3
    layer = ExpertLinear(d_in, d_out, experts).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(experts, d_out, d_in, generator=generator, dtype=torch.float64))
        layer.shared.weight.copy_(torch.randn(d_out, d_in, generator=generator, dtype=torch.float64))
    tokens = torch.randn(batch, length, d_in, generator=generator, dtype=torch.float64)
    modality = torch.tensor([[0, 0, 1, 1, 2, 2], [2, 1, 0, 2, 1, 0]])
    weights, shared = layer.weight.detach(), layer.shared.weight.detach()
    case = f"{batch} x {length} tokens of {experts} modalities"
    got = call_answer(answer, case, tokens, modality, weights, shared)
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
    compare(got, expected, case, mistakes, axes=" (B, L, d_out)")
    return "matches alignlib.ssm.modality_mamba.ExpertLinear with deterministic routing"


@exercise
def check_load_balancing_loss(answer) -> str:
    """``load_balancing_loss(probabilities (B, L, M)) -> float`` against the loss
    :class:`alignlib.ssm.modality_mamba.Router` returns with those gate probabilities."""
    from alignlib.ssm.modality_mamba import Router

    generator = seeded(14)
    router = Router(6, 3).double()
    with torch.no_grad():
        router.gate.weight.copy_(2 * torch.randn(3, 6, generator=generator, dtype=torch.float64))
        _, expected = router(torch.randn(2, 10, 6, generator=generator, dtype=torch.float64))
    probabilities = router.last_probabilities
    case = "20 tokens, 3 experts"
    got = as_number(call_answer(answer, case, probabilities), case)
    experts = probabilities.shape[-1]
    mean_probability = probabilities.flatten(0, 1).mean(0)
    mistakes = {
        "missing the factor M (the number of experts): a uniform load should give 1": expected.item() / experts,
        "f_m is the share of tokens whose first choice is m (a count of argmaxes), not the mean probability":
            experts * mean_probability.pow(2).sum().item(),
    }
    compare_number(got, expected.item(), case, mistakes)
    return "matches the load-balancing loss of alignlib.ssm.modality_mamba.Router"


@exercise
def check_blowup_coupling(answer) -> str:
    """``blowup_coupling(a (M,), delta) -> c``: at coupling ``c`` the summed state of M scalar chains
    with decay rates ``a`` and step ``delta`` must neither grow nor decay, measured with
    :func:`alignlib.ssm.coupled.coupled_scan_reference` after a pulse."""
    from alignlib.ssm.coupled import coupled_scan_reference

    for case, (rates, delta) in {"a = (-0.5, -1, -2), delta 0.1": ((-0.5, -1.0, -2.0), 0.1),
                                 "a = (-1, -3), delta 0.5": ((-1.0, -3.0), 0.5)}.items():
        a = torch.tensor(rates, dtype=torch.float64)
        got = as_number(call_answer(answer, case, a, delta), case)
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


@exercise
def check_modality_information_bits(answer) -> str:
    """``modality_information_bits(modality, expert) -> float``: ``I(modality; expert)`` in bits
    against scikit-learn's ``mutual_info_score`` (nats) divided by ``ln 2``."""
    from sklearn.metrics import mutual_info_score

    generator = seeded(15)
    modality = torch.arange(3).repeat_interleave(40)
    noisy = torch.where(torch.rand(120, generator=generator) < 0.7, modality, torch.randint(0, 3, (120,), generator=generator))
    cases = {"an expert that mostly follows the modality": (modality, noisy),
             "two experts, four unbalanced modalities": (torch.randint(0, 4, (90,), generator=generator).sort().values,
                                                         torch.randint(0, 2, (90,), generator=generator))}
    for case, (labels, expert) in cases.items():
        got = as_number(call_answer(answer, case, labels, expert), case)
        nats = mutual_info_score(labels.numpy(), expert.numpy())
        counts = torch.bincount(labels).double() / len(labels)
        mistakes = {"in nats: divide by ln 2 for bits": nats,
                    "that is the entropy of the modality, the most the expert could tell about it":
                        -torch.special.xlogy(counts, counts).sum().item() / math.log(2)}
        compare_number(got, nats / math.log(2), case, mistakes, atol=1e-12)
    return "matches scikit-learn's mutual_info_score / ln 2 in two cases"
