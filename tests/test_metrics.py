"""MSA metrics against scikit-learn, hand-worked cases and edge cases."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score

from alignlib.metrics import msa_metrics


def test_hand_worked_case():
    truth = np.array([-2.0, -0.4, 0.0, 0.6, 2.5, 3.4])
    pred = np.array([-1.5, 0.2, -0.1, 1.5, 2.5, 2.6])
    m = msa_metrics(pred, truth)
    # Has0: truth >= 0 -> F F T T T T ; pred >= 0 -> F T F T T T : 4 of 6 agree
    assert m["Has0_acc_2"] == pytest.approx(4 / 6)
    # Non0 drops the 0: truth > 0 -> F F T T T ; pred > 0 -> F T T T T : 4 of 5
    assert m["Non0_acc_2"] == pytest.approx(4 / 5)
    # Acc-7: clip to [-3, 3], round half to even: truth -2, -0, 0, 1, 2 (2.5 -> 2), 3 ; pred -2 (-1.5 -> -2), 0, -0, 2, 2, 3
    assert m["Mult_acc_7"] == pytest.approx(5 / 6)
    # Acc-5: clip to [-2, 2]: truth -2, -0, 0, 1, 2, 2 ; pred -2, 0, -0, 2, 2, 2
    assert m["Mult_acc_5"] == pytest.approx(5 / 6)
    assert m["MAE"] == pytest.approx(np.mean(np.abs(pred - truth)))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(-3.5, 3.5), st.floats(-3.5, 3.5)), min_size=3, max_size=60))
def test_against_scikit_learn_and_numpy(pairs):
    pred, truth = np.array(pairs).T
    truth = np.round(truth * 3) / 3  # labels are thirds in MOSI, so some are exactly 0
    m = msa_metrics(pred, truth)
    assert m["Has0_acc_2"] == pytest.approx(accuracy_score(truth >= 0, pred >= 0))
    assert m["Has0_F1_score"] == pytest.approx(f1_score(truth >= 0, pred >= 0, average="weighted", zero_division=0))
    nz = truth != 0
    if nz.any():
        assert m["Non0_acc_2"] == pytest.approx(accuracy_score(truth[nz] > 0, pred[nz] > 0))
        assert m["Non0_F1_score"] == pytest.approx(f1_score(truth[nz] > 0, pred[nz] > 0, average="weighted", zero_division=0))
    if np.ptp(pred) > 0 and np.ptp(truth) > 0:
        assert m["Corr"] == pytest.approx(np.corrcoef(pred, truth)[0, 1])


def test_round_half_to_even():
    assert msa_metrics([0.5, 1.5, 2.5], [0.0, 2.0, 2.0])["Mult_acc_7"] == 1.0


def test_edge_cases():
    all_zero = msa_metrics([0.3, -0.2, 0.1], [0.0, 0.0, 0.0])
    assert math.isnan(all_zero["Non0_acc_2"]) and math.isnan(all_zero["Non0_F1_score"])
    assert all_zero["Has0_acc_2"] == pytest.approx(2 / 3)
    assert math.isnan(msa_metrics([1.0, 1.0, 1.0], [0.5, -1.0, 2.0])["Corr"])
    with pytest.raises(ValueError, match="pred has 2 values, truth has 3"):
        msa_metrics([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="NaN"):
        msa_metrics([math.nan], [1.0])
    with pytest.raises(ValueError, match="no samples"):
        msa_metrics([], [])
