"""Every registered model is invariant to padding and to batch composition.

A clip's prediction (eval mode) and each auxiliary loss (train mode, dropout 0) must not change
when padding (mask False, random features) is inserted anywhere in any modality, nor when the clip
shares its batch with other clips. The reference is the clip alone, with no padding at all.
"""
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from alignlib.data import Batch
from alignlib.models.sentiment import MODELS, ModelConfig, build_model

DIMS = {"text": 5, "audio": 4, "vision": 3}
CONFIG = dict(d_model=8, n_layers=2, d_state=4, dropout=0.0)
MODEL_OPTIONS = {name: {} for name in MODELS} | {"alignmamba2-learned": {"routing": "learned"},
                                                 **{f"alignmamba1-{plan}": {"plan": plan}
                                                    for plan in ("proportional", "oracle", "shuffled", "learned")},
                                                 "alignmamba1-no_word": {"plan": "learned", "no_word": True},
                                                 "alignmamba1-time_prior": {"plan": "time_prior", "blur": 0.3}}


def build(variant: str):
    name = variant.split("-")[0]
    torch.manual_seed(0)
    return build_model(name, DIMS, ModelConfig(**CONFIG, **MODEL_OPTIONS[variant])).double()


def clip(seed: int) -> dict:
    """One clip: ``{modality: (T_m, d_m)}`` real tokens only, 1-6 words and as many to 8 frames (a
    monotone alignment needs a frame a word), and ``{"truth": {m: (T_m,)}}`` a monotone frame-to-word map."""
    generator = torch.Generator().manual_seed(seed)
    words = int(torch.randint(1, 7, (1,), generator=generator))
    lengths = [words, *torch.randint(words, 9, (2,), generator=generator).tolist()]
    tokens = {m: torch.randn(n, DIMS[m], generator=generator, dtype=torch.float64) for m, n in zip(DIMS, lengths)}
    extra = {m: torch.randint(0, words, (n - words,), generator=generator) for m, n in zip(DIMS, lengths)}
    return tokens | {"truth": {m: torch.cat([torch.arange(words), extra[m]]).sort().values for m in ("audio", "vision")}}


def batch_of(clips: list[dict], pads: list[dict] | None = None, seed: int = 0) -> Batch:
    """Clips padded to a common length; ``pads[i][m] = (positions, extra)`` inserts padding tokens
    (random features, mask False) before the given real positions and ``extra`` more at the end."""
    generator = torch.Generator().manual_seed(seed + 1000)
    features, masks, alignment = {}, {}, {}
    for m in DIMS:
        rows = []
        for i, c in enumerate(clips):
            tokens, mask = [], []
            inside, extra = (pads[i][m] if pads else ((), 0))
            for t, token in enumerate(c[m]):
                for _ in range(inside.count(t)):
                    tokens.append(torch.randn(DIMS[m], generator=generator, dtype=torch.float64))
                    mask.append(False)
                tokens.append(token)
                mask.append(True)
            for _ in range(extra):
                tokens.append(torch.randn(DIMS[m], generator=generator, dtype=torch.float64) * 5)
                mask.append(False)
            rows.append((torch.stack(tokens), torch.tensor(mask)))
        length = max(len(r[1]) for r in rows)
        features[m] = torch.stack([torch.cat([x, torch.randn(length - len(x), DIMS[m], generator=generator,
                                                             dtype=torch.float64)]) for x, _ in rows])
        masks[m] = torch.stack([torch.cat([k, torch.zeros(length - len(k), dtype=torch.bool)]) for _, k in rows])
    words = [masks["text"][i].nonzero().flatten() for i in range(len(clips))]  # each real word's position
    for m in ("audio", "vision"):
        alignment[m] = torch.full(masks[m].shape, -1)
        for i, c in enumerate(clips):
            alignment[m][i, masks[m][i]] = words[i][c["truth"][m]]
    n = len(clips)
    return Batch(features, masks, torch.zeros(n, dtype=torch.float64), torch.ones(n, 3, dtype=torch.bool), list(range(n)),
                 alignment)


def predict(model, batch):
    model.eval()
    with torch.no_grad():
        return model(batch)[0]


def aux_losses(model, batch):
    model.train()
    with torch.no_grad():
        return {k: float(v.detach()) for k, v in model(batch)[1].items()}


NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)  # a failure prints its example; shrinking costs minutes
pad_spec = st.fixed_dictionaries({m: st.tuples(st.lists(st.integers(0, 5), max_size=3), st.integers(0, 6))
                                  for m in DIMS})


@settings(max_examples=6, deadline=None, phases=NO_SHRINK)
@given(seed=st.integers(0, 10_000), pads=pad_spec)
def test_padding_anywhere_changes_nothing(seed, pads):
    target = clip(seed)
    alone = batch_of([target])
    padded = batch_of([target], [pads], seed=seed)
    for variant in MODEL_OPTIONS:
        model = build(variant)
        torch.testing.assert_close(predict(model, padded), predict(model, alone), rtol=0, atol=1e-6,
                                   msg=lambda m, v=variant: f"{v}: prediction changed by padding\n{m}")
        expected, got = aux_losses(model, alone), aux_losses(model, padded)
        assert got.keys() == expected.keys(), variant
        for name in expected:
            assert abs(got[name] - expected[name]) <= 1e-6 * max(1.0, abs(expected[name])), (variant, name)


@settings(max_examples=4, deadline=None, phases=NO_SHRINK)
@given(seeds=st.lists(st.integers(0, 10_000), min_size=2, max_size=4, unique=True), position=st.integers(0, 3))
def test_batch_composition_changes_nothing(seeds, position):
    clips = [clip(s) for s in seeds]
    position = position % len(clips)
    for variant in MODEL_OPTIONS:
        model = build(variant)
        together = predict(model, batch_of(clips))
        alone = predict(model, batch_of([clips[position]]))
        torch.testing.assert_close(together[position:position + 1], alone, rtol=0, atol=1e-6,
                                   msg=lambda m, v=variant: f"{v}: prediction depends on the batch\n{m}")


def test_the_check_can_fail():
    """Mid-sequence padding that a model is told is real does change the prediction."""
    target = clip(3)
    padded = batch_of([target], [{m: ((1,), 2) for m in DIMS}])
    lying = Batch(padded.features, {m: torch.ones_like(k) for m, k in padded.masks.items()}, padded.labels,
                  padded.present, padded.ids, padded.alignment)
    for variant in MODEL_OPTIONS:
        model = build(variant)
        assert (predict(model, lying) - predict(model, batch_of([target]))).abs().max() > 1e-4, variant
