"""MMSA-format loading, validation, batching, missing modalities and the synthetic benchmark."""
import pickle

import numpy as np
import pytest
import torch

from alignlib.data import MalformedDataError, MMSADataset, collate, load_mmsa, missing_modality_mask
from alignlib.data import synthetic
from alignlib.data.__main__ import main as data_cli
from alignlib.notebooks import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "data_samples" / "synthetic_tiny.pkl"


def mmsa_like(n=(4, 2, 3), t=(5, 7, 6), d=(8, 3, 4), seed=0):
    """A small file in MMSA's unaligned layout, written by hand."""
    rng = np.random.default_rng(seed)
    data = {}
    for split, count in zip(("train", "valid", "test"), n):
        audio = rng.standard_normal((count, t[1], d[1])).astype(np.float32)
        audio[:, -1] = 0.0
        data[split] = {"text": rng.standard_normal((count, t[0], d[0])).astype(np.float32), "audio": audio,
                       "vision": rng.standard_normal((count, t[2], d[2])).astype(np.float32),
                       "audio_lengths": np.full(count, t[1] - 1), "vision_lengths": rng.integers(1, t[2] + 1, count),
                       "regression_labels": rng.uniform(-3, 3, count).astype(np.float32),
                       "id": np.array([f"{split}{i}" for i in range(count)]), "raw_text": np.array(["x"] * count),
                       "annotations": np.array(["Neutral"] * count)}
    return data


def write(tmp_path, data, name="data.pkl"):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(data))
    return path


def test_reads_the_mmsa_layout_and_replaces_neg_inf(tmp_path):
    data = mmsa_like()
    data["train"]["audio"][0, 0, :2] = -np.inf
    data["test"]["vision"][1, 2, 0] = -np.inf
    loaded = load_mmsa(write(tmp_path, data))
    assert loaded.dims == {"text": 8, "audio": 3, "vision": 4}
    assert loaded.replaced_neg_inf == {"text": 0, "audio": 2, "vision": 1}
    assert loaded.splits["train"].features["audio"][0, 0, 0] == 0.0
    masks = loaded.splits["valid"].masks
    assert masks["audio"].sum(1).tolist() == [6, 6]
    assert masks["vision"].sum(1).tolist() == data["valid"]["vision_lengths"].tolist()
    assert masks["text"].all()


def test_path_from_environment(tmp_path, monkeypatch):
    path = write(tmp_path, mmsa_like())
    monkeypatch.setenv("ALIGNLIB_DATA", str(path))
    assert load_mmsa().path == path
    monkeypatch.delenv("ALIGNLIB_DATA")
    with pytest.raises(FileNotFoundError, match="ALIGNLIB_DATA is not set"):
        load_mmsa()


@pytest.mark.parametrize("corrupt, message", [
    (lambda d: d.pop("valid"), r"missing split\(s\) \['valid'\]"),
    (lambda d: d["test"].pop("regression_labels"), r"missing key\(s\) \['regression_labels'\]"),
    (lambda d: d["train"].__setitem__("regression_labels", np.zeros(3)), "audio has 4 samples but regression_labels has 3|text has 4 samples"),
    (lambda d: d["valid"].__setitem__("audio", np.zeros((2, 7, 5), np.float32)), "splits disagree on the audio feature width"),
    (lambda d: d["train"]["vision"].__setitem__((0, 0, 0), np.nan), "vision contains NaN"),
    (lambda d: d["train"].__setitem__("regression_labels", np.array([0, 1, np.nan, 2])), "regression_labels contain NaN"),
    (lambda d: d["train"].__setitem__("audio", np.zeros((4, 7), np.float32)), r"audio should be \(N, T, d\)"),
    (lambda d: d["train"].__setitem__("audio_lengths", np.array([1, 2, 99, 3])), "audio_lengths outside"),
])
def test_malformed_files_get_clear_errors(tmp_path, corrupt, message):
    data = mmsa_like()
    corrupt(data)
    with pytest.raises(MalformedDataError, match=message):
        load_mmsa(write(tmp_path, data))


def test_truncated_and_unreadable_files(tmp_path):
    path = write(tmp_path, mmsa_like())
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(path.read_bytes()[:500])
    with pytest.raises(MalformedDataError, match="truncated"):
        load_mmsa(truncated)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(MalformedDataError, match="not a readable MMSA pickle"):
        load_mmsa(garbage)
    with pytest.raises(MalformedDataError, match="expected a dict"):
        load_mmsa(write(tmp_path, [1, 2, 3], "list.pkl"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_mmsa(tmp_path / "absent.pkl")


def test_dataset_collate_and_missing_modalities(tmp_path):
    split = load_mmsa(write(tmp_path, mmsa_like())).splits["train"]
    present = np.array([[True, False, True], [True, True, True], [False, True, False], [True, True, True]])
    batch = collate([MMSADataset(split, present)[i] for i in range(4)])
    assert batch.features["text"].shape == (4, 5, 8) and batch.masks["vision"].dtype == torch.bool
    assert batch.labels.dtype == torch.float32 and batch.present.tolist() == present.tolist()
    assert batch.features["audio"][0].abs().sum() == 0 and batch.features["audio"][1].abs().sum() > 0
    loader = torch.utils.data.DataLoader(MMSADataset(split), batch_size=3, collate_fn=collate)
    assert [len(b.labels) for b in loader] == [3, 1]


def test_missing_modality_protocol():
    mask = missing_modality_mask(20_000, 0.5, seed=3)
    assert mask.any(axis=1).all(), "at least one modality is kept"
    # P(dropped) = r, except that all-dropped samples (r^3 of them) get one modality back.
    expected_missing = 0.5 - 0.5**3 / 3
    assert abs((~mask).mean() - expected_missing) < 0.01
    assert np.array_equal(mask, missing_modality_mask(20_000, 0.5, seed=3))
    assert missing_modality_mask(10, 0.0).all()
    with pytest.raises(ValueError, match="rate must be in"):
        missing_modality_mask(10, 1.0)


def test_shipped_sample_loads_and_matches_its_command(tmp_path):
    loaded = load_mmsa(SAMPLE)
    assert {name: len(split) for name, split in loaded.splits.items()} == {"train": 96, "valid": 32, "test": 32}
    assert loaded.dims == {"text": 32, "audio": 5, "vision": 20}
    assert SAMPLE.stat().st_size < 5 * 2**20
    assert data_cli(["synth", "--preset", "tiny", "--seed", "0", "--out", str(tmp_path / "again.pkl")]) == 0
    assert (tmp_path / "again.pkl").read_bytes() == SAMPLE.read_bytes(), "the README's command regenerates the sample"


def test_correspondence_is_monotone_and_matches_lengths():
    loaded = load_mmsa(SAMPLE)
    tables = synthetic.load_correspondence(SAMPLE)
    for split in ("train", "test"):
        for modality in ("audio", "vision"):
            table = tables[f"{split}_{modality}"]
            lengths = loaded.splits[split].raw[f"{modality}_lengths"]
            assert ((table >= 0).sum(1) == lengths).all()
            for row, n in zip(table, lengths):
                assert (np.diff(row[:n]) >= 0).all()


def test_splits_scale_and_large_files_need_consent(tmp_path, capsys):
    assert synthetic.split_sizes("mosi", None) == (1284, 229, 686)
    assert sum(synthetic.split_sizes("mosi", 300)) == 300
    assert data_cli(["synth", "--preset", "mosei", "--out", str(tmp_path / "big.pkl")]) == 2
    assert "pass --yes" in capsys.readouterr().err and not (tmp_path / "big.pkl").exists()
    with pytest.raises(ValueError, match="unknown preset"):
        synthetic.generate("imdb")


def test_labels_are_thirds_in_range_and_balanced():
    data, _ = synthetic.generate("tiny", seed=1)
    labels = data["train"]["regression_labels"]
    assert labels.min() >= -3 and labels.max() <= 3 and np.allclose(labels * 3, np.round(labels * 3))
    assert 0.2 < (labels > 0).mean() < 0.8
