"""The synthetic benchmark's difficulty knobs: each at 0 leaves the data as it was, and each does what it says."""
import hashlib
import pickle

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from alignlib import PROJECT_ROOT
from alignlib.data import NO_WORD, PADDING, MMSADataset, collate, load_mmsa
from alignlib.data import synthetic
from alignlib.data.__main__ import main as data_cli

SPLITS = ("train", "valid", "test")
PROJECT_SAMPLE = PROJECT_ROOT / "data_samples" / "synthetic_tiny.pkl"
# generate(preset, seed, n) before the knobs existed (commit e50c9c7): sha256 of the frame-to-word
# tables, the labels (in thirds) and the lengths, and per modality the float64 sum, sum of |x| and of x**2
FINGERPRINTS = {
    ("tiny", 0, None): ("4810da468acce98e8fc615eed258eeaf5fc4d2b1396260111e2e3800cf042c0d",
                        {"text": (-8006.776114223572, 71521.07496153793, 136558.47523257253),
                         "audio": (117435.25724234933, 676445.3320234955, 28275419.84484514),
                         "vision": (-7266.278005236944, 71439.39324621385, 75423.51665095618)}),
    ("mosi", 1, 30): ("aa80bc9068406ec2e95636bc26f93d100256ccecbda4a1c16e02fec3075bea99",
                      {"text": (-36677.25804746656, 987596.3521564079, 1800173.360885981),
                       "audio": (218628.2276903733, 617010.7240176531, 14969819.586243333),
                       "vision": (10075.678625459092, 124068.95786601868, 96610.43058346403)}),
}


def fingerprint(data, tables):
    digest = hashlib.sha256()
    for key in sorted(tables):
        if key.endswith(("audio", "vision")):
            digest.update(tables[key].astype(np.int64).tobytes())
    for split in SPLITS:
        digest.update(np.round(data[split]["regression_labels"] * 3).astype(np.int64).tobytes())
        for modality in ("audio", "vision"):
            digest.update(data[split][f"{modality}_lengths"].astype(np.int64).tobytes())
    sums = {}
    for modality in ("text", "audio", "vision"):
        x = np.concatenate([data[split][modality] for split in SPLITS]).astype(np.float64)
        sums[modality] = (x.sum(), np.abs(x).sum(), (x**2).sum())
    return digest.hexdigest(), sums


@pytest.mark.parametrize("args", sorted(FINGERPRINTS, key=str))
def test_knobs_at_zero_reproduce_the_data_made_before_them(args):
    digest, sums = FINGERPRINTS[args]
    data, tables = synthetic.generate(*args)
    got_digest, got_sums = fingerprint(data, tables)
    assert got_digest == digest
    for modality, expected in sums.items():
        np.testing.assert_allclose(got_sums[modality], expected, rtol=1e-6)  # float32 features: BLAS may round differently
    again, again_tables = synthetic.generate(*args, pause=0.0, skip=0.0, faint=0.0, nonlinear=0.0)
    assert pickle.dumps(again) == pickle.dumps(data)
    assert all(np.array_equal(tables[k], again_tables[k], equal_nan=True) for k in tables)


def word_frames(data, tables, modality, split="train"):
    """Each real frame with a word: its features, its word's text token and its word's cue."""
    table = tables[f"{split}_{modality}"]
    rows, frames = np.nonzero(table >= 0)
    words = table[rows, frames]
    cue = tables[f"{split}_{'emphasis' if modality == 'audio' else 'flip'}"][rows, words]
    return data[split][modality][rows, frames], data[split]["text"][rows, words], cue


def test_pause_frames_take_the_share_asked_and_show_no_word():
    data, tables = synthetic.generate("tiny", 0, pause=0.3)
    base, _ = synthetic.generate("tiny", 0)
    for split in SPLITS:
        assert np.array_equal(data[split]["regression_labels"], base[split]["regression_labels"])
        for modality in ("audio", "vision"):
            table = tables[f"{split}_{modality}"]
            real = np.arange(table.shape[1])[None] < data[split][f"{modality}_lengths"][:, None]
            assert ((table != PADDING) == real).all()
            assert abs((table[real] == NO_WORD).mean() - 0.3) <= 0.02
            for row, n in zip(table, real.sum(1)):  # the words still run forward, pauses anywhere between them
                assert (np.diff(row[:n][row[:n] >= 0]) >= 0).all()
    # an audio pause shows no content and no cue: offset plus noise, whose variance is (scale 10 * 0.3)^2
    pauses = data["train"]["audio"][tables["train_audio"] == NO_WORD]
    np.testing.assert_allclose(pauses.var(0), 9.0, rtol=0.15)
    words = word_frames(data, tables, "audio")[0]
    assert (words.var(0) > 2 * 9.0).all()


def test_skipped_words_get_no_frame():
    for skip in (0.0, 0.25):
        data, tables = synthetic.generate("mosi", 1, 30, skip=skip)
        for split in SPLITS:
            words = (~np.isnan(tables[f"{split}_polarity"])).sum(1)
            seen = {}
            for modality in ("audio", "vision"):
                table = tables[f"{split}_{modality}"]
                seen[modality] = [set(row[row >= 0]) for row in table]
                frameless = [1 - len(s) / w for s, w in zip(seen[modality], words)]
                # mosi's clips have frames for every word, so the frameless words are the skipped ones
                np.testing.assert_allclose(frameless, np.round(skip * words) / words, atol=1e-12)
            if skip:
                assert any(a != v for a, v in zip(seen["audio"], seen["vision"])), "each modality skips its own words"


def test_faint_frames_lose_their_words_content():
    runs = {faint: synthetic.generate("tiny", 0, faint=faint) for faint in (0.0, 0.4, 1.0)}
    for modality in ("audio", "vision"):
        x = {faint: runs[faint][0]["train"][modality].astype(np.float64) for faint in runs}
        np.testing.assert_allclose(x[0.4], 0.6 * x[0.0] + 0.4 * x[1.0], atol=1e-4)  # the content shown is 0.7 (1 - faint)
    score = {}
    for faint, (data, tables) in runs.items():
        frames, text, _ = word_frames(data, tables, "audio")
        score[faint] = LinearRegression().fit(text, frames).score(text, frames)
    assert score[0.0] > 0.4 and score[1.0] < 0.05, score


def test_nonlinear_frames_mix_a_fixed_network_into_the_linear_map():
    runs = {k: synthetic.generate("tiny", 0, nonlinear=k) for k in (0.0, 0.3, 1.0)}
    for modality in ("audio", "vision"):
        x = {k: runs[k][0]["train"][modality].astype(np.float64) for k in runs}
        np.testing.assert_allclose(x[0.3], 0.7 * x[0.0] + 0.3 * x[1.0], atol=1e-4)
        assert np.abs(x[1.0] - x[0.0]).mean() > 0.1
    assert np.array_equal(runs[1.0][0]["train"]["text"], runs[0.0][0]["train"]["text"])
    explained = {}
    for k, (data, tables) in runs.items():  # the best affine map from the word's latent (its text token, its cue)
        frames, text, cue = word_frames(data, tables, "audio")
        latent = np.c_[text, cue]
        explained[k] = LinearRegression().fit(latent, frames).score(latent, frames)
    assert explained[0.0] - explained[1.0] > 0.1, explained


def test_knobs_are_recorded_checked_and_given_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "hard.pkl"
    argv = ["synth", "--out", str(path), "--pause", "0.2", "--skip", "0.1", "--faint", "0.5", "--nonlinear", "0.5"]
    assert data_cli(argv) == 0
    assert synthetic.difficulty(path) == synthetic.Difficulty(pause=0.2, skip=0.1, faint=0.5, nonlinear=0.5)
    data, tables = synthetic.generate("tiny", 0, pause=0.2, skip=0.1, faint=0.5, nonlinear=0.5)
    loaded = load_mmsa(path)
    np.testing.assert_array_equal(loaded.splits["test"].alignment["audio"], tables["test_audio"])
    batch = collate([MMSADataset(loaded.splits["test"], alignment=True)[i] for i in range(4)])
    assert (batch.alignment["vision"] == NO_WORD).any()
    assert synthetic.difficulty(PROJECT_SAMPLE) == synthetic.Difficulty()  # made before the knobs: all 0
    assert synthetic.Difficulty(pause=0.2, faint=0.5).suffix == "_pause0.2_faint0.5"
    for knob, value in (("pause", 0.95), ("skip", -0.1), ("faint", 1.5), ("nonlinear", float("nan"))):
        with pytest.raises(ValueError, match=f"^{knob}: must be in"):
            synthetic.generate("tiny", 0, 3, **{knob: value})
