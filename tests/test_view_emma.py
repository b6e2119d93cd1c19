"""The emma sweep's results view (notebook 09) against the committed record: every number of its
tables, comparisons and sentences recomputed here from ``record["runs"][id]["rows"]`` with plain
numpy and SciPy, and the image-blind answers by counting."""
import copy
from collections import Counter

import matplotlib
import numpy as np
import pytest
from scipy import stats

from alignlib import PROJECT_ROOT
from alignlib.data import digit_scenes as ds
from alignlib.experiments import emma as view
from alignlib.experiments.sweep import load

matplotlib.use("Agg")
RECORD = load(PROJECT_ROOT / "benchmarks" / "results" / "experiments_emma.json")
LAST = RECORD["grid"][0]["emma"]["n_layers"]


def raw(record=RECORD) -> dict:
    """``{variant: {seed: metrics}}`` straight from the record's rows."""
    found = {}
    for run in record["grid"]:
        if run["id"] in record["runs"]:
            found.setdefault(run["factors"]["variant"], {})[run["factors"]["seed"]] = \
                record["runs"][run["id"]]["rows"][0]["metrics"]
    return found


def derived(metrics: dict, metric: str) -> float:
    """A metric of the view from a run's raw metrics."""
    if metric == "present_minus_false_yes":
        return metrics["accuracy_present"] - metrics["false_yes_rate"]
    if metric == "probe_r2_last":
        return metrics[f"probe_r2_layer{LAST}"]
    if metric == "probe_r2_change":
        return metrics[f"probe_r2_layer{LAST}"] - metrics["probe_r2_layer0"]
    return metrics[metric]


def t_interval(values) -> tuple[float, float, float]:
    values = np.asarray(values, dtype=float)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return values.mean(), low, high


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment written out: sort, multiply by (m - rank), running maximum, cap at 1."""
    order = np.argsort(p_values)
    adjusted, running = np.empty(len(p_values)), 0.0
    for rank, index in enumerate(order):
        running = max(running, (len(p_values) - rank) * p_values[index])
        adjusted[index] = min(1.0, running)
    return adjusted.tolist()


def expected_pairs(record=RECORD) -> dict:
    """``{(variant, metric): (mean, low, high, p_adjusted, per_seed)}``, paired by seed against the baseline."""
    runs, expected = raw(record), {}
    for metric in view.COMPARED:
        rows = {}
        for variant in ("+pixel", "+MFF", "+both (EMMA)"):
            seeds = sorted(set(runs[variant]) & set(runs["baseline"]))
            d = np.array([derived(runs[variant][s], metric) - derived(runs["baseline"][s], metric) for s in seeds])
            p = stats.ttest_rel([derived(runs[variant][s], metric) for s in seeds],
                                [derived(runs["baseline"][s], metric) for s in seeds]).pvalue
            rows[variant] = (*t_interval(d), p, d)
        for variant, adjusted in zip(rows, holm([row[3] for row in rows.values()])):
            mean, low, high, _, d = rows[variant]
            expected[variant, metric] = (mean, low, high, adjusted, d)
    return expected


def test_long_table_holds_every_raw_number_and_the_derived_ones():
    table = view.long_table(view.runs_of(RECORD))
    assert list(table.variant.unique()) == list(view.VARIANTS)
    values = table.set_index(["variant", "seed", "metric"])["value"]
    for variant, per_seed in raw().items():
        for seed, metrics in per_seed.items():
            assert not set(view.RUN_FIELDS) & set(table.metric)
            for metric in [*(m for m in metrics if m not in view.RUN_FIELDS), "present_minus_false_yes", "probe_r2_last",
                           "probe_r2_change"]:
                assert values[variant, seed, metric] == pytest.approx(derived(metrics, metric), abs=1e-12)


def test_variant_summary_is_the_t_interval_over_seeds():
    summary = view.variant_summary(view.long_table(view.runs_of(RECORD))).set_index(["variant", "metric"])
    for variant, per_seed in raw().items():
        for metric in ["accuracy", "false_yes_rate", "present_minus_false_yes", *(f"probe_r2_layer{k}" for k in range(LAST + 1))]:
            mean, low, high = t_interval([derived(m, metric) for m in per_seed.values()])
            row = summary.loc[variant, metric]
            assert row["n"] == len(per_seed)
            assert (row["mean"], row.ci_low, row.ci_high) == pytest.approx((mean, low, high), abs=1e-10)


def test_paired_comparisons_against_scipy_and_holm_by_hand():
    table = view.paired(view.long_table(view.runs_of(RECORD)))
    assert list(dict.fromkeys(table.variant)) == ["+pixel", "+MFF", "+both (EMMA)"]
    assert list(dict.fromkeys(table.metric)) == list(view.COMPARED)
    expected = expected_pairs()
    assert len(table) == len(expected)
    for _, row in table.iterrows():
        mean, low, high, adjusted, d = expected[row.variant, row.metric]
        assert (row["mean"], row.low, row.high) == pytest.approx((mean, low, high), abs=1e-10)
        assert row.p_adjusted == pytest.approx(adjusted, rel=1e-8)
        assert row.per_seed == pytest.approx(d, abs=1e-4)
        assert row.verdict.startswith("differs") == (adjusted < 0.05)


def test_accuracy_and_probe_tables_show_the_raw_means_and_clipped_intervals():
    summary = view.variant_summary(view.long_table(view.runs_of(RECORD)))
    blind = view.record_blind(RECORD)
    accuracy, probe = view.accuracy_table(summary, blind), view.probe_table(summary)
    assert list(accuracy.index) == [*view.VARIANTS, "image-blind"]
    for variant, per_seed in raw().items():
        mean, low, high = t_interval([m["accuracy"] for m in per_seed.values()])
        assert accuracy.loc[variant, "all"] == f"{mean:.3f} [{max(low, 0):.3f}, {min(high, 1):.3f}]"
        mean, low, high = t_interval([m[f"probe_r2_layer{LAST}"] for m in per_seed.values()])
        assert probe.loc[variant, LAST] == f"{mean:.3f} [{low:.3f}, {min(high, 1):.3f}]"
        assert accuracy.loc[variant, "probe R² (last)"] == probe.loc[variant, LAST]
    assert accuracy.loc["image-blind", "all"] == f"{blind.scores['accuracy']:.3f}"


def test_image_blind_by_counting():
    """The most frequent training answer per template, scored by hand, on the record's own data."""
    spec = RECORD["grid"][0]["emma"]
    train = ds.make_digit_scenes(spec["n_train"], "train", seed=spec["data_seed"])
    test = ds.make_digit_scenes(spec["n_test"], "test", seed=spec["data_seed"] + 1)
    absent, present = ds.QUESTION_TYPES.index("absent"), ds.QUESTION_TYPES.index("present")

    def template(kind):
        return present if kind == absent else kind

    counts = {}
    for kind, answer in zip(train.question_type.tolist(), train.answers.tolist()):
        counts.setdefault(template(kind), Counter())[answer] += 1
    majority = {k: min(c, key=lambda answer: (-c[answer], answer)) for k, c in counts.items()}  # ties: first answer
    blind = view.record_blind(RECORD)
    assert blind.answers == majority
    guesses = [majority[template(k)] for k in test.question_type.tolist()]
    right = [g == a for g, a in zip(guesses, test.answers.tolist())]
    assert blind.scores["accuracy"] == pytest.approx(np.mean(right), abs=1e-6)
    for index, name in enumerate(ds.QUESTION_TYPES):
        chosen = [r for r, k in zip(right, test.question_type.tolist()) if k == index]
        assert blind.scores[f"accuracy_{name}"] == pytest.approx(np.mean(chosen), abs=1e-6), name
        assert blind.counts[name] == len(chosen)
    false_yes = np.mean([g == ds.ANSWER_INDEX["yes"] for g, k in zip(guesses, test.question_type.tolist()) if k == absent])
    assert blind.scores["false_yes_rate"] == pytest.approx(false_yes, abs=1e-6)


def test_plateau_against_the_binomial_standard_error():
    summary = view.variant_summary(view.long_table(view.runs_of(RECORD)))
    blind = view.record_blind(RECORD)
    rows = view.plateau(summary, blind).set_index("variant")
    n_test = RECORD["grid"][0]["emma"]["n_test"]
    two_se = 2 * np.sqrt(blind.scores["accuracy"] * (1 - blind.scores["accuracy"]) / n_test)
    chance = 0.1 + 2 * np.sqrt(0.1 * 0.9 / blind.counts["digit_at"])
    for variant, per_seed in raw().items():
        accuracy = np.mean([m["accuracy"] for m in per_seed.values()])
        digit = np.mean([m["accuracy_digit_at"] for m in per_seed.values()])
        assert rows.loc[variant, "over_image_blind"] == pytest.approx(accuracy - blind.scores["accuracy"])
        assert rows.loc[variant, "two_se"] == pytest.approx(two_se)
        assert rows.loc[variant, "left_plateau"] == (accuracy - blind.scores["accuracy"] > two_se)
        assert rows.loc[variant, "digit_at_above_chance"] == (digit > chance)


def test_scene_counts_by_counting():
    data = ds.make_digit_scenes(300, "train", seed=3)
    table = view.scene_counts({"some": data})
    kinds = data.question_type.tolist()
    for index, name in enumerate(ds.QUESTION_TYPES):
        assert table.loc["some", name] == kinds.count(index)
    is_there = [a for a, k in zip(data.answers.tolist(), kinds) if ds.QUESTION_TYPES[k] in ("present", "absent")]
    assert table.loc["some", '"is there" answered "yes"'] == pytest.approx(
        is_there.count(ds.ANSWER_INDEX["yes"]) / len(is_there))


def test_summary_states_the_records_numbers_and_verdicts():
    text = view.summary(RECORD)
    runs, expected = raw(), expected_pairs()
    first = t_interval([m["probe_r2_layer0"] for m in runs["baseline"].values()])
    assert f"R² {first[0]:.3f} [{first[1]:.3f}, {first[2]:.3f}] at the LM's input" in text
    for variant, metric in [("+pixel", "probe_r2_last"), ("+both (EMMA)", "accuracy"),
                            ("+both (EMMA)", "false_yes_rate"), ("+MFF", "accuracy"), ("+MFF", "probe_r2_last")]:
        mean, low, high, adjusted, _ = expected[variant, metric]
        said = f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]; " + ("differs" if adjusted < 0.05 else "not distinguishable")
        assert said in text, (variant, metric)
    pixel_gain = expected["+pixel", "probe_r2_change"]  # the fall over the layers, not the input's higher start
    assert ("it keeps more of the image" in text) == (pixel_gain[3] < 0.05 and pixel_gain[0] > 0)
    change = t_interval([derived(m, "probe_r2_change") for m in runs["baseline"].values()])
    assert ("the image fades" in text) == (change[2] < 0)
    accuracy = [m["accuracy"] for m in runs["baseline"].values()]
    if expected["+both (EMMA)", "accuracy"][3] >= 0.05:
        assert f"ranges from {min(accuracy):.3f} to {max(accuracy):.3f}" in text


def test_summary_follows_the_record_not_a_script():
    """A record where the pixel loss leaves the last layer as the baseline's, and a one-seed record."""
    record = copy.deepcopy(RECORD)
    baseline = raw(record)["baseline"]
    for run in record["grid"]:
        if run["factors"]["variant"] == "+pixel":
            metrics = record["runs"][run["id"]]["rows"][0]["metrics"]
            metrics[f"probe_r2_layer{LAST}"] = baseline[run["factors"]["seed"]][f"probe_r2_layer{LAST}"] + \
                1e-3 * (run["factors"]["seed"] - 1)
            metrics["probe_r2_layer0"] = baseline[run["factors"]["seed"]]["probe_r2_layer0"]
    assert "it keeps more of the image" not in view.summary(record)
    one_seed = copy.deepcopy(RECORD)
    one_seed["grid"] = [run for run in RECORD["grid"] if run["factors"]["seed"] == 0]
    text = view.summary(one_seed)
    assert "With one seed there is no interval and no test" in text and "differs" not in text
    assert "one seed: no test" in view.paired(view.long_table(view.runs_of(one_seed))).verdict.iloc[0]


def test_show_displays_the_record(capsys):
    view.show(RECORD)
    printed = capsys.readouterr().out
    assert RECORD["command"] in printed and f"{len(RECORD['runs'])} of {len(RECORD['grid'])} runs" in printed


def test_a_record_the_view_cannot_read_is_named():
    with pytest.raises(ValueError, match="not a record of the emma sweep"):
        view.runs_of({**RECORD, "sweep": "ablations"})
    with pytest.raises(ValueError, match="no finished runs"):
        view.runs_of({**RECORD, "runs": {}})
    partial = {**RECORD, "runs": {k: v for k, v in RECORD["runs"].items() if not k.startswith("mff")}}
    with pytest.raises(ValueError, match=r"no finished run of \['\+MFF'\]"):
        view.summary(partial)


def test_provenance_and_answer_count_the_runs_that_ended_flat():
    """With the convergence fields in every run, the provenance gives the optimiser steps and the
    number of flat validation curves (counted here from the rows); without them it says nothing of them."""
    record = copy.deepcopy(RECORD)
    if not all("valid_flat" in run["rows"][0]["metrics"] for run in record["runs"].values()):
        assert "optimiser steps" not in view.provenance(record)
        for k, run in enumerate(record["runs"].values()):
            run["rows"][0]["metrics"].update(optimizer_steps=4000, stopped_by="steps", valid_flat=k % 3 == 0)
    ends = [run["rows"][0]["metrics"] for run in record["runs"].values()]
    flat = sum(1 for end in ends if end["valid_flat"] is True)
    steps = ", ".join(str(s) for s in sorted({end["optimizer_steps"] for end in ends}))
    assert (f"optimiser steps per run: {steps}; validation error flat (its last 5 passes improve on the best "
            f"before by less than one standard error) in {flat} of {len(ends)} runs") in view.provenance(record)
    answer = view.summary(record)
    assert f"{record['grid'][0]['emma']['train_steps']} optimiser steps a run, the validation error flat at the end in {flat} of " \
           f"{len(ends)} runs" in answer
    still = [f"{run['factors']['variant']} (seed {run['factors']['seed']})" for run in record["grid"]
             if record["runs"][run["id"]]["rows"][0]["metrics"]["valid_flat"] is False]
    assert all(name in answer for name in still) and ("Still improving" in answer) == bool(still)


def test_validation_figure_draws_each_recorded_curve_beside_the_image_blind_error():
    """One line per run with its recorded steps and errors, and the image-blind error on the
    validation scenes counted here by hand (the most common answer of each template in training)."""
    curves = {("baseline", 0): [{"step": 10, "error": 0.6, "answer_loss": 1.0}, {"step": 20, "error": 0.4, "answer_loss": 0.8}],
              ("+pixel", 0): [{"step": 10, "error": 0.5, "answer_loss": 0.9}, {"step": 20, "error": 0.3, "answer_loss": 0.7}]}
    spec = {"n_train": 300, "n_test": 30, "data_seed": 4}
    record = {"sweep": "emma", "grid": [{"id": run, "factors": {"variant": v, "seed": seed}, "emma": spec}
                                        for run, (v, seed) in zip("ab", curves)],
              "runs": {run: {"rows": [{"metrics": {}, "valid_curve": curve}]} for run, curve in zip("ab", curves.values())}}
    assert view.validation_curves(record) == curves
    train, valid = ds.make_digit_scenes(300, "train", seed=4), ds.make_digit_scenes(view.VALID_SCENES, "train", seed=6)
    template = view.templates(train.question_type)
    counts = {int(k): Counter(train.answers[template == k].tolist()) for k in template.unique()}
    common = {k: min(c, key=lambda answer: (-c[answer], answer)) for k, c in counts.items()}  # a tie: the first answer
    wrong = sum(common[int(k)] != int(a) for k, a in zip(view.templates(valid.question_type), valid.answers))
    blind = 1 - view.record_blind(record, "valid").scores["accuracy"]
    assert blind == pytest.approx(wrong / len(valid))
    lines = view.plot_validation(curves, blind).axes[0].lines
    assert [list(line.get_ydata()) for line in lines[:2]] == [[0.6, 0.4], [0.5, 0.3]]
    assert list(lines[2].get_ydata()) == [blind, blind]
