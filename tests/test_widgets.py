"""The transport-plan explorer: set the controls as a user would, then check the figure's data
against plans computed independently."""
import numpy as np
import ot as pot
import pytest

from alignlib import ot
from alignlib.warped_pairs import warped_pair
from alignlib.widgets import TransportPlanExplorer


def test_initial_figure_holds_real_data():
    explorer = TransportPlanExplorer(method="relaxed", n_source=10, n_target=7, noise=0.3, warp=0.5, seed=3)
    pair = warped_pair(10, 7, noise=0.3, warp=0.5, seed=3)
    cost = ot.cosine_cost(pair.source, pair.target)[0].numpy()
    expected = np.zeros((10, 7))
    expected[np.arange(10), cost.argmin(axis=1)] = 1 / 10
    np.testing.assert_allclose(np.asarray(explorer.figure.data[0].z), expected)
    assert list(explorer.figure.data[1].x) == pair.correspondence[0].tolist()
    assert explorer.blur.disabled


def test_sliders_update_the_figure():
    explorer = TransportPlanExplorer(method="sinkhorn", n_source=10, n_target=7, seed=1)
    explorer.method.value = "exact"
    explorer.n_source.value = 9
    explorer.noise.value = 0.8
    explorer.warp.value = -1.0
    pair = warped_pair(9, 7, noise=0.8, warp=-1.0, seed=1)
    cost = ot.cosine_cost(pair.source, pair.target)[0].numpy()
    expected = pot.emd(np.full(9, 1 / 9), np.full(7, 1 / 7), cost)
    heatmap = np.asarray(explorer.figure.data[0].z)
    assert heatmap.shape == (9, 7)
    np.testing.assert_allclose(heatmap, expected, atol=1e-12)
    assert f"cost <P, C> = {(expected * cost).sum():.4f}" in explorer.figure.layout.title.text
    assert explorer.blur.disabled

    segments = [x for x in list(explorer.figure.data[2].x) + list(explorer.figure.data[3].x) if x is None]
    assert len(segments) == 9, "one correspondence line per source token"


def test_blur_slider_changes_the_sinkhorn_plan():
    explorer = TransportPlanExplorer(method="sinkhorn", n_source=8, n_target=6, blur=0.5, warp=0.0, seed=2)
    spread = np.asarray(explorer.figure.data[0].z).max()
    explorer.blur.value = 0.2
    sharp = np.asarray(explorer.figure.data[0].z)
    pair = warped_pair(8, 6, warp=0.0, seed=2)
    cost = ot.cosine_cost(pair.source, pair.target)[0].numpy()
    expected = pot.sinkhorn(np.full(8, 1 / 8), np.full(6, 1 / 6), cost, 0.2**2, method="sinkhorn_log",
                            numItermax=100_000, stopThr=1e-12)
    np.testing.assert_allclose(sharp, expected, atol=1e-5)
    assert sharp.max() > spread
    assert not explorer.blur.disabled
    assert "blur 0.200" in explorer.figure.layout.title.text


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="unknown method 'greedy'"):
        TransportPlanExplorer(method="greedy")
