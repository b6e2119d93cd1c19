"""alignlib.analysis against brute force: hand-counted accuracies, hand-computed share tables,
scikit-learn's mutual information and a loop, POT's exact plan, and a trained model that must
predict what training evaluated."""
import json
import math
from pathlib import Path

import numpy as np
import ot as pot
import pytest
import torch
from sklearn.metrics import mutual_info_score

from alignlib import analysis
from alignlib.data import load_mmsa
from alignlib.models.checkpoint import load_model
from alignlib.models.sentiment import ModelConfig, build_model
from alignlib import train as training
from alignlib.train import TrainConfig, evaluate, train

SAMPLE = Path(__file__).resolve().parents[1] / "data_samples" / "synthetic_tiny.pkl"


def test_frame_accuracy_counts_hits_by_hand():
    plan = torch.tensor([[[0.5, 0.1, 0.0], [0.0, 0.2, 0.3], [0.1, 0.1, 0.0]],
                         [[0.0, 0.0, 0.9], [0.3, 0.2, 0.1], [0.0, 0.0, 0.0]]])
    truth = torch.tensor([[0, 2, 1], [2, 1, -1]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    # argmax rows: clip 0 -> 0, 2, 0 (hits, hits, miss); clip 1 -> 2, 0 (hit, miss); 3 hits of 5
    assert analysis.frame_accuracy(plan.argmax(2), truth, mask) == pytest.approx(3 / 5)
    np.testing.assert_allclose(analysis.per_clip_accuracy(plan.argmax(2), truth, mask), [2 / 3, 1 / 2])


def test_scores_know_no_word_by_hand_and_by_scikit_learn():
    from sklearn.metrics import precision_recall_fscore_support

    from alignlib.align import ot
    from alignlib.data import NO_WORD

    # clip 0: 4 real frames (share 1/4); frame 1 sends 0.1 < 1/8 (no word), frame 3 sends 0.2 (word 1)
    plan = torch.tensor([[[0.25, 0.0], [0.05, 0.05], [0.0, 0.25], [0.05, 0.15]],
                         [[0.0, 0.5], [0.5, 0.0], [0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    truth = torch.tensor([[0, NO_WORD, NO_WORD, 1], [1, NO_WORD, -1, -1]])
    guess = ot.frame_words(plan, mask)
    assert guess.tolist() == [[0, NO_WORD, 1, 1], [1, 0, -1, -1]]
    # frames with a word: clip 0 frames 0, 3 (both hit), clip 1 frame 0 (hit); the pauses do not count
    assert analysis.frame_accuracy(guess, truth, mask) == 1.0 == ot.correspondence_accuracy(plan, truth, mask)
    np.testing.assert_allclose(analysis.per_clip_accuracy(guess, truth, mask), [1.0, 1.0])
    rng = np.random.default_rng(0)
    truth = torch.as_tensor(np.where(rng.random((6, 30)) < 0.3, NO_WORD, rng.integers(0, 5, (6, 30))))
    guess = torch.as_tensor(np.where(rng.random((6, 30)) < 0.4, NO_WORD, rng.integers(0, 5, (6, 30))))
    mask = torch.as_tensor(rng.random((6, 30)) < 0.8)
    expected = precision_recall_fscore_support((truth[mask] == NO_WORD).numpy(), (guess[mask] == NO_WORD).numpy(),
                                               average="binary")[:3]
    found = analysis.pause_detection(guess, truth, mask)
    np.testing.assert_allclose([found["precision"], found["recall"], found["f1"]], expected)
    assert math.isnan(analysis.pause_detection(truth.clamp_min(0), truth, mask)["precision"])  # never says "no word"


def test_correspondence_floors_by_a_loop(tmp_path):
    from alignlib.data import synthetic

    path = synthetic.write(tmp_path / "paused.pkl", *synthetic.generate("tiny", 0, 40, pause=0.3))
    test = load_mmsa(path).splits["test"]
    floors = analysis.correspondence_floors(test)
    for m in ("audio", "vision"):
        chance, hits, scored = [], 0, 0
        for row, frames, words in zip(test.alignment[m], test.masks[m].sum(1), test.masks["text"].sum(1)):
            for t in range(frames):
                if row[t] >= 0:
                    chance.append(1 / words)
                    hits += row[t] == t * words // frames
                    scored += 1
        assert floors[f"{m}_chance"] == pytest.approx(np.mean(chance))
        assert floors[f"{m}_proportional"] == pytest.approx(hits / scored)


def fake_activity():
    """Two experts' + shared shares on one clip of 5 tokens (modalities 0, 0, 1, 2, padding)."""
    shares = torch.tensor([[[0.6, 0.0, 0.0, 0.4], [0.2, 0.0, 0.0, 0.8], [0.0, 0.5, 0.0, 0.5],
                            [0.0, 0.0, 0.9, 0.1], [0.3, 0.3, 0.3, 0.1]]])
    return analysis.ExpertActivity(
        shares={"fusion.0.mixer.in_proj": shares},
        probabilities={"fusion.0.mixer.in_router": torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1],
                                                                  [0.1, 0.1, 0.8], [0.9, 0.0, 0.1]]])},
        mask=torch.tensor([[True, True, True, True, False]]),
        modality=torch.tensor([[0, 0, 1, 2, 0]]),
        position=torch.tensor([[0.0, 0.5, 0.0, 0.0, 0.0]], dtype=torch.float64))


def test_share_table_against_a_hand_computed_table():
    table = analysis.share_table(fake_activity(), "fusion.0.mixer.in_proj")
    expected = [[0.4, 0.0, 0.0, 0.6], [0.0, 0.5, 0.0, 0.5], [0.0, 0.0, 0.9, 0.1]]
    np.testing.assert_allclose(table, expected, atol=1e-12)
    by_position = analysis.shares_by_position(fake_activity(), "fusion.0.mixer.in_proj", bins=2)
    np.testing.assert_allclose(by_position[0], [[0.6, 0, 0, 0.4], [0.2, 0, 0, 0.8]], atol=1e-12)
    assert np.isnan(by_position[1, 1]).all() and np.isnan(by_position[2, 1]).all()
    with pytest.raises(ValueError, match="unknown projection 'fusion.9'"):
        analysis.share_table(fake_activity(), "fusion.9")


# -- routing statistics -----------------------------------------------------------------------------
def brute_force_bits(m, e):
    n = len(m)
    total = 0.0
    for a in set(m):
        for b in set(e):
            joint = sum(1 for x, y in zip(m, e) if x == a and y == b) / n
            if joint:
                total += joint * math.log2(joint / ((m.count(a) / n) * (e.count(b) / n)))
    return total


def test_mutual_information_bits_matches_sklearn_and_brute_force():
    rng = np.random.default_rng(0)
    modality = rng.integers(0, 3, 500)
    expert = np.where(rng.random(500) < 0.6, modality, rng.integers(0, 4, 500))  # partly informative
    bits = analysis.mutual_information_bits(torch.from_numpy(modality).reshape(20, 25), torch.from_numpy(expert).reshape(20, 25))
    assert bits == pytest.approx(mutual_info_score(modality, expert) / math.log(2), abs=1e-12)
    assert bits == pytest.approx(brute_force_bits(modality.tolist(), expert.tolist()), abs=1e-12)


def test_mutual_information_bits_limits():
    modality = torch.arange(3).repeat(40)
    assert analysis.mutual_information_bits(modality, (modality + 1) % 3) == pytest.approx(math.log2(3))
    assert analysis.mutual_information_bits(modality, torch.zeros_like(modality)) == pytest.approx(0.0, abs=1e-15)


def test_mutual_information_bits_bad_input():
    with pytest.raises(ValueError, match="shapes differ"):
        analysis.mutual_information_bits(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer labels"):
        analysis.mutual_information_bits(torch.zeros(3), torch.zeros(3, dtype=torch.long))


def test_routing_mutual_information_against_scikit_learn():
    mi = analysis.routing_mutual_information(fake_activity())["fusion.0.mixer.in_router"]
    modality, chosen = [0, 0, 1, 2], [0, 1, 1, 2]  # the real tokens' ids and argmax choices
    assert mi == pytest.approx(mutual_info_score(modality, chosen) / math.log(2), abs=1e-12)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(model="alignmamba2", data=str(SAMPLE), out=str(out), epochs=1, batch_size=16,
                         model_options={"d_model": 16, "routing": "learned"})
    metrics = train(config, progress=False)
    return config, out, metrics


def test_loaded_model_predicts_what_train_evaluated(trained):
    config, out, metrics = trained
    model, state = load_model(out)
    assert state["epoch"] == 0
    split = load_mmsa(SAMPLE).splits["test"]
    again, predictions = evaluate(model, split, config.batch_size, torch.device("cpu"))
    recorded = json.loads((out / "test_metrics.json").read_text())
    for key, value in again.items():
        assert metrics[key] == value == recorded[key], key
    with torch.no_grad():
        padded, _ = model(analysis.clip_batch(split, range(len(split))))
    np.testing.assert_allclose(padded.numpy(), predictions, atol=1e-5)


def test_exact_plan_accuracy_matches_pot_on_one_clip(trained):
    _, out, _ = trained
    model, _ = load_model(out / "best.pt")
    split = load_mmsa(SAMPLE).splits["test"]
    truth = analysis.truth_tables(SAMPLE, "test")
    found = analysis.correspondences(model, split, truth, [2, 5], methods=("exact", "relaxed", "proportional"))
    states = analysis.token_states(model, analysis.clip_batch(split, [5]))
    frames, words = split.masks["vision"][5], split.masks["text"][5]
    x = states["vision"][0][frames].double().numpy()
    y = states["text"][0][words].double().numpy()
    x, y = x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)
    cost = 1 - x @ y.T
    plan = pot.emd(np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y)), cost)
    expected = (plan.argmax(1) == truth["vision"][5][frames]).mean()
    assert found.clip_accuracy["vision"]["exact"][1] == pytest.approx(expected)
    relaxed = (cost.argmin(1) == truth["vision"][5][frames]).mean()
    assert found.clip_accuracy["vision"]["relaxed"][1] == pytest.approx(relaxed)
    floor = [math.floor(t * words.sum() / frames.sum()) for t in range(frames.sum())]
    assert found.clip_accuracy["vision"]["proportional"][1] == pytest.approx(np.mean(floor == truth["vision"][5][frames]))
    scored = found.states["vision"][1][found.masks["vision"][1]]  # the tokens the plans were computed from
    torch.testing.assert_close(scored, states["vision"][0][frames[:states["vision"].shape[1]]], atol=1e-5, rtol=1e-5)


def test_expert_activity_of_a_trained_model(trained):
    _, out, _ = trained
    model, _ = load_model(out)
    split = load_mmsa(SAMPLE).splits["test"]
    batch = analysis.clip_batch(split, [0, 1, 2])
    activity = analysis.record_expert_activity(model, batch)
    assert sorted(activity.shares) == [f"fusion.{k}.mixer.{p}" for k in range(2) for p in ("in_proj", "out_proj")]
    n_real = sum(int(batch.masks[m].sum()) for m in batch.masks)
    assert int(activity.mask.sum()) == n_real
    real = activity.shares["fusion.0.mixer.in_proj"][activity.mask]
    np.testing.assert_allclose(real.sum(-1).numpy(), 1.0, atol=1e-6)
    for name, bits in analysis.routing_mutual_information(activity).items():
        chosen = activity.probabilities[name].argmax(-1)[activity.mask].numpy()
        assert bits == pytest.approx(mutual_info_score(activity.modality[activity.mask].numpy(), chosen) / math.log(2),
                                     abs=1e-9)
        assert 0 <= bits <= math.log2(3) + 1e-12


def test_deterministic_routing_gives_each_modality_its_own_expert():
    torch.manual_seed(0)
    split = load_mmsa(SAMPLE).splits["test"]
    model = build_model("alignmamba2", {m: split.features[m].shape[2] for m in split.features},
                        ModelConfig(d_model=8, n_layers=1))
    activity = analysis.record_expert_activity(model, analysis.clip_batch(split, [0, 1]))
    table = analysis.share_table(activity, "fusion.0.mixer.out_proj")
    off_diagonal = table[:, :3][~np.eye(3, dtype=bool)]
    assert np.all(off_diagonal == 0)
    np.testing.assert_allclose(table.sum(1), 1.0, atol=1e-6)
    # positions: the k-th real token of a modality with n tokens sits at k / n
    first_clip = activity.position[0][activity.mask[0] & (activity.modality[0] == 1)]
    n = int(split.masks["audio"][0].sum())
    np.testing.assert_allclose(first_clip.numpy(), np.arange(n) / n)


def test_alignment_losses_are_the_models_training_losses_before_lambda():
    torch.manual_seed(0)
    split = load_mmsa(SAMPLE).splits["test"]
    config = ModelConfig(d_model=8, n_layers=1, dropout=0.0, lambda_ot=0.5, lambda_mmd=0.25, blur=0.2)  # its own blur
    model = build_model("alignmamba2", {m: split.features[m].shape[2] for m in split.features}, config)
    batch = analysis.clip_batch(split, [0, 3, 4])
    losses = analysis.alignment_losses(model, batch)
    model.train()
    with torch.no_grad():
        _, aux = model(batch)
    assert losses["ot"] == pytest.approx(aux["ot"].item() / 0.5, rel=1e-5)
    assert losses["mmd"] == pytest.approx(aux["mmd"].item() / 0.25, rel=1e-5)


def test_per_epoch_checkpoints_end_where_an_uninterrupted_run_ends(tmp_path):
    options = dict(data=str(SAMPLE), epochs=2, batch_size=32, model_options={"d_model": 8, "n_layers": 1})
    kept = analysis.train_keeping_epochs(TrainConfig(model="alignmamba1", out=str(tmp_path / "steps"), **options))
    assert [p.name for p in kept] == ["epoch_1.pt", "epoch_2.pt"]
    train(TrainConfig(model="alignmamba1", out=str(tmp_path / "whole"), **options), progress=False)
    stepped, _ = load_model(kept[-1])
    whole, _ = load_model(tmp_path / "whole", "last.pt")
    for key, value in whole.state_dict().items():
        torch.testing.assert_close(stepped.state_dict()[key], value, rtol=0, atol=0)
    first, state = load_model(kept[0])
    assert state["epoch"] == 0
    initial = analysis.initial_model(TrainConfig(model="alignmamba1", out=str(tmp_path / "x"), seed=3, **options))
    torch.manual_seed(3)
    rebuilt = build_model("alignmamba1", load_mmsa(SAMPLE).dims, ModelConfig(d_model=8, n_layers=1))
    for key, value in rebuilt.state_dict().items():
        torch.testing.assert_close(initial.state_dict()[key], value, rtol=0, atol=0)
    assert not torch.equal(first.head[0].weight, initial.head[0].weight)


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint at"):
        load_model(tmp_path)
    split = load_mmsa(SAMPLE).splits["test"]
    concat = build_model("concat", {m: split.features[m].shape[2] for m in split.features}, ModelConfig(d_model=8))
    with pytest.raises(ValueError, match="ConcatMamba has no per-modality tokens"):
        analysis.token_states(concat, analysis.clip_batch(split, [0]))
    with pytest.raises(ValueError, match="clip indices must be in"):
        analysis.clip_batch(split, [len(split)])


def test_per_epoch_checkpoints_continue_where_an_interrupted_call_stopped(tmp_path, monkeypatch):
    options = dict(data=str(SAMPLE), epochs=3, batch_size=32, model_options={"d_model": 8, "n_layers": 1})
    whole = analysis.train_keeping_epochs(TrainConfig(model="alignmamba1", out=str(tmp_path / "whole"), **options))
    cut = TrainConfig(model="alignmamba1", out=str(tmp_path / "cut"), **options)
    real_epoch, trained = training.train_epoch, []

    def killed_in_epoch_three(run, epoch, progress):
        if epoch == 2:
            raise KeyboardInterrupt("killed")
        trained.append(epoch)
        return real_epoch(run, epoch, progress)

    monkeypatch.setattr(training, "train_epoch", killed_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        analysis.train_keeping_epochs(cut)
    assert trained == [0, 1] and sorted(p.name for p in (tmp_path / "cut").glob("epoch_*.pt")) == ["epoch_1.pt", "epoch_2.pt"]
    monkeypatch.setattr(training, "train_epoch", lambda run, epoch, progress: (trained.append(epoch),
                                                                               real_epoch(run, epoch, progress))[1])
    resumed = analysis.train_keeping_epochs(cut)
    assert trained == [0, 1, 2]  # epochs 1 and 2 are not trained again
    for ours, theirs in zip(resumed, whole, strict=True):
        a, b = load_model(ours)[0].state_dict(), load_model(theirs)[0].state_dict()
        for key in b:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_checkpoint_summary_collects_the_analysis_functions(trained):
    _, out, _ = trained
    model, _ = load_model(out)
    split = load_mmsa(SAMPLE).splits["test"]
    truth = analysis.truth_tables(SAMPLE, "test")
    clips = [0, 3, 7]
    numbers = analysis.checkpoint_summary(model, split, truth, clips, blur=0.1)
    found = analysis.correspondences(model, split, truth, clips, blur=0.1)
    for m in analysis.SOURCES:
        for method in analysis.METHODS:
            assert numbers[f"{m}_{method}"] == found.accuracy[m][method]
        # chance: each real frame's 1 / (its clip's number of words), averaged over all frames
        per_frame = [1 / split.masks["text"][i].sum().item() for i in clips for _ in range(int(split.masks[m][i].sum()))]
        assert numbers[f"{m}_chance"] == pytest.approx(np.mean(per_frame), rel=1e-12)
    batch = analysis.clip_batch(split, clips)
    assert {k: numbers[k] for k in ("ot", "mmd")} == analysis.alignment_losses(model, batch)
    activity = analysis.record_expert_activity(model, batch)
    table = analysis.share_table(activity, "fusion.1.mixer.out_proj")
    assert numbers["shared_fusion.1.out_proj_vision"] == pytest.approx(table[2, -1])
    for router, bits in analysis.routing_mutual_information(activity).items():
        assert numbers[f"mi_{router.replace('.mixer', '')}"] == bits
    plain = build_model("alignmamba1", load_mmsa(SAMPLE).dims, ModelConfig(d_model=8, n_layers=1)).eval()
    assert not any(k.startswith(("shared_", "mi_")) for k in analysis.checkpoint_summary(plain, split, truth, clips))


def test_a_crash_between_an_epoch_checkpoint_and_last_trains_that_epoch_again_to_the_same_state(tmp_path, monkeypatch):
    options = dict(data=str(SAMPLE), epochs=2, batch_size=32, model_options={"d_model": 8, "n_layers": 1})
    whole = analysis.train_keeping_epochs(TrainConfig(model="alignmamba1", out=str(tmp_path / "whole"), **options))
    cut = TrainConfig(model="alignmamba1", out=str(tmp_path / "cut"), **options)
    real_save, saved = training.save_checkpoint, []

    def killed_before_last_of_epoch_two(path, state):
        saved.append(path.name)
        if path.name == "last.pt" and state["epoch"] == 1:
            raise KeyboardInterrupt("killed after writing epoch_2.pt")
        return real_save(path, state)

    monkeypatch.setattr(training, "save_checkpoint", killed_before_last_of_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        analysis.train_keeping_epochs(cut)
    assert "epoch_2.pt" in saved
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    resumed = analysis.train_keeping_epochs(cut)
    metrics = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    for ours, theirs in zip(resumed, whole, strict=True):
        a, b = load_model(ours)[0].state_dict(), load_model(theirs)[0].state_dict()
        for key in b:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)

def test_state_spread_against_a_loop():
    torch.manual_seed(0)
    states, mask = torch.randn(3, 5, 4), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]).bool()
    expected = []
    for b in range(3):
        real = [torch.nn.functional.normalize(states[b, t].double(), dim=0) for t in range(5) if mask[b, t]]
        centre = torch.nn.functional.normalize(sum(real), dim=0)
        expected.append(np.mean([1 - float(u @ centre) for u in real]))
    assert analysis.state_spread(states, mask) == pytest.approx(np.mean(expected))
    collapsed = torch.ones(3, 5, 4) * torch.rand(3, 1, 1)  # every token of a clip points the same way
    assert analysis.state_spread(collapsed, mask) == pytest.approx(0.0, abs=1e-12)


def test_own_plans_of_alignmamba1():
    data = load_mmsa(SAMPLE)
    test = data.splits["test"]
    torch.manual_seed(0)
    oracle = build_model("alignmamba1", data.dims, ModelConfig(d_model=8, n_layers=1, plan="oracle")).eval()
    found = analysis.correspondences(oracle, test, test.alignment, range(6), methods=("proportional",))
    assert found.accuracy["audio"]["model"] == 1.0 and found.accuracy["vision"]["model"] == 1.0
    relaxed = build_model("alignmamba1", data.dims, ModelConfig(d_model=8, n_layers=1)).eval()
    batch = analysis.clip_batch(test, range(6))
    with torch.no_grad():
        h = relaxed.project(batch)
        expected = analysis.ot.plan(h["audio"], h["text"], batch.masks["audio"], batch.masks["text"], method="relaxed")
    torch.testing.assert_close(analysis.own_plans(relaxed, batch)["audio"], expected)
    assert analysis.own_plans(build_model("concat", data.dims, ModelConfig(d_model=8)), batch) == {}


def test_the_supervised_projection_is_given_the_tables():
    train_split = load_mmsa(SAMPLE).splits["train"]
    project = analysis.fit_supervised_projection(train_split, "vision")
    table = train_split.alignment["vision"]
    rows, frames = np.nonzero(table >= 0)
    projected = project(train_split.features["vision"][rows, frames])
    words = train_split.features["text"][rows, table[rows, frames]]
    assert projected.shape == words.shape
    residual = np.mean((projected - words) ** 2) / np.mean((words - words.mean(0)) ** 2)
    assert residual < 0.9  # the frames explain part of their word's token


def test_supervised_emissions_are_scikit_learns_ridge_read_by_cosine():
    """The reading given the tables: scikit-learn's ridge (the bias a penalised column, as ours) from each
    training frame to its word's token, then log p(word | frame) over each test frame's real words."""
    from sklearn.linear_model import Ridge

    data = load_mmsa(SAMPLE)
    train_split, test = data.splits["train"], data.splits["test"]
    scores, frame_mask, word_mask, table = analysis.supervised_emissions(train_split, test, "vision", temperature=0.2)
    rows, frames = np.nonzero(train_split.alignment["vision"] >= 0)
    inputs = train_split.features["vision"][rows, frames]
    ridge = Ridge(alpha=1.0, fit_intercept=False).fit(np.c_[inputs, np.ones(len(rows))],
                                                      train_split.features["text"][rows, train_split.alignment["vision"][rows, frames]])
    clip, real_frames, real_words = 0, frame_mask[0].nonzero().ravel(), word_mask[0].nonzero().ravel()
    x = test.features["vision"][clip][real_frames.numpy()]
    projected = ridge.predict(np.c_[x, np.ones(len(x))])
    words = test.features["text"][clip][real_words.numpy()]
    cosine = (projected / np.linalg.norm(projected, axis=1, keepdims=True)) @ (words / np.linalg.norm(words, axis=1, keepdims=True)).T
    expected = cosine / 0.2 - np.logaddexp.reduce(cosine / 0.2, axis=1, keepdims=True)
    np.testing.assert_allclose(scores[0][real_frames][:, real_words].numpy(), expected, atol=1e-6)
    assert torch.equal(table, torch.as_tensor(test.alignment["vision"]).long())


def test_whitening_gives_the_real_tokens_identity_covariance_by_numpy():
    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((2, 30, 4)) @ np.diag([5.0, 1.0, 0.2, 0.05]) + 3.0  # anisotropic, offset
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 20:] = False
    states = torch.as_tensor(tokens)
    states[1, 20:] = 1e6  # padding: must not count
    mean, whiten = analysis.whitening(states, mask, shrink=1e-9)
    real = tokens[mask.numpy()]
    np.testing.assert_allclose(mean.numpy(), real.mean(0), rtol=1e-10)
    white = (real - real.mean(0)) @ whiten.numpy()
    np.testing.assert_allclose(np.cov(white.T), np.eye(4), atol=1e-5)  # shrink * mean eigenvalue aside
    np.testing.assert_allclose(whiten.numpy(), whiten.numpy().T, atol=1e-12)  # ZCA: symmetric


def test_word_probe_recovers_a_linear_map_exactly():
    rng = np.random.default_rng(1)
    words = rng.standard_normal((5, 6, 3))
    table = rng.integers(0, 6, (5, 9))
    table[0, 7:] = -1  # padding
    table[2, 3] = -2   # a pause
    mixing, bias = rng.standard_normal((3, 8)), rng.standard_normal(8)
    frames = words[np.arange(5)[:, None], np.clip(table, 0, None)] @ mixing + bias  # each frame: its word, mapped
    project = analysis.fit_word_probe(frames, words, table, ridge=1e-9)
    real = table >= 0
    np.testing.assert_allclose(project(frames)[real], words[np.nonzero(real)[0], table[real]], atol=1e-5)


def test_state_controls_match_pot_on_hand_centred_states(trained):
    _, out, _ = trained
    model, _ = load_model(out / "best.pt")
    data = load_mmsa(SAMPLE)
    train_split, test = data.splits["train"], data.splits["test"]
    found = analysis.state_controls(model, train_split, test, range(40), range(6))
    fitted = analysis.token_states(model, analysis.clip_batch(train_split, range(40)))
    scored = analysis.token_states(model, analysis.clip_batch(test, range(6)))
    means = {k: fitted[k][train_split.masks[k][:40, :fitted[k].shape[1]]].double().mean(0).numpy() for k in ("audio", "text")}
    hits = []
    for clip in range(6):
        frames, words = test.masks["audio"][clip], test.masks["text"][clip]
        x = scored["audio"][clip][frames].double().numpy() - means["audio"]
        y = scored["text"][clip][words].double().numpy() - means["text"]
        x, y = x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)
        plan = pot.emd(np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y)), 1 - x @ y.T)
        truth = test.alignment["audio"][clip][frames]
        hits += list(plan.argmax(1)[truth >= 0] == truth[truth >= 0])
    assert found["audio_exact_centred"] == pytest.approx(np.mean(hits))
    assert set(found) == {f"{m}_{k}" for m in ("audio", "vision")
                          for k in ("exact_centred", "exact_whitened", "probe", "probe_r2")}
    assert all(0 <= found[f"{m}_{k}"] <= 1 for m in ("audio", "vision") for k in ("exact_centred", "exact_whitened", "probe"))
