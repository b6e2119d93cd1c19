"""The inside sweep's results view (notebook 07) against the committed JSON, each number recomputed
from the raw rows with NumPy and SciPy."""
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from alignlib.experiments import inside
from alignlib.experiments.sweep import load

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


@pytest.fixture(scope="module")
def record():
    return load(RESULTS / "experiments_inside.json")


@pytest.fixture(scope="module")
def ablations():
    return load(RESULTS / "experiments_ablations.json")


def rows_of(record, variant):
    """Each seed's result rows of ``variant``, ordered by seed."""
    runs = sorted((r for r in record["runs"].values() if r["factors"]["variant"] == variant), key=lambda r: r["factors"]["seed"])
    return [r["rows"] for r in runs]


def at(record, variant, metric, checkpoint):
    """``metric`` per seed at the first row (epoch 0) or the last one."""
    return np.array([rows[0 if checkpoint == "init" else -1]["metrics"][metric] for rows in rows_of(record, variant)])


def t_interval(x):
    return scipy_stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=scipy_stats.sem(x))


def holm(p):
    """Holm's step-down adjustment, written out."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p)
    adjusted = np.maximum.accumulate([(len(p) - k) * p[i] for k, i in enumerate(order)])
    result = np.empty_like(p)
    result[order] = np.minimum(adjusted, 1)
    return result


def test_the_plan_table_matches_the_raw_rows(record):
    table = inside.plan_table(record).set_index(["variant", "modality", "method"])
    for variant, modality, method in [("AM2 with losses", "audio", "exact"), ("AM2 OT weight 1", "vision", "relaxed"),
                                      ("AlignMamba-1 learned plan", "audio", "model")]:
        row = table.loc[variant, modality, method]
        end = at(record, variant, f"{modality}_{method}", "end")
        assert row.end == pytest.approx(end.mean()) and row.init == pytest.approx(at(record, variant, f"{modality}_{method}", "init").mean())
        assert (row.ci_low, row.ci_high) == pytest.approx(t_interval(end))
        guess = at(record, variant, f"{modality}_proportional", "init").mean()
        chance = at(record, variant, f"{modality}_chance", "init").mean()
        assert row.proportional == pytest.approx(guess) and row.chance == pytest.approx(chance)
        low = t_interval(end)[0]
        expected = ("above the proportional guess" if low > guess else
                    "below the proportional guess, above chance" if low > chance else "not above chance")
        assert row.position == expected
    assert table.loc["AlignMamba-1 learned plan", "vision", "model"].position == "above the proportional guess"
    assert "AM2 learned routing" not in table.index.get_level_values("variant")
    assert ("AM2 with losses", "audio", "model") not in table.index  # AlignMamba-2 has no plan of its own


def test_the_loss_table_matches_the_raw_rows(record):
    table = inside.loss_table(record).set_index(["variant", "loss"])
    row = table.loc["AM2 OT weight 1", "ot"]
    end = at(record, "AM2 OT weight 1", "ot", "end")
    assert row.end == pytest.approx(end.mean()) and (row.ci_low, row.ci_high) == pytest.approx(t_interval(end))
    assert row.init == pytest.approx(at(record, "AM2 OT weight 1", "ot", "init").mean())


def test_the_paired_comparisons_are_paired_t_tests_holm_adjusted_per_metric(record):
    table = inside.comparisons(record).set_index(["variant", "metric"])
    assert set(table.index.get_level_values("variant")) == set(inside.WITH_LOSSES)
    for metric in ("vision_exact", "test_MAE", "ot"):
        p = []
        for variant in inside.WITH_LOSSES:
            a, b = at(record, variant, metric, "end"), at(record, inside.BASELINE, metric, "end")
            row = table.loc[variant, metric]
            assert row["mean"] == pytest.approx((a - b).mean())
            assert (row.low, row.high) == pytest.approx(t_interval(a - b))
            assert row.p == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
            p.append(row.p)
        assert [table.loc[v, metric].p_adjusted for v in inside.WITH_LOSSES] == pytest.approx(list(holm(p)))
    assert table.loc["AM2 OT weight 1", "ot"].verdict.startswith("differs")


def test_test_mae_lies_against_the_reference_lines_of_the_same_data(record):
    table = inside.test_mae(record).set_index("variant")
    lines = {}
    for row in record["runs"]["references"]["rows"]:
        lines.setdefault(row["reference"], []).append(row["metrics"]["MAE"])
    set_level, bound = np.mean(lines["set_level"]), np.mean(lines["bound"])
    for variant in inside.VARIANTS:
        mae = at(record, variant, "test_MAE", "end")
        row = table.loc[variant]
        low, high = t_interval(mae)
        assert row["mean"] == pytest.approx(mae.mean()) and (row.ci_low, row.ci_high) == pytest.approx((low, high))
        assert row.position == ("below" if high < set_level else "above" if low > set_level else "on")
        assert row.to_bound == pytest.approx((set_level - mae.mean()) / (set_level - bound))
        steps = at(record, variant, "test_optimizer_steps", "end")
        assert row.steps == f"{int(steps.min())}-{int(steps.max())}"
        assert row.flat == sum(bool(rows[-1]["metrics"]["test_valid_flat"]) for rows in rows_of(record, variant))
    assert table.loc["AlignMamba-1 learned plan"].position == "below"


def test_share_changes_test_each_share_against_no_change_holm_over_the_projections(record):
    table = inside.share_changes(record).set_index("metric")
    names = sorted(m for m in record["runs"]["am2-with-losses-seed0"]["rows"][0]["metrics"] if m.startswith("shared_"))
    assert sorted("shared_" + m for m in table.index) == names
    moved = {m: at(record, "AM2 with losses", m, "end") - at(record, "AM2 with losses", m, "init") for m in names}
    p = {m: scipy_stats.ttest_1samp(d, 0).pvalue for m, d in moved.items()}
    adjusted = dict(zip(names, holm([p[m] for m in names])))
    for name in names:
        row = table.loc[name[len("shared_"):]]
        assert row["mean"] == pytest.approx(moved[name].mean()) and row.p == pytest.approx(p[name])
        assert row.p_adjusted == pytest.approx(adjusted[name])
        assert row.init == pytest.approx(at(record, "AM2 with losses", name, "init").mean())
    text = table.loc["fusion.1.in_proj_text"]
    assert text.p_adjusted < 0.05 and text.end < text.init


def test_routing_mi_is_each_seeds_first_and_last_checkpoint(record):
    table = inside.routing_mi(record).set_index(["router", "seed"])
    for seed, rows in enumerate(rows_of(record, "AM2 learned routing")):
        for router in ("fusion.0.in_router", "fusion.1.out_router"):
            assert table.loc[(router, seed), "init"] == rows[0]["metrics"][f"mi_{router}"]
            assert table.loc[(router, seed), "end"] == rows[-1]["metrics"][f"mi_{router}"]
    assert len(table) == 4 * 3


def test_the_spread_comes_from_the_ablations_sweep_on_the_same_data_and_sizes(record, ablations):
    table = inside.spread_table(ablations).set_index(["variant", "modality"])
    for variant in ("AlignMamba-2", "w/o OT loss"):
        a, b = at(ablations, variant, "state_spread_audio", "end"), at(ablations, "w/o dual alignment loss", "state_spread_audio", "end")
        row = table.loc[variant, "audio"]
        assert row.mean_variant == pytest.approx(a.mean()) and row.mean_without == pytest.approx(b.mean())
        assert row["mean"] == pytest.approx((a - b).mean()) and row.p == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
    inside_run = record["grid"][1]
    same = [run for run in ablations["grid"] if run["factors"]["variant"] == "AlignMamba-2"][0]
    assert same["data"] == inside_run["data"]
    assert same["train"]["model_options"] == inside_run["train"]["model_options"]


def test_the_answer_is_formatted_from_the_record(record, ablations):
    text = inside.summary(record, ablations)
    audio = at(record, "AM2 with losses", "audio_exact", "end")
    low, high = t_interval(audio)
    assert f"{audio.mean():.3f} [{low:.3f}, {high:.3f}]" in text
    own = at(record, "AlignMamba-1 learned plan", "vision_model", "end")
    assert f"{own.mean():.3f}" in text
    spread = at(ablations, "AlignMamba-2", "state_spread_audio", "end").mean()
    assert f"{spread:.3f}" in text and "not distinguishable" in text
    assert "spread" not in inside.summary(record)  # without the ablations record, no claim about the states' spread
    experts = inside.experts_summary(record)
    first, last = (at(record, "AM2 learned routing", "mi_fusion.0.out_router", c)[0] for c in ("init", "end"))
    assert f"{first:.2f}→{last:.2f}" in experts
    routers = [f"fusion.{layer}.{side}_router" for layer in (0, 1) for side in ("in", "out")]
    fell = [at(record, "AM2 learned routing", f"mi_{r}", "end").mean() < at(record, "AM2 learned routing", f"mi_{r}", "init").mean()
            for r in routers]
    assert ("modality falls during" if all(fell) else "modality moves, not in one direction, during") in experts
    share = inside.share_changes(record).set_index("metric").loc["fusion.1.in_proj_text"]
    assert f"{share.init:.3f} → {share.end:.3f}" in experts
    assert not math.isnan(share.mde)


def test_runs_laid_out_by_as_record_read_as_the_sweeps_own(record):
    """The notebook's own runs go through the same view: the committed rows, laid out again, give the same tables."""
    summaries = {(run["factors"]["variant"], run["factors"]["seed"]): [row["metrics"] for row in run["rows"]]
                 for run in record["runs"].values() if run["factors"]["variant"] != "references"}
    again = inside.as_record(summaries)
    assert inside.plan_table(again).equals(inside.plan_table(record))
    assert inside.routing_mi(again).equals(inside.routing_mi(record))


def test_the_curves_figure_draws_every_plan_variant(record):
    import matplotlib

    matplotlib.use("Agg")
    figure = inside.plot_curves(record)
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert [label for label in labels if label in inside.VARIANTS] == list(inside.PLAN_VARIANTS)
    assert "proportional guess" in labels and "chance" in labels
    matplotlib.pyplot.close(figure)


def test_show_displays_the_committed_results(record, ablations, capsys):
    import matplotlib

    matplotlib.use("Agg")
    inside.show(record, ablations)
    shown = capsys.readouterr().out
    assert record["command"] in shown and "200 scored test clips" in shown
    matplotlib.pyplot.close("all")
