"""The explorers: set the controls as a user would, then check the figure's data against
independent computations (POT, loops, closed forms, brute-force sums); each explorer module
imports only what it shows."""
import ast
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import ot as pot
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.metrics import mutual_info_score

from alignlib.align import ot
from alignlib.align.mmd import gaussian_mmd2
from alignlib.data import MMSADataset, collate, load_mmsa, synthetic
from alignlib.data.warped_pairs import warped_pair
from alignlib.models.sentiment import ModelConfig, build_model
from alignlib.ssm.modality_mamba import record_experts
from alignlib.widgets.learned import LearnedPlanExplorer
from alignlib.widgets.mmd import MMDExplorer
from alignlib.widgets.plans import DataClipSource, TransportPlanExplorer
from alignlib.widgets.ssm import CoupledPulseExplorer, ImpulseResponseExplorer
from alignlib.widgets.trained import ExpertActivationBrowser, TrainedModelSource

SAMPLE = Path(__file__).resolve().parents[1] / "data_samples" / "synthetic_tiny.pkl"


def numpy_cosine(x, y):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    return 1 - x @ y.T


# -- transport plans on synthetic pairs ----------------------------------------------------------
def test_initial_figure_holds_real_data():
    explorer = TransportPlanExplorer(method="relaxed", n_source=10, n_target=7, noise=0.3, warp=0.5, seed=3)
    pair = warped_pair(10, 7, noise=0.3, warp=0.5, seed=3)
    cost = numpy_cosine(pair.source[0].numpy(), pair.target[0].numpy())
    expected = np.zeros((10, 7))
    expected[np.arange(10), cost.argmin(axis=1)] = 1 / 10
    np.testing.assert_allclose(np.asarray(explorer.figure.data[0].z), expected)
    assert list(explorer.figure.data[1].x) == pair.correspondence[0].tolist()
    assert explorer.blur.disabled
    assert explorer.title == explorer.figure.layout.title.text


def test_sliders_update_the_figure():
    explorer = TransportPlanExplorer(method="entropic", n_source=10, n_target=7, seed=1)
    explorer.method.value = "exact"
    explorer.source.n_source.value = 9
    explorer.source.noise.value = 0.8
    explorer.source.warp.value = -1.0
    pair = warped_pair(9, 7, noise=0.8, warp=-1.0, seed=1)
    cost = numpy_cosine(pair.source[0].numpy(), pair.target[0].numpy())
    expected = pot.emd(np.full(9, 1 / 9), np.full(7, 1 / 7), cost)
    heatmap = np.asarray(explorer.figure.data[0].z)
    assert heatmap.shape == (9, 7)
    np.testing.assert_allclose(heatmap, expected, atol=1e-12)
    assert f"cost <P, C> = {(expected * cost).sum():.4f}" in explorer.title
    assert explorer.blur.disabled

    segments = [x for x in list(explorer.figure.data[2].x) + list(explorer.figure.data[3].x) if x is None]
    assert len(segments) == 9, "one correspondence line per source token"


def test_blur_slider_changes_the_entropic_plan():
    explorer = TransportPlanExplorer(method="entropic", n_source=8, n_target=6, blur=0.5, warp=0.0, seed=2,
                                     tol=1e-10, max_iter=20_000)
    spread = np.asarray(explorer.figure.data[0].z).max()
    explorer.blur.value = 0.2
    sharp = np.asarray(explorer.figure.data[0].z)
    pair = warped_pair(8, 6, warp=0.0, seed=2)
    cost = numpy_cosine(pair.source[0].numpy(), pair.target[0].numpy())
    expected = pot.sinkhorn(np.full(8, 1 / 8), np.full(6, 1 / 6), cost, 0.2**2, method="sinkhorn_log",
                            numItermax=100_000, stopThr=1e-12)
    np.testing.assert_allclose(sharp, expected, atol=1e-6)
    assert sharp.max() > spread
    assert not explorer.blur.disabled
    assert "blur 0.200" in explorer.title


@pytest.mark.parametrize("blur", [0.05, 0.1])
def test_default_explorer_converges_without_warning(blur):
    """Notebook 01's explorer cell: blur 0.05 or 0.1 on a 24 x 16 pair; the drawn plan must meet
    its marginals to the explorer's tolerance within the cap (no 'stopped after' warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explorer = TransportPlanExplorer(method="entropic", n_source=24, n_target=16, noise=0.4, warp=1.0,
                                         blur=blur, seed=0)
    plan = np.asarray(explorer.figure.data[0].z)
    assert np.abs(plan.sum(0) - 1 / 16).sum() < explorer.tol
    np.testing.assert_allclose(plan.sum(1), 1 / 24, atol=1e-12)


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="unknown method 'greedy'"):
        TransportPlanExplorer(method="greedy")


@pytest.mark.parametrize("module", ["plans", "mmd", "ssm", "learned"])
def test_an_explorer_module_does_not_import_the_trainer_or_the_analysis(module):
    code = f"import sys, alignlib.widgets.{module}; print(sorted(m for m in sys.modules if m.startswith('alignlib')))"
    loaded = ast.literal_eval(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                             check=True).stdout)
    assert f"alignlib.widgets.{module}" in loaded
    assert not {"alignlib.train", "alignlib.analysis", "alignlib.widgets.trained"} & set(loaded), loaded


# -- transport plans on data clips ---------------------------------------------------------------
@pytest.fixture(scope="module")
def data_source():
    split = load_mmsa(SAMPLE).splits["test"]
    truth = synthetic.load_correspondence(SAMPLE)
    rng = np.random.default_rng(0)
    maps = {m: rng.standard_normal((split.features[m].shape[2], split.features["text"].shape[2]))
            for m in ("audio", "vision")}
    source = DataClipSource(split, {m: truth[f"test_{m}"] for m in maps},
                            {m: (lambda x, w=w: x @ w) for m, w in maps.items()})
    return source, split, truth, maps


def test_clip_selector_shows_the_plan_against_the_truth(data_source):
    source, split, truth, maps = data_source
    explorer = TransportPlanExplorer(method="exact", source=source)
    assert explorer.clip in explorer.controls and explorer.modality_pair in explorer.controls
    explorer.clip.value = source.clips[3]
    explorer.modality_pair.value = "vision -> text"
    frames = split.masks["vision"][3]
    words = split.masks["text"][3]
    x = split.features["vision"][3][frames].astype(np.float64) @ maps["vision"]
    y = split.features["text"][3][words].astype(np.float64)
    expected = pot.emd(np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y)), numpy_cosine(x, y))
    np.testing.assert_allclose(np.asarray(explorer.figure.data[0].z), expected, atol=1e-10)
    table = truth["test_vision"][3]
    assert list(explorer.figure.data[1].x) == table[table >= 0].tolist()
    recovered = (expected.argmax(1) == table[table >= 0]).mean()
    assert f"clip {source.clips[3]}, vision -> text" in explorer.title
    assert f"recovered {recovered:.0%}" in explorer.title


def test_data_source_rejects_unknown_names(data_source):
    source = data_source[0]
    with pytest.raises(ValueError, match="unknown modality pair 'text -> audio'"):
        source.pair(source.clips[0], "text -> audio")
    with pytest.raises(ValueError, match="no features or truth table for modality 'smell'"):
        DataClipSource(data_source[1], {}, {"smell": lambda x: x})


# -- MMD ------------------------------------------------------------------------------------------
def test_mmd_explorer_follows_its_sliders():
    explorer = MMDExplorer(dim=4, n_tokens=50, seed=2)
    grid = explorer.gamma.min + 0.05 * np.arange(101)  # the values a browser's slider can take
    assert np.abs(10 ** grid - 0.25).min() < 1e-12, "the initial gamma 1/d is on the slider's grid"
    explorer.shift.value = 1.0
    explorer.gamma.value = 0.1
    explorer.scale.value = 2.0
    # Curve against the shift: the closed form at gamma 0.1, sigma 2, evaluated independently.
    grid = np.asarray(explorer.figure.data[0].x)
    # x - x' ~ N(0, 2 I), y - y' ~ N(0, 8 I), x - y ~ N(-s 1, 5 I); E exp(-g|Z|^2) = (1 + 2 g v)^(-d/2) exp(...)
    expected = [1.4**-2 + 2.6**-2 - 2 * 2.0**-2 * math.exp(-0.1 * 4 * s**2 / 2.0) for s in grid]
    np.testing.assert_allclose(np.asarray(explorer.figure.data[0].y), expected, rtol=1e-12)
    # The marker: the biased estimate from the explorer's draw, summed by brute force.
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(50, 4, generator=generator, dtype=torch.float64).numpy()
    y = 1.0 + 2.0 * torch.randn(50, 4, generator=generator, dtype=torch.float64).numpy()
    kernel = lambda a, b: np.exp(-0.1 * cdist(a, b, "sqeuclidean")).mean()  # noqa: E731
    biased = kernel(x, x) + kernel(y, y) - 2 * kernel(x, y)
    assert explorer.figure.data[1].y[0] == pytest.approx(biased, rel=1e-10)
    assert list(explorer.figure.data[3].x) == [0.1]
    assert f"biased estimate = {biased:.4f}" in explorer.title
    # Same mean, different variance: MMD sees it.
    explorer.shift.value = 0.0
    assert explorer.view["population"] == pytest.approx(gaussian_mmd2(0.0, 0.1, 4, 2.0)) and explorer.view["population"] > 0.05


# -- SSM impulse response ---------------------------------------------------------------------------
def test_impulse_response_matches_the_recurrence():
    rng = np.random.default_rng(0)
    deltas = rng.random((3, 12, 5))
    tokens = rng.integers(0, 6, (3, 12))
    explorer = ImpulseResponseExplorer(deltas=deltas, tokens=tokens, is_symbol=tokens >= 2, length=20)
    explorer.a.value = 2.0  # A = -2
    explorer.delta.value = 0.3
    h, response = 0.0, []
    for t in range(20):  # h_t = exp(Delta A) h_{t-1} + Delta u_t with a unit pulse at t = 0
        h = math.exp(0.3 * -2.0) * h + 0.3 * (t == 0)
        response.append(h)
    np.testing.assert_allclose(np.asarray(explorer.figure.data[0].y), response, rtol=1e-9)
    explorer.sequence.value = 2
    np.testing.assert_allclose(np.asarray(explorer.figure.data[1].y), deltas[2].mean(1))
    on_symbols = np.mean([deltas[2, t].mean() for t in range(12) if tokens[2, t] >= 2])
    assert f"mean Delta_t on symbols {on_symbols:.3f}" in explorer.title
    assert f"half-life {math.log(2) / 0.6:.1f} steps" in explorer.title


def test_impulse_response_rejects_mismatched_traces():
    with pytest.raises(ValueError, match="disagree"):
        ImpulseResponseExplorer(deltas=np.ones((2, 5, 3)), tokens=np.ones((2, 4)), is_symbol=np.ones((2, 4)))


# -- coupled pulse ----------------------------------------------------------------------------------
def test_coupled_pulse_grows_once_coupling_times_sum_exceeds_one():
    a = [-0.5, -1.0, -2.0]
    explorer = CoupledPulseExplorer(a=a, delta=0.2, coupling=1.0, length=15, pulse_at=3)
    abar = np.exp(0.2 * np.array(a))
    threshold = 1 / abar.sum()
    for coupling in (threshold - 0.02, threshold + 0.02):
        explorer.coupling.value = coupling
        # Brute-force loop: h_t^m = c Abar^m sum_k h_{t-1}^k + Delta u_t^m, pulse in modality 0.
        h = np.zeros(3)
        expected = []
        for t in range(15):
            h = coupling * abar * h.sum() + 0.2 * np.array([t == 3, 0, 0])
            expected.append(np.abs(h))
        shown = np.array([explorer.figure.data[m].y for m in range(3)])
        expected = np.array(expected).T
        np.testing.assert_allclose(shown, np.where(expected > 0, expected, np.nan), rtol=1e-10)  # NaN: not drawn
        growth = coupling * abar.sum()
        assert f"threshold c = 1 / sum_m Abar^m = {threshold:.3f}" in explorer.title
        assert shown[:, -1].sum() == pytest.approx(0.2 * growth ** (15 - 1 - 3), rel=1e-9)  # geometric
        assert ("blows up" in explorer.title) == (growth > 1)


def test_coupled_pulse_rejects_positive_a():
    with pytest.raises(ValueError, match="every a < 0"):
        CoupledPulseExplorer(a=[0.5, -1.0])


# -- trained models ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_models():
    split = load_mmsa(SAMPLE).splits["test"]
    dims = {m: split.features[m].shape[2] for m in split.features}
    models = {}
    for name, seed, routing in (("first", 0, "modality"), ("second", 1, "learned")):
        torch.manual_seed(seed)
        models[name] = build_model("alignmamba2", dims, ModelConfig(d_model=8, n_layers=2, routing=routing)).eval()
    return models, split, synthetic.load_correspondence(SAMPLE)


def test_trained_model_source_follows_clip_pair_and_model(two_models):
    models, split, truth = two_models
    source = TrainedModelSource(models, split, {m: truth[f"test_{m}"] for m in ("audio", "vision")})
    explorer = TransportPlanExplorer(method="exact", source=source)
    assert source.model in explorer.controls
    explorer.clip.value = source.clips[4]
    explorer.modality_pair.value = "audio -> text"
    source.model.value = "second"
    frames, words = split.masks["audio"][4], split.masks["text"][4]
    features = {m: torch.from_numpy(split.features[m][4:5]) for m in split.features}
    masks = {m: torch.from_numpy(split.masks[m][4:5]) for m in split.masks}
    with torch.no_grad():  # H_m by hand: input projection, then the unimodal Mamba layer
        h = {m: models["second"].unimodal[m](models["second"].inputs[m](features[m]), masks[m])[0][0].double().numpy()
             for m in ("audio", "text")}
    cost = numpy_cosine(h["audio"][frames], h["text"][words])
    expected = pot.emd(np.full(frames.sum(), 1 / frames.sum()), np.full(words.sum(), 1 / words.sum()), cost)
    np.testing.assert_allclose(np.asarray(explorer.figure.data[0].z), expected, atol=1e-10)
    table = truth["test_audio"][4][frames]
    assert list(explorer.figure.data[1].x) == table.tolist()
    hits = (expected.argmax(1) == table).mean()
    assert f"recovered {hits:.0%}" in explorer.title
    source.model.value = "first"
    assert not np.allclose(np.asarray(explorer.figure.data[0].z), expected)
    with pytest.raises(ValueError, match="models: give at least one"):
        TrainedModelSource({}, split, truth)


def test_expert_browser_shows_each_experts_share(two_models):
    models, split, _ = two_models
    browser = ExpertActivationBrowser(models["second"], split)
    browser.clip.value = browser.clips[2]
    browser.layer.value = "fusion.1.mixer.out_proj"
    batch = collate_clip(split, 2)
    with torch.no_grad(), record_experts(models["second"]) as records:
        models["second"](batch)
        norms = records["fusion.1.mixer.out_proj"][0].double().numpy()
        probabilities = records["fusion.1.mixer.out_router"][0].numpy()
    # one clip: the packed sequence is its real audio, video, then text tokens, no padding
    lengths = [int(split.masks[m][2].sum()) for m in ("audio", "vision", "text")]
    assert norms.shape[0] == sum(lengths)
    shares = norms / norms.sum(1, keepdims=True)
    np.testing.assert_allclose(np.asarray(browser.figure.data[0].z), shares.T, atol=1e-9)
    starts = np.cumsum([0] + lengths)
    segments = {"audio": slice(starts[0], starts[1]), "vision": slice(starts[1], starts[2]),
                "text": slice(starts[2], starts[3])}
    for e in range(4):
        bars = np.asarray(browser.figure.data[1 + e].y)
        np.testing.assert_allclose(bars, [shares[segments[m], e].mean() for m in ("text", "audio", "vision")], atol=1e-9)
    modality = np.repeat([1, 2, 0], lengths)  # ids of audio, vision, text
    chosen = probabilities.argmax(1)
    assert f"routing MI {mutual_info_score(modality, chosen) / math.log(2):.2f} bits" in browser.title
    with pytest.raises(ValueError, match="unknown layer 'fusion.7'"):
        ExpertActivationBrowser(models["first"], split, layer="fusion.7")


def collate_clip(split, index):
    return collate([MMSADataset(split)[index]])


def test_the_starting_blur_is_the_nearest_slider_point():
    from alignlib.widgets.plans import BLUR_LOG_RANGE, BLUR_LOG_STEP, on_log_grid

    grid = 10 ** np.arange(BLUR_LOG_RANGE[0], BLUR_LOG_RANGE[1] + 1e-9, BLUR_LOG_STEP)
    for blur in (0.05, 0.2, 0.0031, 1e-4, 3.0):
        nearest = grid[np.argmin(np.abs(np.log10(grid) - np.log10(blur)))]
        assert on_log_grid(blur, BLUR_LOG_RANGE, BLUR_LOG_STEP) == pytest.approx(nearest, rel=1e-12)


# -- learned plans over clips and epochs ---------------------------------------------------------
@pytest.fixture(scope="module")
def learned_epochs():
    """Two AlignMamba-1 models with the learned plan (standing in for two epochs of one run), each
    one's plans on six test clips as ``analysis.correspondences`` gives them."""
    from alignlib import analysis

    split = load_mmsa(SAMPLE).splits["test"]
    dims = {m: split.features[m].shape[2] for m in split.features}
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(build_model("alignmamba1", dims, ModelConfig(d_model=8, n_layers=1, plan="learned")).eval())
    epochs = [analysis.correspondences(model, split, split.alignment, range(6), methods=("proportional",))
              for model in models]
    return models, split, epochs


def aligner_plan(model, split, clip, modality):
    """The learned plan of one clip by hand: the model's aligner on the clip's real frames and words,
    each frame's row scaled to sum to 1."""
    frames, words = split.masks[modality][clip], split.masks["text"][clip]
    x = torch.from_numpy(split.features[modality][clip][frames])[None]
    y = torch.from_numpy(split.features["text"][clip][words])[None]
    with torch.no_grad():
        plan, _ = model.aligners[modality](x, y, torch.ones(x.shape[:2], dtype=torch.bool),
                                            torch.ones(y.shape[:2], dtype=torch.bool))
    plan = plan[0].double().numpy()
    return plan / plan.sum(1, keepdims=True)


def test_learned_plan_explorer_follows_clip_epoch_and_modality(learned_epochs):
    models, split, epochs = learned_epochs
    explorer = LearnedPlanExplorer(epochs, clip_ids=split.ids[:6])
    assert explorer.run not in explorer.controls, "one run: no run selector"
    np.testing.assert_allclose(np.asarray(explorer.figure.data[0].z), aligner_plan(models[0], split, 0, "audio").T,
                               atol=1e-5)
    explorer.clip.value = 3
    explorer.epoch.value = 1
    explorer.modality.value = "vision"
    expected = aligner_plan(models[1], split, 3, "vision")
    np.testing.assert_allclose(np.asarray(explorer.figure.data[0].z), expected.T, atol=1e-5)
    table = split.alignment["vision"][3][split.masks["vision"][3]]
    assert list(explorer.figure.data[1].y) == table.tolist()
    guess = expected.argmax(1)
    right = guess == table
    assert list(explorer.figure.data[2].x) == np.flatnonzero(right).tolist()
    assert list(explorer.figure.data[3].y) == guess[~right].tolist()
    curve = [(aligner_plan(model, split, 3, "vision").argmax(1) == table).mean() for model in models]
    np.testing.assert_allclose(np.asarray(explorer.figure.data[4].y), curve)
    np.testing.assert_allclose(np.asarray(explorer.figure.data[5].y), [e.accuracy["vision"]["model"] for e in epochs])
    assert list(explorer.figure.data[6].x) == [1] and explorer.figure.data[6].y[0] == pytest.approx(right.mean())
    assert f"clip {split.ids[3]}, vision, epoch 1: {right.mean():.0%} of its {len(table)} frames" in explorer.title


def test_learned_plan_explorer_switches_runs_and_shows_other_plans(learned_epochs):
    models, split, epochs = learned_epochs
    explorer = LearnedPlanExplorer({"long": epochs, "short": epochs[:1]}, method="proportional", run="long")
    assert explorer.run in explorer.controls
    explorer.epoch.value = 1
    explorer.run.value = "short"
    assert explorer.epoch.value == 0 and explorer.epoch.max == 0, "the epoch slider follows the run's length"
    assert len(explorer.figure.data[4].y) == 1 and explorer.title.startswith("short, clip 0, audio, epoch 0")
    frames, words = split.masks["audio"][0], split.masks["text"][0]
    plan = ot.proportional_plan(torch.zeros(1, int(frames.sum()), 1), torch.zeros(1, int(words.sum()), 1))[0].numpy()
    np.testing.assert_allclose(np.asarray(explorer.figure.data[0].z), (plan / plan.sum(1, keepdims=True)).T)
    with pytest.raises(ValueError, match="runs: give at least one run"):
        LearnedPlanExplorer({"empty": []})
    with pytest.raises(ValueError, match="no 'exact' plan for 'audio'"):
        LearnedPlanExplorer(epochs, method="exact")
    with pytest.raises(ValueError, match="clip_ids: expected 6 names"):
        LearnedPlanExplorer(epochs, clip_ids=["a"])
