"""The learned sweep's results view, checked against the committed record's raw rows (numpy and scipy)."""
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from alignlib.experiments import learned
from alignlib.experiments.sweep import load

RECORD = load(Path(__file__).resolve().parents[1] / "benchmarks/results/experiments_learned.json")
DECLARED = {run["factors"]["variant"] for run in RECORD["grid"]} - {"references"}
PRESENT = [v for v in learned.ORDER if v in DECLARED]  # the variants of this record, in the tables' order


def runs_of(variant):
    return [run for run in RECORD["runs"].values() if run["factors"]["variant"] == variant]


def t_interval(values):
    values = np.asarray(values, dtype=float)
    half = scipy_stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return values.mean(), values.mean() - half, values.mean() + half


def last(variant, metric):
    return [run["rows"][-1]["metrics"][metric] for run in runs_of(variant)]


def reference(name, metric, run="references"):
    return np.mean([row["metrics"][metric] for row in RECORD["runs"][run]["rows"] if row["reference"] == name])


def test_final_table_is_each_variants_last_row_over_seeds():
    table = learned.final_table(RECORD)
    assert list(dict.fromkeys(table.variant)) == PRESENT and DECLARED == set(PRESENT)
    for variant in PRESENT:
        for metric in learned.FINAL:
            row = table[(table.variant == variant) & (table.metric == metric)].iloc[0]
            values = last(variant, metric)
            assert row.n == len(values) == 3
            assert (row["mean"], row.ci_low, row.ci_high) == pytest.approx(t_interval(values), abs=1e-12)


def test_accuracy_per_epoch_averages_the_seeds_that_reached_the_epoch():
    table = learned.accuracy_per_epoch(RECORD)
    for variant in (learned.LEARNED, learned.RELAXED):
        for epoch in (0, 5, 10):  # every run reached epoch 10
            values = [row["metrics"]["audio_model"] for run in runs_of(variant) for row in run["rows"]
                      if row["epoch"] == epoch]
            row = table[(table.variant == variant) & (table.modality == "audio") & (table.epoch == epoch)].iloc[0]
            assert row.n == len(values)
            assert row["mean"] == pytest.approx(np.mean(values), abs=1e-12)
    assert table.epoch.max() == max(row["epoch"] for run in RECORD["runs"].values() for row in run["rows"]
                                    if "epoch" in row)


def test_reference_rows_place_mae_and_corr_between_set_level_and_bound():
    rows = learned.reference_rows(RECORD)
    for metric in ("MAE", "Corr"):
        for variant in learned.ORDER:
            lines = "references-data-seed-1" if variant in learned.ON_SECOND_DATA else "references"
            placed = rows[(rows.metric == metric) & (rows.variant == variant)]
            if lines not in RECORD["runs"]:  # a record made before the second data had its own lines
                assert placed.empty
                continue
            set_level, bound = reference("set_level", metric, lines), reference("bound", metric, lines)
            row = placed.iloc[0]
            mean, low, high = t_interval(last(variant, f"test_{metric}"))
            assert row.to_bound == pytest.approx((set_level - mean) / (set_level - bound), abs=1e-12)
            assert row.position == ("below" if high < set_level else "above" if low > set_level else "on")
    mae = rows[rows.metric == "MAE"].set_index("variant").position
    assert mae[learned.LEARNED] == "below" and mae[learned.RELAXED] == "on"


def test_comparisons_are_paired_t_tests_on_seeds_holm_adjusted_per_metric():
    table = learned.comparisons(RECORD)
    p = {}
    pairs = [(v, learned.ORACLE) for v in (learned.RELAXED, learned.LEARNED, "shuffled plan", learned.TUNED_ORACLE)]
    for variant, reference in pairs + [(learned.SECOND_DATA, learned.SECOND_ORACLE)]:  # each data's own oracle
        mine = {run["factors"]["seed"]: run["rows"][-1]["metrics"]["test_MAE"] for run in runs_of(variant)}
        oracle = {run["factors"]["seed"]: run["rows"][-1]["metrics"]["test_MAE"] for run in runs_of(reference)}
        seeds = sorted(mine)
        difference = np.array([mine[s] - oracle[s] for s in seeds])
        row = table[(table.variant == variant) & (table.metric == "test_MAE")].iloc[0]
        assert (row["mean"], row.low, row.high) == pytest.approx(t_interval(difference), abs=1e-12)
        p[variant] = scipy_stats.ttest_rel([mine[s] for s in seeds], [oracle[s] for s in seeds]).pvalue
        assert row.p == pytest.approx(p[variant], rel=1e-9)
    ordered = sorted(p, key=p.get)  # Holm: the k-th smallest p times (m - k + 1), cumulative max
    adjusted, running = {}, 0.0
    for k, variant in enumerate(ordered):
        running = max(running, min(1.0, (len(p) - k) * p[variant]))
        adjusted[variant] = running
    for variant, value in adjusted.items():
        row = table[(table.variant == variant) & (table.metric == "test_MAE")].iloc[0]
        assert row.p_adjusted == pytest.approx(value, rel=1e-9)
    second = table[table.variant == learned.SECOND_DATA]
    assert set(second.reference) == {learned.SECOND_ORACLE}  # never paired with the first data's oracle


def test_targets_say_whether_the_whole_interval_meets_each():
    table = learned.targets(RECORD)
    assert len(table) == 2 * len(learned.TARGETS)
    for _, row in table.iterrows():
        mean, low, high = t_interval(last(row.variant, row.metric))
        worst = low if row.sign == ">=" else high
        assert row.interval_meets == (worst >= row.goal if row.sign == ">=" else worst <= row.goal)
        assert row.mean_meets == (mean >= row.goal if row.sign == ">=" else mean <= row.goal)
        if row.metric.startswith("test_"):
            metric = row.metric.removeprefix("test_")
            lines = "references-data-seed-1" if row.variant in learned.ON_SECOND_DATA else "references"
            if lines not in RECORD["runs"]:  # that data has no lines of its own in this record
                assert np.isnan(row.goal_to_bound)
                continue
            set_level, bound = reference("set_level", metric, lines), reference("bound", metric, lines)
            assert row.goal_to_bound == pytest.approx((set_level - row.goal) / (set_level - bound))
    oracle = table[(table.variant == learned.ORACLE)].iloc[0]
    assert not oracle.interval_meets  # the oracle at the common sizes does not reach MAE 0.40


def test_summary_prints_the_records_numbers():
    text = learned.summary(RECORD)
    for variant in (learned.RELAXED, learned.LEARNED, learned.ORACLE, learned.TUNED_ORACLE):
        mean, low, high = t_interval(last(variant, "test_MAE"))
        assert f"{mean:.3f} [{low:.3f}, {high:.3f}]" in text
    mean, low, high = t_interval(last(learned.LEARNED, "correspondence_accuracy_audio"))
    assert f"{mean:.3f} [{low:.3f}, {high:.3f}]" in text
    guess = np.mean([run["rows"][0]["metrics"]["audio_proportional"] for run in runs_of(learned.LEARNED)])
    assert f"{guess:.3f}" in text
    for line, goal in zip(learned.target_sentences(RECORD).splitlines(), [t[3] for t in learned.TARGETS]):
        assert f" {goal}`" in line


def test_plot_draws_the_curves_and_the_intervals():
    import matplotlib
    matplotlib.use("Agg")
    fig = learned.plot(RECORD)
    curves, intervals = fig.axes[0], fig.axes[2]
    assert len(curves.get_lines()) == len(PRESENT)
    assert [t.get_text() for t in intervals.get_yticklabels()] == PRESENT[::-1]
