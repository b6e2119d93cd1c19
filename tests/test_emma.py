"""EMMA at teaching scale against independent sources: patches by explicit slicing, padding against
the unpadded question run alone, the losses against hand computations, the probe against
scikit-learn, and the digit scenes' answers against a brute-force reading of the pixels."""
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score

from alignlib.models import emma
from alignlib.data import digit_scenes as ds

SMALL = dict(d_vision=8, d_model=16, n_layers=2, d_state=4)


@pytest.fixture(scope="module")
def scenes():
    return ds.make_digit_scenes(60, "train", seed=3)


def model(**options):
    torch.manual_seed(0)
    return emma.EmmaLM(emma.EmmaConfig(**{**SMALL, **options})).eval()


# -- patches -------------------------------------------------------------------------------------

def test_patchify_against_slicing_and_back():
    images = torch.randn(2, 16, 16)
    patches = emma.patchify(images, 4)
    assert patches.shape == (2, 16, 16)
    for k in range(16):
        row, col = divmod(k, 4)
        assert torch.equal(patches[:, k], images[:, 4 * row:4 * row + 4, 4 * col:4 * col + 4].reshape(2, 16))
    assert torch.equal(emma.unpatchify(patches, 4, 16, 16), images)


# -- shapes and masks ----------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"pixel_weight": 0.5}, {"mff": True}, {"pixel_weight": 0.5, "mff": True}])
def test_output_shapes(scenes, options):
    out = model(**options)(scenes.images[:5], scenes.tokens[:5], scenes.mask[:5])
    assert out.logits.shape == (5, len(ds.ANSWERS))
    assert out.patches.shape == (5, 16, 16)
    assert (out.reconstruction is not None) == ("pixel_weight" in options)
    if out.reconstruction is not None:
        assert out.reconstruction.shape == (5, 16, 16)
    assert len(out.visual_states) == SMALL["n_layers"] + 1
    assert all(s.shape == (5, 16, SMALL["d_model"]) for s in out.visual_states)


@pytest.mark.parametrize("options", [{}, {"pixel_weight": 0.5, "mff": True}])
def test_padding_does_not_change_the_answer(scenes, options):
    """Each question alone, unpadded, against the padded batch and against extra padding."""
    lm, scenes = model(**options), scenes.subset(slice(0, 24))
    lengths = scenes.mask.sum(1)
    assert lengths.min() < lengths.max()  # the batch really is padded
    with torch.no_grad():
        batched = lm(scenes.images, scenes.tokens, scenes.mask).logits
        extra = torch.nn.functional.pad(scenes.tokens, (0, 7))
        padded_more = lm(scenes.images, extra, extra != 0).logits
        for i in range(len(scenes)):
            alone = lm(scenes.images[i:i + 1], scenes.tokens[i:i + 1, :lengths[i]]).logits
            torch.testing.assert_close(batched[i:i + 1], alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(padded_more, batched, rtol=1e-5, atol=1e-5)


def test_the_image_never_reads_the_question(scenes):
    """Causality: the visual states and the reconstruction depend on the image alone."""
    lm = model(pixel_weight=1.0, mff=True)
    images = scenes.images[:1].expand(6, -1, -1)
    with torch.no_grad():
        out = lm(images, scenes.tokens[:6], scenes.mask[:6])
    for tensor in [*out.visual_states, out.reconstruction]:
        torch.testing.assert_close(tensor, tensor[:1].expand_as(tensor), rtol=0, atol=1e-6)
    assert out.logits.std(0).max() > 1e-3  # while the answers do differ


def test_mff_starts_as_the_baseline(scenes):
    """MFF's projection is zero at initialisation: with the baseline's weights, the same logits."""
    baseline, fused = model(), model(mff=True)
    missing, unexpected = fused.load_state_dict(baseline.state_dict(), strict=False)
    assert not unexpected and all(name.startswith("fusion.") for name in missing)
    with torch.no_grad():
        torch.testing.assert_close(fused(scenes.images, scenes.tokens, scenes.mask).logits,
                                   baseline(scenes.images, scenes.tokens, scenes.mask).logits)
        fused.fusion.proj.weight.normal_()
        assert not torch.allclose(fused(scenes.images, scenes.tokens, scenes.mask).logits,
                                  baseline(scenes.images, scenes.tokens, scenes.mask).logits)


@pytest.mark.parametrize("change, error, match", [
    (lambda i, t, m: (i[:, :15], t, m), ValueError, "images: expected shape"),
    (lambda i, t, m: (i.masked_fill(i > 0.5, math.nan), t, m), ValueError, "NaN"),
    (lambda i, t, m: (i.long(), t, m), TypeError, "images"),
    (lambda i, t, m: (i, t.int(), m), TypeError, "tokens: expected an int64"),
    (lambda i, t, m: (i, t + 100, m), ValueError, "tokens: word indices"),
    (lambda i, t, m: (i, t[:2], m[:2]), ValueError, "tokens: expected shape"),
    (lambda i, t, m: (i, t, m.flip(1)), ValueError, "mask"),
    (lambda i, t, m: (i, t, m & False), ValueError, "no real token"),
    (lambda i, t, m: (i, t, m.long()), ValueError, "mask: expected a bool"),
])
def test_bad_inputs(scenes, change, error, match):
    images, tokens, mask = change(scenes.images[:4], scenes.tokens[:4], scenes.mask[:4])
    with pytest.raises(error, match=match):
        model()(images, tokens, mask)


def test_bad_config_and_arguments():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        emma.EmmaConfig(patch_size=5)
    with pytest.raises(ValueError, match="positive integers.*patch_size"):
        emma.EmmaConfig(patch_size=0)
    with pytest.raises(ValueError, match="pixel_weight"):
        emma.EmmaConfig(pixel_weight=-1.0)
    with pytest.raises(ValueError, match="mff needs"):
        emma.EmmaConfig(n_layers=1, mff=True)
    with pytest.raises(ValueError, match="same shape"):
        emma.pixel_alignment_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="n must be"):
        ds.make_digit_scenes(0)
    with pytest.raises(ValueError, match="split"):
        ds.make_digit_scenes(5, split="validation")
    with pytest.raises(ValueError, match="test_fraction"):
        ds.image_split(test_fraction=1.0)
    with pytest.raises(ValueError, match="vocabulary"):
        ds.encode(["which", "colour"])


# -- losses --------------------------------------------------------------------------------------

def test_pixel_alignment_loss_by_hand():
    reconstruction = torch.tensor([[[0.0, 1.0], [2.0, 0.5]]])
    patches = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    # squared errors 1, 0, 4, 0.25 over 4 entries
    assert emma.pixel_alignment_loss(reconstruction, patches).item() == pytest.approx(5.25 / 4)


def test_total_loss_by_hand(scenes):
    lm = model(pixel_weight=0.3)
    out = lm(scenes.images[:3], scenes.tokens[:3], scenes.mask[:3])
    total, parts = lm.loss(out, scenes.answers[:3])
    logits, answers = out.logits.detach().double().numpy(), scenes.answers[:3].numpy()
    cross_entropy = np.mean([math.log(np.exp(row).sum()) - row[a] for row, a in zip(logits, answers)])
    squared = ((out.reconstruction.detach().double() - out.patches.double()) ** 2).numpy()
    pixel = squared.sum() / squared.size
    assert parts["answer"].item() == pytest.approx(cross_entropy, rel=1e-5)
    assert parts["pixel"].item() == pytest.approx(pixel, rel=1e-5)
    assert total.item() == pytest.approx(cross_entropy + 0.3 * pixel, rel=1e-5)
    assert set(model().loss(model()(scenes.images[:3], scenes.tokens[:3], scenes.mask[:3]),
                            scenes.answers[:3])[1]) == {"answer"}


# -- probe ---------------------------------------------------------------------------------------

def test_probe_matches_scikit_learn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) + 2.0
    y = x @ rng.normal(size=(6, 3)) + 0.5 + rng.normal(scale=[0.1, 1.0, 3.0], size=(300, 3))
    weight, bias = emma.fit_linear_probe(torch.from_numpy(x), torch.from_numpy(y))
    reference = LinearRegression().fit(x, y)
    np.testing.assert_allclose(weight.numpy(), reference.coef_.T, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bias.numpy(), reference.intercept_, rtol=1e-9, atol=1e-9)
    x_test = rng.normal(size=(100, 6))
    y_test = x_test @ rng.normal(size=(6, 3)) + rng.normal(size=(100, 3))
    predicted = x_test @ weight.numpy() + bias.numpy()
    assert emma.r2_score(torch.from_numpy(y_test), torch.from_numpy(predicted)) == pytest.approx(
        r2_score(y_test, predicted, multioutput="variance_weighted"), rel=1e-12)


def test_probe_layers_matches_scikit_learn():
    """Per layer: tokens of all positions pooled, fitted on train, scored on test."""
    rng = np.random.default_rng(1)
    train_states = [torch.from_numpy(rng.normal(size=(20, 4, 5))) for _ in range(2)]
    test_states = [torch.from_numpy(rng.normal(size=(10, 4, 5))) for _ in range(2)]
    train_patches = train_states[0][..., :3] * 2 + torch.from_numpy(rng.normal(scale=0.1, size=(20, 4, 3)))
    test_patches = test_states[0][..., :3] * 2 + torch.from_numpy(rng.normal(scale=0.1, size=(10, 4, 3)))
    r2, reconstructions = emma.probe_layers(train_states, train_patches, test_states, test_patches)
    for layer in range(2):
        fit = LinearRegression().fit(train_states[layer].reshape(80, 5).numpy(), train_patches.reshape(80, 3).numpy())
        predicted = fit.predict(test_states[layer].reshape(40, 5).numpy())
        assert r2[layer] == pytest.approx(r2_score(test_patches.reshape(40, 3).numpy(), predicted,
                                                   multioutput="variance_weighted"), rel=1e-9)
        np.testing.assert_allclose(reconstructions[layer].reshape(40, 3).numpy(), predicted, rtol=1e-4, atol=1e-5)
    assert r2[0] > 0.9 > r2[1]  # layer 0 holds the signal, layer 1 is noise


def test_r2_of_constant_targets_is_an_error():
    with pytest.raises(ValueError, match="no variance"):
        emma.r2_score(torch.ones(5, 2), torch.zeros(5, 2))


# -- evaluation ----------------------------------------------------------------------------------

def test_evaluate_against_loops(scenes):
    predicted = torch.from_numpy(np.random.default_rng(2).integers(0, len(ds.ANSWERS), len(scenes)))
    predicted[(scenes.question_type == ds.QUESTION_TYPES.index("absent")).nonzero().flatten()[:3]] = ds.ANSWER_INDEX["yes"]
    scores = emma.evaluate(predicted, scenes)
    for index, name in enumerate(ds.QUESTION_TYPES):
        pairs = [(p, a) for p, a, t in zip(predicted.tolist(), scenes.answers.tolist(), scenes.question_type.tolist())
                 if t == index]
        assert scores[f"accuracy_{name}"] == pytest.approx(sum(p == a for p, a in pairs) / len(pairs))
    absent = [p for p, t in zip(predicted.tolist(), scenes.question_type.tolist()) if ds.QUESTION_TYPES[t] == "absent"]
    assert scores["false_yes_rate"] == pytest.approx(sum(ds.ANSWERS[p] == "yes" for p in absent) / len(absent))
    assert scores["accuracy"] == pytest.approx((predicted == scenes.answers).float().mean().item())


# -- the digit scenes ----------------------------------------------------------------------------

def test_generator_is_deterministic_and_seeded():
    a, b = ds.make_digit_scenes(50, seed=7), ds.make_digit_scenes(50, seed=7)
    for name in a.__dataclass_fields__:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    c = ds.make_digit_scenes(50, seed=8)
    assert not torch.equal(a.image_ids, c.image_ids)


def test_held_out_images():
    split = ds.image_split()
    assert len(set(split["train"]) & set(split["test"])) == 0
    assert len(split["train"]) + len(split["test"]) == 1797
    labels = load_digits().target
    for ids in split.values():
        assert set(labels[ids]) == set(range(10))
    train, test = ds.make_digit_scenes(300, "train", seed=0), ds.make_digit_scenes(300, "test", seed=0)
    assert set(train.image_ids.flatten().tolist()) <= set(split["train"])
    assert set(test.image_ids.flatten().tolist()) <= set(split["test"])


def brute_force_answer(image: np.ndarray, question: str, pixels: np.ndarray, labels: np.ndarray) -> str:
    """Read the scene's four digits by matching each 8x8 block against every scikit-learn image,
    then answer the question word by word from the cells' coordinates."""
    cells = {}
    for row in range(2):
        for col in range(2):
            block = image[8 * row:8 * row + 8, 8 * col:8 * col + 8]
            match = np.flatnonzero(np.abs(pixels - block).reshape(len(pixels), -1).max(1) == 0)
            assert len(match) >= 1
            assert len(set(labels[match])) == 1  # identical images never carry two labels
            cells[(row, col)] = int(labels[match[0]])
    where = {digit: cell for cell, digit in cells.items()}
    names = {"top-left": (0, 0), "top-right": (0, 1), "bottom-left": (1, 0), "bottom-right": (1, 1)}
    words = question.split()
    yes_no = {True: "yes", False: "no"}
    if words[0] == "which":
        return str(cells[names[words[3]]])
    if words[0] == "how":
        parity = 0 if words[2] == "even" else 1
        return str(sum(1 for d in cells.values() if d % 2 == parity))
    if words[1] == "there":
        return yes_no[int(words[3]) in where]
    if words[3] == "digit":
        return yes_no[cells[names[words[2]]] > cells[names[words[7]]]]
    first, second = where[int(words[2])], where[int(words[-2])]
    if words[3] == "left":
        return yes_no[first[1] < second[1]]
    assert words[3] == "above"
    return yes_no[first[0] < second[0]]


@pytest.mark.parametrize("split", ["train", "test"])
def test_answers_by_brute_force(split):
    bunch = load_digits()
    pixels, labels = bunch.images / 16.0, bunch.target
    data = ds.make_digit_scenes(240, split, seed=11)
    for image, question, answer, kind in zip(data.images.numpy(), data.questions(), data.answers.tolist(),
                                              data.question_type.tolist()):
        assert brute_force_answer(image, question, pixels, labels) == ds.ANSWERS[answer], question
        if ds.QUESTION_TYPES[kind] == "absent":
            assert ds.ANSWERS[answer] == "no"


def test_question_mix_is_balanced():
    data = ds.make_digit_scenes(1200, seed=5)
    counts = torch.bincount(data.question_type, minlength=len(ds.QUESTION_TYPES))
    assert counts.tolist() == [200] * 6
    is_there = (data.question_type == ds.QUESTION_TYPES.index("present")) | (
        data.question_type == ds.QUESTION_TYPES.index("absent"))
    assert (data.answers[is_there] == ds.ANSWER_INDEX["yes"]).sum() == 200
    relation = data.answers[data.question_type == ds.QUESTION_TYPES.index("relation")]
    yes = (relation == ds.ANSWER_INDEX["yes"]).sum().item()
    assert abs(yes - 100) < 3 * math.sqrt(200 * 0.25)  # yes drawn with probability 1/2
    assert torch.equal(data.mask, data.tokens != 0)
    assert all(len(set(row.tolist())) == 4 for row in data.digits)


def test_train_and_score_is_the_steps_by_hand():
    train_data = ds.make_digit_scenes(100, "train", seed=3)
    test_data = ds.make_digit_scenes(50, "test", seed=4)
    probe_data = train_data.subset(slice(0, 40))
    config = emma.EmmaConfig(patch_size=8, d_model=8, n_layers=2, pixel_weight=0.5)
    result = emma.train_and_score(config, train_data, test_data, probe_data, 4, 10, 1e-3, seed=5, progress=False)
    torch.manual_seed(5)
    model = emma.EmmaLM(config)
    history, curve = emma.train(model, train_data, 4, 10, 1e-3, seed=5, progress=False)
    predicted, test_states = emma.predict(model, test_data)
    _, probe_states = emma.predict(model, probe_data)
    r2, _ = emma.probe_layers(probe_states, emma.patchify(probe_data.images, 8), test_states,
                              emma.patchify(test_data.images, 8))
    assert result.history == history and result.valid_curve == curve == []
    assert result.scores == pytest.approx(emma.evaluate(predicted, test_data), nan_ok=True)
    np.testing.assert_allclose(result.r2, r2)


def test_validation_curve_is_the_error_and_cross_entropy_at_its_steps():
    """Validation passes at every twentieth of the run leave training untouched (the same losses as
    a run without them); each point is the error rate and cross-entropy counted scene by scene."""
    train_data = ds.make_digit_scenes(100, "train", seed=3)
    valid_data = ds.make_digit_scenes(30, "train", seed=9)
    config = emma.EmmaConfig(patch_size=8, d_model=8, n_layers=2)
    torch.manual_seed(1)
    plain = emma.EmmaLM(config)
    history, _ = emma.train(plain, train_data, 40, 10, 1e-3, seed=1, progress=False)
    torch.manual_seed(1)
    model = emma.EmmaLM(config)
    validated, curve = emma.train(model, train_data, 40, 10, 1e-3, seed=1, progress=False, valid_data=valid_data)
    assert validated == history
    assert [point["step"] for point in curve] == list(range(2, 41, 2))
    with torch.no_grad():
        logits = torch.cat([model(valid_data.images[i:i + 1], valid_data.tokens[i:i + 1], valid_data.mask[i:i + 1]).logits
                            for i in range(len(valid_data))])
    error = sum(int(logits[i].argmax() != valid_data.answers[i]) for i in range(len(valid_data))) / len(valid_data)
    loss = float(np.mean([-torch.log_softmax(logits[i], -1)[valid_data.answers[i]].item() for i in range(len(valid_data))]))
    assert curve[-1]["error"] == pytest.approx(error) and curve[-1]["answer_loss"] == pytest.approx(loss, rel=1e-5)


@pytest.mark.parametrize("errors, flat", [([0.5] * 10 + [0.49] * 10, True), ([0.5] * 15 + [0.45] * 5, False),
                                          ([0.004] * 15 + [0.003] * 5, True), ([0.02] * 15 + [0.0] * 5, False),
                                          ([0.0] * 20, True), ([0.3] * 5, False)])
def test_convergence_reads_the_last_quarter_against_the_validation_resolution(errors, flat):
    """Flat when the best of the last 5 passes improves on the best before, e, by less than
    sqrt(e (1 - e) / n) on n = 1000 scenes (0.0158 at e = 0.5, 0.0020 at e = 0.004, 0.0044 at
    e = 0.02); a curve of 5 passes is not flat."""
    curve = [{"step": k, "scenes": 1000, "error": e, "answer_loss": 0.0} for k, e in enumerate(errors)]
    assert emma.convergence([{}] * 7, curve) == {"optimizer_steps": 7, "stopped_by": "steps", "valid_flat": flat}


@pytest.mark.parametrize("steps, expected", [(7, list(range(1, 8))), (50, [3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28, 30, 33, 35,
                                                                          38, 40, 43, 45, 48, 50])])
def test_validation_passes_follow_the_run_length(steps, expected):
    """Twenty passes at ceil(k * steps / 20) (written out for 50 steps), every step of a shorter run."""
    data = ds.make_digit_scenes(40, "train", seed=3)
    torch.manual_seed(0)
    _, curve = emma.train(emma.EmmaLM(emma.EmmaConfig(patch_size=8, d_model=8, n_layers=2)), data, steps, 4,
                          progress=False, valid_data=data.subset(slice(0, 8)))
    assert [point["step"] for point in curve] == expected


def test_a_diverging_run_stops_with_its_step():
    data = ds.make_digit_scenes(40, "train", seed=3)
    model = emma.EmmaLM(emma.EmmaConfig(patch_size=8, d_model=8, n_layers=2))
    with torch.no_grad():
        model.answer_head.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="diverged at step 1"):
        emma.train(model, data, 3, 4, progress=False)


def test_batches_cover_the_scenes_in_order():
    data = ds.make_digit_scenes(20, "train", seed=3)
    parts = list(data.batches(7))
    assert [len(part) for part in parts] == [7, 7, 6]
    assert torch.equal(torch.cat([part.images for part in parts]), data.images)
    assert torch.equal(torch.cat([part.answers for part in parts]), data.answers)
