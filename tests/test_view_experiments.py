"""The results views of the ablations, models, missing, lambda and efficiency sweeps, recomputed from
the committed JSON's raw rows with NumPy, SciPy and statsmodels; and ``stats.trend`` against the
closed-form least squares."""
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from alignlib import PROJECT_ROOT
from alignlib.experiments import ablations, efficiency, lambda_grid, missing, model_table, stats
from alignlib.experiments.sweep import load
from alignlib.models.sentiment import ModelConfig

RESULTS = PROJECT_ROOT / "benchmarks" / "results"


@pytest.fixture(scope="module")
def records():
    return {name: load(RESULTS / f"experiments_{name}.json")
            for name in ("ablations", "models", "missing", "lambda", "efficiency", "learned")}


def final_metric(record, metric, key="variant"):
    """``{group: {seed: value}}`` of ``metric`` in each trained run's last row (the raw JSON)."""
    values = {}
    for run_id, run in record["runs"].items():
        if not run_id.startswith("references"):  # the reference lines of each data file
            values.setdefault(run["factors"][key], {})[run["seed"]] = run["rows"][-1]["metrics"][metric]
    return values


def reference_mae(record, name):
    return np.mean([row["metrics"]["MAE"] for row in record["runs"]["references"]["rows"] if row["reference"] == name])


def paired_by_hand(values, pairs):
    """Per (variant, reference): the per-seed differences, SciPy's paired t-test and interval."""
    rows = []
    for variant, reference in pairs:
        d = np.array([values[variant][s] - values[reference][s] for s in sorted(values[reference])])
        test = sps.ttest_1samp(d, 0.0)
        interval = test.confidence_interval(0.95)
        mde = TTestPower().solve_power(nobs=len(d), alpha=0.05, power=0.8) * d.std(ddof=1)
        rows.append({"variant": variant, "reference": reference, "mean": d.mean(), "low": interval.low,
                     "high": interval.high, "p": test.pvalue, "mde": mde})
    table = pd.DataFrame(rows)
    return table.assign(p_adjusted=multipletests(table.p, method="holm")[1])


def assert_rows_match(got, expected, keys):
    got = got.set_index(keys)
    for _, row in expected.iterrows():
        found = got.loc[tuple(row[k] for k in keys) if len(keys) > 1 else row[keys[0]]]
        for column in ("mean", "low", "high", "p", "p_adjusted", "mde"):
            assert found[column] == pytest.approx(row[column], rel=1e-9, abs=1e-12), (row[keys[0]], column)


# -- stats.trend --------------------------------------------------------------------------------------
def test_trend_is_the_closed_form_least_squares():
    """Coefficients, intervals and p-values against numpy's lstsq, sigma^2 (X'X)^-1 and Student's t;
    Holm over the terms shown against statsmodels' multipletests; the MDE has 80 % power (noncentral t)."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"x": rng.normal(size=14), "z": rng.normal(size=14), "seed": np.tile([0, 1], 7)})
    table["y"] = 1.0 + 0.5 * table.x + 0.05 * table.z + 0.3 * table.seed + rng.normal(0, 0.2, 14)
    rows = stats.trend(table, "y ~ x + z + C(seed)").set_index("term")
    design = np.column_stack([np.ones(14), table.seed == 1, table.x, table.z]).astype(float)
    coef, *_ = np.linalg.lstsq(design, table.y.to_numpy(), rcond=None)
    df = 14 - 4
    sigma2 = ((table.y.to_numpy() - design @ coef) ** 2).sum() / df
    se = np.sqrt(sigma2 * np.diag(np.linalg.inv(design.T @ design)))
    half = sps.t.ppf(0.975, df) * se
    p = 2 * sps.t.sf(np.abs(coef / se), df)
    for term, k in (("C(seed)[T.1]", 1), ("x", 2), ("z", 3)):
        row = rows.loc[term]
        assert (row.coef, row.low, row.high, row.se, row.p) == pytest.approx(
            (coef[k], coef[k] - half[k], coef[k] + half[k], se[k], p[k]), rel=1e-9)
        critical = sps.t.ppf(0.975, df)
        power = sps.nct.sf(critical, df, row.mde / row.se) + sps.nct.cdf(-critical, df, row.mde / row.se)
        assert power == pytest.approx(0.8, abs=1e-4)
    assert rows.p_adjusted.to_numpy() == pytest.approx(multipletests(rows.p, method="holm")[1])
    assert rows.loc["x", "verdict"].startswith("differs")
    only = stats.trend(table, "y ~ x + z + C(seed)", terms=["z"])
    assert list(only.term) == ["z"] and only.p_adjusted.item() == pytest.approx(only.p.item())


# -- lambda -------------------------------------------------------------------------------------------
def test_lambda_trend_against_ols_on_the_raw_runs(records):
    """The pooled model refitted with statsmodels' array OLS on the raw runs (an indicator per seed
    after the first): λ_MMD rises per decade (the committed grid: about +0.0075, adjusted p about
    0.04), the four terms one Holm family."""
    record = records["lambda"]
    runs = [(run["factors"]["lambda_ot"], run["factors"]["lambda_mmd"], run["seed"], run["rows"][-1]["metrics"]["MAE"])
            for run_id, run in record["runs"].items() if run_id != "references"]
    ot, mmd, seed, mae = map(np.array, zip(*runs))
    logs = [np.log10(np.where(w > 0, w, w[w > 0].min())) for w in (ot, mmd)]
    design = np.column_stack([np.ones_like(ot), logs[0], ot == 0, logs[1], mmd == 0,
                              *(seed == s for s in sorted(set(seed))[1:])]).astype(float)
    fit = sm.OLS(mae, design).fit()
    rows = lambda_grid.trend(record).set_index("term")
    for term, k in (("log10_ot", 1), ("ot_off", 2), ("log10_mmd", 3), ("mmd_off", 4)):
        assert (rows.loc[term, "coef"], rows.loc[term, "p"]) == pytest.approx((fit.params[k], fit.pvalues[k]), rel=1e-8)
        assert rows.loc[term, "low"] == pytest.approx(fit.conf_int()[k][0], rel=1e-8)
    assert rows.p_adjusted.to_numpy() == pytest.approx(multipletests(fit.pvalues[1:5], method="holm")[1])
    assert rows.loc["log10_mmd", "coef"] == pytest.approx(0.0075, abs=5e-4) and rows.loc["log10_mmd", "p_adjusted"] < 0.05
    text = lambda_grid.summary(record)
    assert f"{fit.params[1]:+.4f} [{fit.conf_int()[1][0]:+.4f}, {fit.conf_int()[1][1]:+.4f}]" in text
    assert "flat" not in text


def test_lambda_cells_are_the_raw_means(records):
    values = {}
    for run_id, run in records["lambda"]["runs"].items():
        if run_id != "references":
            values.setdefault((run["factors"]["lambda_ot"], run["factors"]["lambda_mmd"]), []).append(
                run["rows"][-1]["metrics"]["MAE"])
    cells = lambda_grid.cells(records["lambda"]).set_index(["lambda_ot", "lambda_mmd"])
    assert len(cells) == len(values)
    for cell, maes in values.items():
        assert cells.loc[cell, "mean"] == pytest.approx(np.mean(maes))
        assert cells.loc[cell, "ci_low"] == pytest.approx(
            sps.t.interval(0.95, len(maes) - 1, loc=np.mean(maes), scale=sps.sem(maes))[0])


# -- ablations ----------------------------------------------------------------------------------------
def test_ablation_paired_rows_are_scipy_with_holm_over_the_table(records):
    record = records["ablations"]
    variants = [v for v in final_metric(record, "MAE") if not v.startswith("AlignMamba-1, ")]
    pairs = [(v, "AlignMamba-2") for v in variants if not v.startswith("AlignMamba")]
    pairs += [(v, "AlignMamba-1") for v in variants if v.startswith("AlignMamba-1 ")]
    got = ablations.paired_rows(record)
    for metric in ("MAE", "Non0_acc_2"):
        expected = paired_by_hand(final_metric(record, metric), pairs)
        assert_rows_match(got[got.metric == metric], expected, ["variant", "reference"])
    assert len(got) == 2 * len(pairs) == 18
    # the "AlignMamba-1 does better without its local OT": its interval excludes 0 alone, not after Holm
    local = got[(got.variant == "AlignMamba-1 w/o local OT") & (got.metric == "MAE")].iloc[0]
    assert local.high < 0 and local.p < 0.05 <= local.p_adjusted
    one = ablations.compare_to_reference(record, "AlignMamba-1")
    assert list(one.variant) == ["AlignMamba-1 w/o local OT", "AlignMamba-1 w/o global MMD"]
    text = ablations.conclusion(record)
    assert f"{local['mean']:+.3f} [{local.low:+.3f}, {local.high:+.3f}]" in text and f"{local.p_adjusted:.2g}" in text


def test_ablation_one_sign_check_counts_the_raw_values(records):
    record = records["ablations"]
    signs = ablations.one_sign_check(record).set_index("metric")
    for metric in ("Non0_acc_2", "Non0_F1_score"):
        raw = [v for by_seed in final_metric(record, metric).values() for v in by_seed.values()]
        assert signs.loc[metric, "distinct"] == len(set(np.round(raw, 9)))
        assert (signs.loc[metric, "low"], signs.loc[metric, "high"]) == (min(raw), max(raw))
    assert not signs.one_sign.any()


def test_ablation_summary_states_the_papers_and_the_holm_verdicts(records):
    record = records["ablations"]
    text = ablations.summary(record)
    set_level = reference_mae(record, "set_level")
    assert f"({set_level:.3f};" in text
    mae = ablations.paired_rows(record, ["MAE"])
    assert f"{mae.mde.min():.3f} to {mae.mde.max():.3f}" in text and "none differs" in text
    assert "82.3 / 82.1" in text and "single-stream Mamba baseline" in text
    assert "true-plan control at this budget" in text and "no effect" not in text


# -- models -------------------------------------------------------------------------------------------
def test_reference_rows_against_the_raw_reference_rows(records):
    """``training.reference_rows`` (through the models view): each model's mean and t-interval from its
    runs, the lines from the raw ``references`` rows, the position and the share of the way to bound."""
    record = records["models"]
    set_level, bound = reference_mae(record, "set_level"), reference_mae(record, "bound")
    rows = model_table.reference_rows(record).set_index("variant")
    for variant, by_seed in final_metric(record, "MAE").items():
        x = np.array(list(by_seed.values()))
        low, high = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
        row = rows.loc[variant]
        assert (row["mean"], row.ci_low, row.ci_high) == pytest.approx((x.mean(), low, high))
        assert (row.set_level, row.bound) == pytest.approx((set_level, bound))
        assert row.position == ("below" if high < set_level else "above" if low > set_level else "on")
        assert row.to_bound == pytest.approx((set_level - x.mean()) / (set_level - bound))
    assert rows.loc["AlignMamba-1, oracle plan", "position"] == "below"


def test_model_paired_rows_and_the_oracle_against_the_learned_plan(records):
    values = final_metric(records["models"], "MAE")
    expected = paired_by_hand(values, [(v, "AlignMamba-2") for v in values if v != "AlignMamba-2"])
    assert_rows_match(model_table.paired_rows(records["models"]), expected, ["variant"])
    learned = final_metric(records["learned"], "test_MAE")
    summary, paired = model_table.control_rows(records["learned"])
    means = summary.set_index("variant")["mean"]
    assert means["learned plan"] == pytest.approx(np.mean(list(learned["learned plan"].values())))
    assert means["oracle plan"] == pytest.approx(np.mean(list(learned["oracle plan"].values())))
    assert means["learned plan"] < means["oracle plan"]  # at equal sizes: 0.406 against 0.418
    by_hand = paired_by_hand(learned, [("learned plan", "oracle plan")]).iloc[0]
    assert paired.iloc[0]["mean"] == pytest.approx(by_hand["mean"]) and paired.iloc[0].p == pytest.approx(by_hand.p)
    assert f"{means['learned plan']:.3f}" in model_table.oracle_sentence(records["learned"])


def test_model_paper_rows_put_ours_beside_the_papers(records):
    rows = model_table.paper_rows(records["models"])
    acc = final_metric(records["models"], "Non0_acc_2")["AlignMamba-2"]
    assert rows.loc["AlignMamba-2", "here Acc-2"].startswith(f"{100 * np.mean(list(acc.values())):.1f} [")
    assert rows.loc["concat (single-stream)", "paper Acc-2 / F1"] == "82.3 / 82.1"
    assert "differs" in model_table.summary(records["models"])  # the learned plan against AlignMamba-2


# -- missing ------------------------------------------------------------------------------------------
def missing_drops(record):
    """``{model: {seed: Acc-2 drop in points}}`` from the raw rows at r = 0.1 and 0.7."""
    drops = {}
    for run_id, run in record["runs"].items():
        if run_id != "references":
            acc = {row["test_missing_rate"]: row["metrics"]["Non0_acc_2"] for row in run["rows"]}
            drops.setdefault(run["factors"]["model"], {})[run["seed"]] = 100 * (acc[0.1] - acc[0.7])
    return drops


def test_missing_drops_and_their_paired_differences(records):
    record = records["missing"]
    drops = missing_drops(record)
    summary = missing.drop_summary(record).set_index("model")
    for model, by_seed in drops.items():
        assert summary.loc[model, "mean"] == pytest.approx(np.mean(list(by_seed.values())))
    expected = paired_by_hand(drops, [(m, "alignmamba1") for m in drops if m != "alignmamba1"])
    assert_rows_match(missing.paired_drops(record), expected.rename(columns={"variant": "model"}), ["model"])
    assert f"{summary.loc['concat', 'mean']:.1f} [" in missing.summary(record)


def test_missing_reference_shares_from_the_raw_lines(records):
    record = records["missing"]
    lines = {name: reference_mae(record, name) for name in ("constant", "text_only", "set_level", "bound")}
    shares = missing.reference_shares(record)
    span = lines["constant"] - lines["bound"]
    assert shares["text_only"] == pytest.approx((lines["constant"] - lines["text_only"]) / span)
    assert shares["set_level"] == pytest.approx((lines["text_only"] - lines["set_level"]) / span)
    assert shares.sum() == pytest.approx(1.0)


# -- efficiency ---------------------------------------------------------------------------------------
def test_efficiency_views_against_the_raw_points(records):
    record = records["efficiency"]
    raw = {(run["factors"]["model"], run["factors"]["length"]): run["rows"][0] for run in record["runs"].values()}
    slopes = efficiency.slopes(record)
    for model in efficiency.MODELS:
        ok = sorted((length, row["metrics"]) for (m, length), row in raw.items() if m == model and row["status"] == "ok")
        x = np.log([length for length, _ in ok])
        for metric in ("peak_mib", "latency_ms"):
            fit = sps.linregress(x, np.log([metrics[metric] for _, metrics in ok]))
            assert slopes.loc[model, metric] == pytest.approx(fit.slope)
    limits = efficiency.limits(record)
    for model, heads in (("mult", ModelConfig().n_heads), ("alignmamba1", 1)):
        failed = min(length for (m, length), row in raw.items() if m == model and row["status"] == "oom")
        assert limits.loc[model, "failed_at"] == failed
        assert limits.loc[model, "square_gib"] == pytest.approx(heads * 4 * failed ** 2 / 2 ** 30)
        assert limits.loc[model, "failed_gib"] == pytest.approx(limits.loc[model, "square_gib"])  # the L x L matrices
    assert limits.loc["alignmamba2", "longest"] == max(length for (m, length) in raw if m == "alignmamba2")
    ratios = efficiency.ratios(record)
    common = int(ratios.length.iloc[0])
    assert ratios.loc["mult", "peak_mib"] == pytest.approx(
        raw[("mult", common)]["metrics"]["peak_mib"] / raw[("alignmamba2", common)]["metrics"]["peak_mib"])
    assert "memory-efficient" in efficiency.summary(record)
