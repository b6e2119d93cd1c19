"""The synthetic benchmark's reference lines (alignlib.data.references): the saved cues give back the
generator's own label coefficients (a least-squares fit), and the lines come in the order the
features allow (constant > text_only > set_level > bound in MAE)."""
from pathlib import Path

import numpy as np
import pytest

from alignlib.data import load_mmsa, references, synthetic

SAMPLE = Path(__file__).resolve().parents[1] / "data_samples" / "synthetic_tiny.pkl"


def test_saved_cues_reproduce_the_generators_label():
    """The label is round(clip(1.2 * sum p(1+q)(1-2f) / sqrt(1 + #sentiment words) + 0.5 mood + noise)):
    a least-squares fit of the labels on the ``bound`` features' last column and the mood finds the
    generator's coefficients 1.2 and 0.5, so the saved cues are each word's and clip's own."""
    cues, labels = synthetic.load_correspondence(SAMPLE), load_mmsa(SAMPLE).splits["train"].labels
    features = references.cue_features(cues, "train", "bound")
    inside = np.abs(labels) < 2.9  # away from the clip at +-3
    design = np.c_[features[inside][:, -1], features[inside][:, 7], np.ones(inside.sum())]  # bound sum, mood
    coefficients = np.linalg.lstsq(design, labels[inside], rcond=None)[0]
    assert coefficients[:2] == pytest.approx([1.2, 0.5], abs=0.08)


def test_reference_lines_are_ordered(tmp_path):
    path = synthetic.write(tmp_path / "t.pkl", *synthetic.generate("tiny", 1, 1000))
    found = references.score_references(path, seeds=(0, 1))
    mae = {name: np.mean([m["MAE"] for m in runs]) for name, runs in found.items()}
    assert list(mae) == list(references.REFERENCES) and all(len(v) == 2 for v in found.values())
    assert mae["constant"] > mae["text_only"] > mae["set_level"] > mae["bound"] + 0.3
    with pytest.raises(ValueError, match="reference"):
        references.cue_features(synthetic.load_correspondence(path), "test", "oracle")


def test_the_label_noise_floor_is_the_median_predictors_expected_error():
    """Against a brute-force version: 20000 fresh noise draws per test clip around its noiseless score
    (clipped, rounded to thirds as the generator does), each predicted by its own median; and the
    sample's real labels, predicted by the same medians, miss by the floor within sampling error."""
    cues = synthetic.load_correspondence(SAMPLE)
    floor = references.label_noise_floor(cues)
    p, q, f = (np.nan_to_num(cues[f"test_{c}"]) for c in synthetic.WORD_CUES)
    score = synthetic.noiseless_score(p, q, f, cues["test_mood"])
    draws = np.random.default_rng(0).standard_normal((len(score), 20000))
    labels = np.round(np.clip(score[:, None] + synthetic.LABEL_NOISE * draws, -3, 3) * 3) / 3
    median = np.median(labels, axis=1)
    assert floor == pytest.approx(np.abs(labels - median[:, None]).mean(), abs=2e-3)
    real = load_mmsa(SAMPLE).splits["test"].labels.ravel()
    errors = np.abs(real - median)
    assert abs(errors.mean() - floor) < 3 * errors.std() / np.sqrt(len(errors))
    assert 0.1 < floor < 0.2  # sd 0.2 noise, rounded to thirds
