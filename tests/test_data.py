"""MMSA-format loading, validation, batching, missing modalities and the synthetic benchmark."""
import pickle

import numpy as np
import pytest
import torch

from alignlib import PROJECT_ROOT
from alignlib.data import MalformedDataError, MMSADataset, collate, load_mmsa, missing_modality_mask
from alignlib.data import synthetic
from alignlib.data.__main__ import main as data_cli
from alignlib.data.sampler import length_grouped_batches, real_lengths, trim_batch

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


def random_masks(n, t, seed, left_aligned=True):
    """Padding masks ``{modality: (n, T)}``: real prefixes, or (not left-aligned) scattered real frames."""
    rng = np.random.default_rng(seed)
    masks = {}
    for modality, steps in zip(("text", "audio", "vision"), t):
        if left_aligned:
            masks[modality] = np.arange(steps)[None] < rng.integers(0, steps + 1, n)[:, None]
        else:
            masks[modality] = rng.random((n, steps)) < 0.3
    return masks


@pytest.mark.parametrize("left_aligned", [True, False])
def test_real_lengths_by_brute_force(left_aligned):
    masks = random_masks(30, (5, 9, 7), seed=1, left_aligned=left_aligned)
    per_clip = [[max([k + 1 for k in range(m.shape[1]) if m[i, k]], default=0) for m in masks.values()]
                for i in range(30)]
    assert real_lengths(masks).tolist() == [max(p) for p in per_clip]
    assert real_lengths(masks, "sum").tolist() == [sum(p) for p in per_clip]
    with pytest.raises(ValueError, match="reduce: expected one of"):
        real_lengths(masks, "mean")


@pytest.mark.parametrize("n, batch_size, pool", [(103, 8, 3), (64, 8, None), (5, 8, 2), (1, 1, 1)])
def test_length_grouped_batches_cover_every_clip_once_and_group_lengths(n, batch_size, pool):
    lengths = np.random.default_rng(n).integers(1, 500, n)
    batches = length_grouped_batches(lengths, batch_size, seed=3, epoch=0, pool=pool)
    assert sorted(np.concatenate(batches).tolist()) == list(range(n))
    assert len(batches) == -(-n // batch_size) and sum(len(b) < batch_size for b in batches) <= 1
    again = length_grouped_batches(lengths, batch_size, seed=3, epoch=0, pool=pool)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    # brute force: within a pool of `pool` batches the clips are sorted, so two full batches of one
    # pool never interleave in length; across the whole epoch with pool=None, no two batches do
    if pool is None:
        spans = sorted((lengths[b].min(), lengths[b].max()) for b in batches)
        assert all(high <= next_low for (_, high), (next_low, _) in zip(spans, spans[1:]))
    # the padded cost sum(batch size x longest clip) is at most that of shuffled batches
    shuffled = np.random.default_rng([3, 0]).permutation(n)
    random_cost = sum(len(b) * lengths[b].max() for b in np.array_split(shuffled, len(batches)))
    assert sum(len(b) * lengths[b].max() for b in batches) <= random_cost


def test_length_grouped_batches_differ_by_epoch_and_reject_bad_options():
    lengths = np.arange(200) % 37
    first = length_grouped_batches(lengths, 10, seed=0, epoch=0)
    second = length_grouped_batches(lengths, 10, seed=0, epoch=1)
    assert not all(np.array_equal(a, b) for a, b in zip(first, second))
    with pytest.raises(ValueError, match="batch_size: expected a positive int"):
        length_grouped_batches(lengths, 0, seed=0, epoch=0)
    with pytest.raises(ValueError, match="pool: expected a positive int or None"):
        length_grouped_batches(lengths, 4, seed=0, epoch=0, pool=0)
    with pytest.raises(ValueError, match="lengths: expected shape"):
        length_grouped_batches(lengths[None], 4, seed=0, epoch=0)


@pytest.mark.parametrize("left_aligned", [True, False])
def test_trim_batch_drops_only_padding_tails(tmp_path, left_aligned):
    split = load_mmsa(write(tmp_path, mmsa_like(n=(6, 2, 3), t=(9, 12, 10)))).splits["train"]
    split.masks.update(random_masks(6, (9, 12, 10), seed=2, left_aligned=left_aligned))
    split.masks["audio"][:] = False  # a modality with no real frame keeps one
    batch = collate([MMSADataset(split)[i] for i in range(6)])
    trimmed = trim_batch(batch)
    for modality, mask in batch.masks.items():
        mask = mask.numpy()
        keep = max([k + 1 for k in range(mask.shape[1]) if mask[:, k].any()], default=1)
        assert trimmed.masks[modality].shape == (6, keep) and trimmed.features[modality].shape[1] == keep
        assert torch.equal(trimmed.features[modality], batch.features[modality][:, :keep])
        assert torch.equal(trimmed.masks[modality], batch.masks[modality][:, :keep])
        assert mask[:, keep:].sum() == 0
    assert trimmed.features["audio"].shape[1] == 1
    assert torch.equal(trimmed.labels, batch.labels) and trimmed.ids == batch.ids
