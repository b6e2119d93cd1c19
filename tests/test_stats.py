"""experiments.stats: paired differences over seeds with Holm's adjustment and the minimal detectable
effect, checked against statsmodels' multipletests, SciPy's paired t-test and the noncentral t."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from alignlib.experiments import stats


def long_table(values: dict[str, list[float]], metric: str = "MAE") -> pd.DataFrame:
    return pd.DataFrame([{"variant": v, "seed": s, "metric": metric, "value": x}
                         for v, xs in values.items() for s, x in enumerate(xs)])


def test_paired_differences_against_scipy_and_holm():
    rng = np.random.default_rng(3)
    values = {name: list(rng.normal(shift, 0.1, 5)) for name, shift in
              [("ref", 0.0), ("same", 0.01), ("far", 0.5), ("near", 0.12)]}
    result = stats.paired_differences(long_table(values), "ref").set_index("variant")
    ps = []
    for name in ["same", "far", "near"]:
        a, b = np.array(values[name]), np.array(values["ref"])
        test = sps.ttest_rel(a, b)
        low, high = test.confidence_interval(0.95)
        row = result.loc[name]
        assert row["mean"] == pytest.approx((a - b).mean())
        assert (row.low, row.high) == (pytest.approx(low), pytest.approx(high))
        assert row.p == pytest.approx(test.pvalue)
        ps.append(test.pvalue)
    holm = multipletests(ps, method="holm")[1]
    assert result.loc[["same", "far", "near"], "p_adjusted"].to_numpy() == pytest.approx(holm)
    assert result.loc["far", "verdict"].startswith("differs")
    assert result.loc["same", "verdict"].startswith("not distinguishable")


def test_minimal_detectable_effect_has_the_power_it_claims():
    """At the MDE, a two-sided paired t-test on n pairs rejects with probability 0.8 (noncentral t)."""
    for n, sd in [(3, 0.05), (5, 1.0), (10, 0.2)]:
        mde = stats.minimal_detectable_effect(sd, n)
        critical = sps.t.ppf(1 - stats.ALPHA / 2, n - 1)
        noncentrality = mde / sd * math.sqrt(n)
        power = sps.nct.sf(critical, n - 1, noncentrality) + sps.nct.cdf(-critical, n - 1, noncentrality)
        assert power == pytest.approx(stats.POWER, abs=1e-4)
    assert math.isnan(stats.minimal_detectable_effect(0.1, 1))


def test_families_are_per_metric_and_one_seed_is_no_test():
    table = pd.concat([long_table({"ref": [0.0, 0.1, 0.2], "a": [0.5, 0.7, 0.6]}),
                       long_table({"ref": [1.0, 1.1, 1.3], "a": [1.0, 1.2, 1.2]}, metric="Corr")])
    result = stats.paired_differences(table, "ref").set_index("metric")
    assert result.loc["MAE", "p_adjusted"] == pytest.approx(result.loc["MAE", "p"])  # a family of one
    one = stats.paired_differences(long_table({"ref": [0.0], "a": [1.0]}), "ref")
    assert one.verdict.item() == "one seed: no test"
    with pytest.raises(ValueError, match="reference 'x'"):
        stats.paired_differences(long_table({"ref": [0.0]}), "x")
