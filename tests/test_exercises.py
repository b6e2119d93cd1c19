"""The notebooks' exercise checks, both ways: every reference solution passes its check, and typical
wrong answers fail it with the hint meant for them (and never with the expected values)."""
import math

import pytest
import torch
from scipy import stats as scipy_stats

from alignlib.data.warped_pairs import warped_pair
from alignlib.notebooks import exercises, solutions
from alignlib.notebooks.exercises import CHECKS, ExerciseFailed, Exercises

PAIR = warped_pair(12, 8, dim=16, noise=0.4, warp=1.0, seed=0)  # notebook 01's pair
CONTEXT = {"entropy_halving_blur": {"source": PAIR.source[0], "target": PAIR.target[0]},
           "answers_unchanged_by_padding": {"gap": 0.0},
           "oracle_survives_shuffled_plan": {"shuffled_mae": 1.2, "oracle_mae": 0.6, "set_level_mae": 0.9},
           "order_matters_to_alignmamba2": {"change": 0.0007},
           "learned_plan_survives_reversal": {"reversed_accuracy": 0.1, "accuracy": 0.95}}


def other_cheap_column(cost, x_mask, y_mask):
    plan = solutions.relaxed_plan(cost, x_mask, y_mask)
    plan[0, 0] = plan[0, 0].roll(1)  # clip 0, row 0: its mass one column over
    return plan


def no_delta_in_drive(u, delta, A, B, C):
    return solutions.selective_scan_loop(u / delta, delta, A, B, C)


def read_before_update(u, delta, A, B, C):
    state, outputs = u.new_zeros(u.shape[0], u.shape[1], A.shape[1]), []
    for t in range(u.shape[-1]):
        outputs.append((state * C[:, None, :, t]).sum(-1))  # y_t read before h_t is formed
        state = torch.exp(delta[:, :, t, None] * A) * state + delta[:, :, t, None] * B[:, None, :, t] * u[:, :, t, None]
    return torch.stack(outputs, dim=-1)


def layer_norm_fusion(states, weight, bias):
    centred = [s - s.mean(-1, keepdim=True) for s in states]
    return solutions.multi_scale_fusion(centred, weight, bias)


def probe_without_intercept(train_states, train_pixels, test_states, test_pixels):
    weights = torch.linalg.lstsq(train_states, train_pixels).solution
    residual = (test_pixels - test_states @ weights).pow(2).sum()
    return 1 - residual / (test_pixels - test_pixels.mean(0)).pow(2).sum()


def frame_normalised(similarity, frame_mask, word_mask):
    real = frame_mask[:, :, None] & word_mask[:, None, :]
    return similarity.masked_fill(~real, -math.inf).log_softmax(dim=2)


def viterbi_free_end(scores):
    return scores.argmax(1)  # each frame on its own best word


def path_that_skips(scores):
    path = solutions.best_path_loop(scores)
    path[-1] = scores.shape[1] + 1 if scores.shape[1] > 1 else path[-1]
    return path


def ci_normal(values):
    return values.mean(), values.mean() - 1.96 * values.std() / len(values) ** 0.5, \
        values.mean() + 1.96 * values.std() / len(values) ** 0.5


def interval_of_one_value(values):
    half = scipy_stats.t.ppf(0.975, len(values) - 1) * values.std()  # s, not s / sqrt(n)
    return values.mean(), values.mean() - half, values.mean() + half


def unpaired_interval(a, b):
    interval = scipy_stats.ttest_ind(a.numpy(), b.numpy(), equal_var=False).confidence_interval(0.95)
    return (a - b).mean(), interval.low, interval.high


# exercise -> [(a typical wrong answer, a phrase of the hint it must get), ...]
WRONG = {
    "relaxed_plan": [
        (lambda cost, x_mask, y_mask: solutions.relaxed_plan(cost, x_mask | True, y_mask | True), "masks are ignored"),
        (lambda cost, x_mask, y_mask: solutions.relaxed_plan(cost, x_mask, y_mask | True),
         "a padded target token receives mass"),
        (lambda cost, x_mask, y_mask: solutions.relaxed_plan(cost, x_mask | True, y_mask),
         "a padded source token sends mass"),
        (lambda cost, x_mask, y_mask: solutions.relaxed_plan(cost, x_mask, y_mask) * x_mask.sum(1)[:, None, None]
         / cost.shape[1], "not 1/T_m"),
        (lambda cost, x_mask, y_mask: solutions.relaxed_plan(cost, x_mask, y_mask) * x_mask.sum(1)[:, None, None],
         "a mass of 1"),
        (lambda cost, x_mask, y_mask: solutions.relaxed_plan(-cost, x_mask, y_mask), "most expensive"),
        (lambda cost, x_mask, y_mask: solutions.relaxed_plan(cost.transpose(1, 2), y_mask, x_mask).transpose(1, 2),
         "wrong axis"),
        (lambda cost, x_mask, y_mask: solutions.relaxed_plan(cost, x_mask, y_mask).transpose(1, 2), "transposed"),
        (other_cheap_column, "row 0 puts its mass on column"),
    ],
    "aligned_average": [
        (lambda plan, source: plan.T @ source, "a weighted sum"),
        (lambda plan, source: plan.T @ source / plan.sum(0)[:, None], "NaN or inf in the rows of words"),
        (lambda plan, source: solutions.aligned_average(plan, source).T, "transposed"),
    ],
    "entropy_halving_blur": [
        (lambda source, target: solutions.entropy_halving_blur(source, target) ** 2, "epsilon = blur^2"),
        (lambda source, target: 0.05, "try a larger one"),
        (lambda source, target: -1.0, "a blur is a positive length"),
    ],
    "kernel_matrix": [
        (lambda x, y, gamma: torch.exp(-gamma * torch.cdist(x, y)), "not squared"),
        (lambda x, y, gamma: torch.exp(-torch.cdist(x, y) ** 2 / (2 * gamma**2)), "width sigma of Eq. 7"),
        (lambda x, y, gamma: torch.exp(gamma * torch.cdist(x, y) ** 2), "sign"),
        (lambda x, y, gamma: solutions.kernel_matrix(y, x, gamma), "transposed"),
    ],
    "unbiased_mmd2": [
        (lambda x, y, gamma: (solutions.kernel_matrix(x, x, gamma).mean() + solutions.kernel_matrix(y, y, gamma).mean()
                              - 2 * solutions.kernel_matrix(x, y, gamma).mean()), "biased V-statistic"),
        (lambda x, y, gamma: ((solutions.kernel_matrix(x, x, gamma).sum() - len(x)) / len(x) ** 2
                              + (solutions.kernel_matrix(y, y, gamma).sum() - len(y)) / len(y) ** 2
                              - 2 * solutions.kernel_matrix(x, y, gamma).mean()), "m (m - 1) terms"),
        (lambda x, y, gamma: solutions.unbiased_mmd2(x, y, gamma) + solutions.kernel_matrix(x, y, gamma).mean(),
         "cross term counts twice"),
    ],
    "equivalent_gamma": [
        (lambda gamma, alpha: gamma * alpha, "off by a factor alpha"),
        (lambda gamma, alpha: gamma / alpha**2, "inverted"),
    ],
    "peak_gamma": [
        (lambda shift, dim: 1 / dim, "the paper's choice"),
        (lambda shift, dim: math.log(solutions.peak_gamma(shift, dim)), "positive"),
        (lambda shift, dim: 10 * solutions.peak_gamma(shift, dim), "at a smaller gamma"),
    ],
    "zoh_step": [
        (lambda h, u, a, b, delta: torch.exp(delta * a) * h + delta * b * u, "first-order input matrix"),
        (lambda h, u, a, b, delta: torch.exp(a) * h + torch.expm1(a) / a * b * u, "multiplied by the step delta"),
        (lambda h, u, a, b, delta: solutions.zoh_step(h, -u, a, b, delta), "wrong sign"),
    ],
    "selective_scan_loop": [
        (no_delta_in_drive, "leaves delta out"),
        (lambda u, delta, A, B, C: solutions.selective_scan_loop(u, delta, A, B, C).transpose(1, 2), "transposed"),
        (read_before_update, "lags one step"),
        (lambda u, delta, A, B, C: torch.nn.functional.pad(solutions.selective_scan_loop(u, delta, A, B, C), (1, -1)),
         "shifted one step late"),
    ],
    "impulse_response": [
        (lambda a, b, c, delta, length: solutions.impulse_response(a, b, c, delta, length).flip(0), "reversed"),
        (lambda a, b, c, delta, length: solutions.impulse_response(a, b, c, delta, length + 1)[1:], "one lag late"),
        (lambda a, b, c, delta, length: solutions.impulse_response(a, torch.expm1(delta * a) / (delta * a) * b, c,
                                                                   delta, length), "exact ZOH"),
        (lambda a, b, c, delta, length: solutions.impulse_response(a, b, c, delta, length) * 2, "off by a factor of 2"),
    ],
    "route_by_modality": [
        (lambda tokens, modality, experts, shared: solutions.route_by_modality(tokens, modality, experts, 0 * shared),
         "shared expert is missing"),
        (lambda tokens, modality, experts, shared: solutions.route_by_modality(tokens, 0 * modality, experts, shared),
         "through expert 0"),
        (lambda tokens, modality, experts, shared: tokens @ experts[0] + tokens @ shared.T, "raised RuntimeError"),
    ],
    "load_balancing_loss": [
        (lambda probabilities: solutions.load_balancing_loss(probabilities) / probabilities.shape[-1], "factor M"),
        (lambda probabilities: probabilities.shape[-1] * probabilities.flatten(0, 1).mean(0).pow(2).sum(),
         "first choice"),
    ],
    "blowup_coupling": [
        (lambda a, delta: 1 / len(a), "1/M"),
        (lambda a, delta: torch.exp(delta * a).sum(), "inverted"),
        (lambda a, delta: 1 / torch.exp(a).sum(), "multiplied by the step delta"),
        (lambda a, delta: 1.1 * solutions.blowup_coupling(a, delta), "it grows"),
    ],
    "modality_information_bits": [
        (lambda modality, expert: solutions.modality_information_bits(modality, expert) * math.log(2), "in nats"),
        (lambda modality, expert: solutions.modality_information_bits(modality, modality), "entropy of the modality"),
    ],
    "proportional_guess": [
        (lambda frames, words: torch.round(torch.arange(frames) * words / frames), "rounded"),
        (lambda frames, words: torch.arange(frames) * (words - 1) // max(frames - 1, 1), "stretched"),
        (lambda frames, words: solutions.proportional_guess(words, frames), "shape"),
    ],
    "recovery_accuracy": [
        (lambda plan, truth, mask: (plan.argmax(2) == truth).double().mean(), "padded frames count"),
        (lambda plan, truth, mask: torch.stack([solutions.recovery_accuracy(p[None], t[None], m[None])
                                                for p, t, m in zip(plan, truth, mask)]).mean(), "averaged per clip"),
        (lambda plan, truth, mask: (plan.argmax(1) == truth)[mask].double().mean(), "raised"),
    ],
    "expected_missing_share": [
        (lambda rate, modalities: rate, "at least one kept"),
        (lambda rate, modalities: rate - rate**modalities, "one of its M slots"),
        (lambda rate, modalities: rate / 2, "is off by"),
    ],
    "patchify": [
        (lambda images, size: images.reshape(len(images), -1, size * size), "plain reshape"),
        (lambda images, size: solutions.patchify(images, size)
         .reshape(len(images), images.shape[1] // size, images.shape[2] // size, -1).transpose(1, 2)
         .reshape(len(images), -1, size * size), "column order"),
        (lambda images, size: solutions.patchify(images, size).reshape(len(images), -1, size, size).transpose(2, 3)
         .reshape(len(images), -1, size * size), "pixels inside each patch are transposed"),
    ],
    "multi_scale_fusion": [
        (lambda states, weight, bias: torch.cat(states, -1) @ weight.T + bias, "not normalised"),
        (layer_norm_fusion, "does not centre"),
        (lambda states, weight, bias: sum(states) @ weight.T + bias, "raised RuntimeError"),
    ],
    "probe_r2": [
        (probe_without_intercept, "no intercept"),
        (lambda train_x, train_y, test_x, test_y: solutions.probe_r2(train_x, train_y, train_x, train_y),
         "scored on the training tokens"),
    ],
    "answers_unchanged_by_padding": [(False, "the measurement disagrees"), ("yes", "True or False")],
    "mult_acc_7": [
        (lambda pred, truth: (pred.round() == truth.round()).double().mean(), "not clipped"),
        (lambda pred, truth: (pred.clamp(-3, 3).trunc() == truth.clamp(-3, 3).trunc()).double().mean(), "truncated"),
        (lambda pred, truth: ((pred.clamp(-3, 3).abs() + 0.5).floor() * pred.sign()
                              == (truth.clamp(-3, 3).abs() + 0.5).floor() * truth.sign()).double().mean(),
         "half to even"),
    ],
    "validation_flat": [
        (lambda history, window, tolerance: history[-1] >= min(history[:-window]) * (1 - tolerance), "not the last value"),
        (lambda history, window, tolerance: len(history) > window and min(history[-window:])
         >= min(history[:-window]) - tolerance, "relative"),
        (lambda history, window, tolerance: len(history) < window or solutions.validation_flat(history, window, tolerance),
         "not flat yet"),
        (lambda history, window, tolerance: "yes", "True or False"),
    ],
    "oracle_survives_shuffled_plan": [(True, "the measurement disagrees"), (1, "True or False")],
    "state_spread": [
        (lambda states, mask: solutions.state_spread(states, torch.ones_like(mask)), "padded tokens count"),
        (lambda states, mask: (1 - (torch.nn.functional.normalize(states, dim=-1) * torch.nn.functional.normalize(
            (torch.nn.functional.normalize(states, dim=-1) * mask[..., None]).sum(1), dim=-1)[:, None]).sum(-1))
         [mask].mean(), "pooled over all real tokens"),
    ],
    "order_matters_to_alignmamba2": [(True, "hardly depends on it")],
    "mean_interval": [
        (ci_normal, "Student's t"),
        (lambda values: solutions.mean_interval(values)[:2], "three numbers"),
        (interval_of_one_value, "not of the mean"),
    ],
    "paired_interval": [
        (lambda a, b: solutions.paired_interval(b, a), "the sign"),
        (unpaired_interval, "unpaired"),
    ],
    "best_path_loop": [
        (viterbi_free_end, "each frame's best word on its own"),
        (lambda scores: solutions.best_path_loop(scores).flip(0), "goes back to an earlier word"),
    ],
    "word_normalised_scores": [
        (frame_normalised, "wrong axis"),
        (lambda similarity, frame_mask, word_mask: similarity.log_softmax(1), "padded frames count"),
        (lambda similarity, frame_mask, word_mask: similarity, "not normalised"),
    ],
    "learned_plan_survives_reversal": [(True, "the measurement disagrees")],
}


def lambda_slope(lambda_ot, lambda_mmd, seed, mae, with_seed=True, log=torch.log10, quantile=None, keep_zero=True):
    """Notebook 08's exercise 3 with one typical mistake switched on: no seed column, natural
    logarithms, a normal quantile, or the λ_OT = 0 runs dropped."""
    if not keep_zero:
        kept = lambda_ot > 0
        lambda_ot, lambda_mmd, seed, mae = lambda_ot[kept], lambda_mmd[kept], seed[kept], mae[kept]
    floor = [log(torch.where(w > 0, w, w[w > 0].min())) for w in (lambda_ot, lambda_mmd)]
    columns = [torch.ones_like(mae), floor[0], (lambda_ot == 0).double(), floor[1], (lambda_mmd == 0).double()]
    columns = [c for c in columns if keep_zero or c is not columns[2]]
    columns += [(seed == s).double() for s in seed.unique()[1:]] if with_seed else []
    design = torch.stack(columns, 1)
    coef = torch.linalg.lstsq(design, mae[:, None]).solution[:, 0]
    df = len(mae) - design.shape[1]
    se = ((mae - design @ coef).pow(2).sum() / df * torch.linalg.inv(design.T @ design)[1, 1]).sqrt()
    half = (quantile or scipy_stats.t.ppf(0.975, df)) * se
    return coef[1], coef[1] - half, coef[1] + half


WRONG["lambda_ot_slope"] = [
    (lambda *a: lambda_slope(*a, with_seed=False), "the seed is missing"),
    (lambda *a: lambda_slope(*a, log=torch.log), "natural logarithms"),
    (lambda *a: lambda_slope(*a, quantile=1.96), "Student's t with n - p"),
    (lambda *a: lambda_slope(*a, keep_zero=False), "runs were dropped"),
    (lambda *a: lambda_slope(*a)[0], "three numbers"),
]


def test_the_lambda_slope_by_hand_is_statsmodels_ols():
    """The reference solution of notebook 08's exercise 3 against statsmodels' OLS fitted directly on
    a grid with a known slope (the check itself compares with ``stats.trend``)."""
    import numpy as np
    import statsmodels.api as sm

    rng = np.random.default_rng(5)
    ot = np.repeat([0.0, 1e-3, 1e-2, 1e-1, 1.0], 6)
    mmd = np.tile([0.0, 1e-2, 1.0], 10)
    seed = np.tile([0, 0, 0, 1, 1, 1], 5)
    mae = 0.5 + 0.02 * np.log10(np.where(ot > 0, ot, 1e-3)) + 0.1 * seed + rng.normal(0, 0.01, ot.size)
    design = np.column_stack([np.ones_like(ot), np.log10(np.where(ot > 0, ot, 1e-3)), ot == 0,
                              np.log10(np.where(mmd > 0, mmd, 1e-2)), mmd == 0, seed]).astype(float)
    fit = sm.OLS(mae, design).fit()
    got = solutions.lambda_ot_slope(*(torch.tensor(v, dtype=torch.float64) for v in (ot, mmd, seed, mae)))
    assert [float(v) for v in got] == pytest.approx([fit.params[1], *fit.conf_int(0.05)[1]], rel=1e-8)


def test_every_check_has_a_solution_wrong_answers_and_a_docstring():
    assert set(CHECKS) == set(WRONG)
    for name, check in CHECKS.items():
        assert hasattr(solutions, name), f"no reference solution for {name!r}"
        assert check.__doc__, f"check_{name} has no docstring"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_the_reference_solution_passes(name):
    verdict = exercises.check(name, getattr(solutions, name), **CONTEXT.get(name, {}))
    assert verdict.passed, verdict


@pytest.mark.parametrize("name, wrong, hint", [(name, wrong, hint) for name, cases in WRONG.items()
                                               for wrong, hint in cases],
                         ids=[f"{name}-{i}" for name, cases in WRONG.items() for i in range(len(cases))])
def test_a_typical_wrong_answer_fails_with_its_hint(name, wrong, hint):
    verdict = exercises.check(name, wrong, **CONTEXT.get(name, {}))
    assert verdict.status == "failed" and hint in verdict.message, verdict


def test_the_hints_cover_what_the_issue_names():
    """Shape, mask ignored, wrong axis, off by a factor, transposed: each is some wrong answer's hint."""
    hints = [hint for cases in WRONG.values() for _, hint in cases]
    for phrase in ("shape", "padded frames count", "wrong axis", "off by a factor", "transposed"):
        assert any(phrase in hint for hint in hints), phrase


def test_a_prediction_that_the_measurement_contradicts_fails():
    verdict = exercises.check("answers_unchanged_by_padding", True, gap=0.3)
    assert verdict.status == "failed" and "3.00e-01" in verdict.message


def test_an_empty_answer_is_not_answered_yet_and_never_raises():
    def template(cost, x_mask, y_mask):
        ...  # your code

    for answer in (None, template):
        verdict = Exercises(solutions=False).check("relaxed_plan", answer)
        assert verdict.status == "unanswered" and "not answered yet" in verdict.message
    assert "return" in Exercises().check("relaxed_plan", template).message
    assert Exercises().check("answers_unchanged_by_padding", None, gap=0.0).status == "unanswered"


def test_an_answer_that_raises_names_the_case_and_the_inputs():
    verdict = exercises.check("relaxed_plan", lambda cost, x_mask, y_mask: cost[100])
    assert verdict.status == "failed" and "IndexError" in verdict.message
    assert "12 x 8 pairs, the second with 9 x 6 real tokens (inputs: float64 (2, 12, 8), bool (2, 12), bool (2, 8))" in verdict.message


def test_a_wrong_answer_is_shown_not_raised_without_solutions():
    verdict = Exercises(solutions=False).check("equivalent_gamma", lambda gamma, alpha: gamma)
    assert verdict.status == "failed" and "✗ equivalent_gamma" in repr(verdict)


def test_solutions_fill_in_the_reference_folded_under_the_verdict(monkeypatch):
    verdict = Exercises(solutions=True).check("equivalent_gamma", None)
    assert verdict.passed and "def equivalent_gamma" in verdict.solution
    page = verdict._repr_html_()
    assert "<details>" in page and "def equivalent_gamma" in page and "✓" in page
    monkeypatch.setattr(solutions, "equivalent_gamma", lambda gamma, alpha: gamma * alpha)
    with pytest.raises(ExerciseFailed, match="reference solution of 'equivalent_gamma' fails"):
        Exercises(solutions=True).check("equivalent_gamma", None)


def test_an_unknown_exercise_is_an_error():
    with pytest.raises(KeyError, match="no exercise 'relaxed'"):
        Exercises(solutions=True).check("relaxed", None)


def test_the_runner_fills_in_solutions_and_the_page_folds_them(tmp_path):
    """``execute`` sets a notebook's ``solutions`` parameter (True by default): the check shows the
    reference folded on the HTML page; with ``solutions=False`` the cell says "not answered yet"."""
    import nbformat
    from test_notebook_runner import make_notebook

    from alignlib import notebooks
    from alignlib.notebooks.export import notebook_to_html

    notebook = make_notebook(tmp_path / "01_exercise.ipynb", [
        "from alignlib.notebooks import record_metrics\nrecord_metrics(metrics_path, done=1)",
        "from alignlib.notebooks.exercises import Exercises\nexercise = Exercises(solutions)",
        "def equivalent_gamma(gamma, alpha):\n    ...  # your code\n\n\n"
        "exercise.check('equivalent_gamma', equivalent_gamma)"])
    cells = nbformat.read(notebook, as_version=4)
    cells.cells[0].source = 'solutions: bool = False\n' + cells.cells[0].source
    nbformat.write(cells, notebook)

    page = notebook_to_html(nbformat.read(notebooks.execute(notebook, tmp_path / "solved").output, as_version=4))
    assert "<details><summary>reference solution" in page and "def equivalent_gamma(gamma, alpha):" in page
    assert "return gamma * alpha**2" in page.split("<details>")[1]
    student = nbformat.read(notebooks.execute(notebook, tmp_path / "student", solutions=False).output, as_version=4)
    shown = student.cells[-1].outputs[0]["data"]["text/plain"]
    assert "not answered yet" in shown and "details" not in student.cells[-1].outputs[0]["data"]["text/html"]


# 07's second exercise: the nearest word of each frame on centred states
def nearest_words(frames, words, frame_mask, word_mask, frame_centre, word_centre, cosine=True, masked=True):
    x, y = frames - frame_centre, words - word_centre
    score = (torch.nn.functional.normalize(x, dim=-1) @ torch.nn.functional.normalize(y, dim=-1).mT if cosine
             else -torch.cdist(x, y))
    return (score.masked_fill(~word_mask[:, None, :], -math.inf) if masked else score).argmax(2)


def real_mean(x, mask):
    return x[mask].mean(0)


def clip_means(x, mask):
    return ((x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))[:, None, :]


WRONG_NEAREST_WORDS = [
    (lambda f, w, fm, wm: nearest_words(f, w, fm, wm, 0.0, 0.0), "not centred"),
    (lambda f, w, fm, wm: nearest_words(f, w, fm, wm, f.flatten(0, 1).mean(0), w.flatten(0, 1).mean(0)),
     "padded tokens count in the mean"),
    (lambda f, w, fm, wm: nearest_words(f, w, fm, wm, clip_means(f, fm), clip_means(w, wm)), "centred per clip"),
    (lambda f, w, fm, wm: nearest_words(f, w, fm, wm, real_mean(f, fm), real_mean(w, wm), cosine=False), "by distance"),
    (lambda f, w, fm, wm: nearest_words(f, w, fm, wm, real_mean(f, fm), real_mean(w, wm), masked=False),
     "a padded word was chosen"),
    (lambda f, w, fm, wm: nearest_words(f, w, fm, wm, real_mean(f, fm), real_mean(w, wm))[:, :-1], "shape"),
]
WRONG["centred_nearest_words"] = WRONG_NEAREST_WORDS  # for the inventory of checks above


@pytest.mark.parametrize("wrong, hint", WRONG_NEAREST_WORDS, ids=[hint for _, hint in WRONG_NEAREST_WORDS])
def test_a_wrong_nearest_word_fails_with_its_hint(wrong, hint):
    verdict = exercises.check("centred_nearest_words", wrong)
    assert verdict.status == "failed" and hint in verdict.message, verdict


def test_the_nearest_word_check_reports_the_trained_states():
    """Given a model's states, the check also compares the answer there and reports both guesses' accuracy."""
    generator = torch.Generator().manual_seed(0)
    words = torch.randn(2, 4, 3, generator=generator, dtype=torch.float64)
    truth = torch.tensor([[0, 1, 2, 3, 3], [0, 0, 1, 2, -1]])
    frames = words.gather(1, truth.clamp_min(0)[..., None].expand(-1, -1, 3)) + 5.0  # each frame its word, offset
    masks = {"audio": truth >= 0, "text": torch.ones(2, 4, dtype=torch.bool)}
    verdict = exercises.check("centred_nearest_words", solutions.centred_nearest_words,
                              states={"audio": frames, "text": words}, masks=masks, truth=truth)
    assert verdict.passed and "centred guess puts 1.000 of the audio frames" in verdict.message, verdict
    wrong = exercises.check("centred_nearest_words", WRONG_NEAREST_WORDS[0][0],
                            states={"audio": frames, "text": words}, masks=masks, truth=truth)
    assert wrong.status == "failed"
