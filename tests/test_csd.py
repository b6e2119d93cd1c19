"""Computational sequences (.csd) written here with h5py in CMU-MultimodalSDK's layout: reading,
validation, and the conversion into our data format, against tables computed by hand.

The SDK itself (mmsdk) is not installable from the package index, so it cannot serve as a reference
here; the layout follows its ``write_CSD`` (root group named after the sequence, ``data/<video>/
features`` and ``intervals``, ``metadata/<key>`` one JSON string each)."""
import json

import h5py
import numpy as np
import pytest
import torch

from alignlib import PROJECT_ROOT, analysis
from alignlib.align import ot
from alignlib.data import csd_sample
from alignlib.data import NO_WORD, PADDING, load_mmsa, synthetic
from alignlib.data.__main__ import main as data_cli
from alignlib.data.csd import ComputationalSequence, CsdError, write_csd
from alignlib.data.from_sdk import build, frame_words, read_folds

N = NO_WORD


def sdk_file(path, name, entries, metadata=None):
    """A .csd file written directly with h5py, as the SDK's write_CSD does: words as (T, 1) bytes."""
    with h5py.File(path, "w") as handle:
        root = handle.create_group(name)
        data = root.create_group("data")
        for video, (features, intervals) in entries.items():
            group = data.create_group(video)
            features = np.asarray(features)
            if features.dtype.kind == "U":
                features = np.char.encode(features, "utf-8")[:, None]
            group.create_dataset("features", data=features)
            group.create_dataset("intervals", data=np.asarray(intervals, dtype=np.float64))
        meta = root.create_group("metadata")
        for key, value in (metadata or {"root name": name, "dimension names": ["x"]}).items():
            meta.create_dataset(key, (1,), dtype=h5py.special_dtype(vlen=str))
            meta[key][0] = json.dumps(value)
    return path


# (word, start, end) per video; "a" (1.64-1.68 s) holds no frame midpoint; "second" (2.6-3.6 s) straddles
# vidA's segment boundary at 3.0 s and belongs to the second segment (its midpoint 3.1 s is there)
WORDS = {
    "vidA": [("sp", 0.0, 0.4), ("hello", 0.4, 1.0), ("big", 1.0, 1.64), ("a", 1.64, 1.68), ("world", 1.68, 2.0),
             ("sp", 2.0, 2.6), ("second", 2.6, 3.6), ("seg", 3.6, 4.0), ("sp", 4.0, 5.0)],
    "vidB": [("good", 0.0, 0.5), ("sp", 0.5, 1.0), ("film", 1.0, 2.0), ("sp", 2.0, 3.0)],
    "vidC": [("hi", 0.0, 1.0)],
}
LABELS = {"vidA": ([1.5, -0.5], [(0.4, 3.0), (3.0, 5.0)]), "vidB": ([2.0, 0.0], [(0.0, 2.0), (2.0, 3.0)]),
          "vidC": ([1.0], [(0.0, 1.0)])}
DURATION = {"vidA": 5.0, "vidB": 2.0, "vidC": 1.0}  # vidB's second segment (2-3 s) has no frame and no word
STEP = {"audio": 0.2, "vision": 0.25}
WIDTH = {"text": 6, "audio": 3, "vision": 4}
# hand-computed: segment -> (first source row, frame-to-word table) per modality; audio midpoints
# 0.1 + 0.2 i, vision midpoints 0.125 + 0.25 i
EXPECTED = {
    "vidA[0]": {"words": ["hello", "big", "a", "world"],
                "audio": (2, [0, 0, 0, 1, 1, 1, 3, 3, N, N, N, N, N]), "vision": (2, [0, 0, 1, 1, 1, 3, N, N, N, N])},
    "vidA[1]": {"words": ["second", "seg"],
                "audio": (15, [0, 0, 0, 1, 1, N, N, N, N, N]), "vision": (12, [0, 0, 1, 1, N, N, N, N])},
    "vidB[0]": {"words": ["good", "film"],
                "audio": (0, [0, 0, N, N, N, 1, 1, 1, 1, 1]), "vision": (0, [0, 0, N, N, 1, 1, 1, 1])},
}


def frames(video, modality, rng):
    count = int(round(DURATION[video] / STEP[modality]))
    starts = np.arange(count) * STEP[modality]
    return rng.standard_normal((count, WIDTH[modality])).astype(np.float32), np.c_[starts, starts + STEP[modality]]


def sequences(folder, missing_audio=("vidC",)):
    """Five sequences in the SDK's layout; vidC is missing from the audio. Returns paths and source rows."""
    rng = np.random.default_rng(0)
    source = {m: {} for m in ("words", "text", "audio", "vision")}
    for video, words in WORDS.items():
        intervals = np.array([(s, e) for _, s, e in words])
        source["words"][video] = (np.array([w for w, _, _ in words]), intervals)
        vectors = rng.standard_normal((len(words), WIDTH["text"])).astype(np.float32)
        vectors[[w == "sp" for w, _, _ in words]] = 0  # the SDK's GloVe rows for silences are zero
        source["text"][video] = (vectors, intervals)
        for m in ("audio", "vision"):
            if not (m == "audio" and video in missing_audio):
                source[m][video] = frames(video, m, rng)
    labels = {v: (np.array(values, dtype=np.float32)[:, None], np.array(bounds)) for v, (values, bounds) in LABELS.items()}
    paths = {name: sdk_file(folder / f"{name}.csd", name, entries) for name, entries in {**source, "labels": labels}.items()}
    return paths, source


def test_reads_the_sdk_layout(tmp_path):
    paths, source = sequences(tmp_path)
    with ComputationalSequence(paths["words"]) as words, ComputationalSequence(paths["audio"]) as audio:
        assert words.name == "words" and words.metadata == {"root name": "words", "dimension names": ["x"]}
        assert words.videos == ["vidA", "vidB", "vidC"] and "vidC" not in audio
        entry = words.read("vidA")
        assert entry.features.shape == (9, 1) and entry.features[1, 0] == "hello"
        np.testing.assert_array_equal(audio.read("vidB").features, source["audio"]["vidB"][0])
        np.testing.assert_allclose(audio.read("vidB").midpoints, 0.1 + 0.2 * np.arange(10))


def test_frame_words_by_brute_force():
    rng = np.random.default_rng(1)
    edges = np.sort(rng.uniform(0, 10, 13))
    intervals = np.c_[edges[0:-1:2], edges[1::2]]  # 6 words with gaps between them
    midpoints = rng.uniform(-1, 11, 400)
    expected = [next((j for j, (s, e) in enumerate(intervals) if s <= t < e), NO_WORD) for t in midpoints]
    assert frame_words(intervals, midpoints).tolist() == expected


def test_build_matches_hand_computed_tables_and_source_rows(tmp_path):
    paths, source = sequences(tmp_path)
    built = build(paths, read_folds(write_folds(tmp_path, {"test": ["vidB"]})), unassigned="valid")
    assert built.counts == {"train": 0, "valid": 2, "test": 1} and built.unassigned == 2
    assert built.skipped == {"video missing from audio": ["vidC[0]"], "no words and no audio and no vision in the segment": ["vidB[1]"]}
    out = synthetic.write(tmp_path / "out.pkl", built.data, built.correspondence)
    data = load_mmsa(out)
    assert data.lengths == {"text": 4, "audio": 13, "vision": 10} and data.dims == WIDTH
    for split in ("valid", "test"):
        loaded = data.splits[split]
        for i, segment in enumerate(loaded.ids):
            video, expected = segment.split("[")[0], EXPECTED[segment]
            words = [w for w, _, _ in WORDS[video]]
            rows = [words.index(w) for w in expected["words"]]
            assert loaded.raw["raw_text"][i] == " ".join(expected["words"])
            np.testing.assert_array_equal(loaded.features["text"][i, : len(rows)], source["text"][video][0][rows])
            assert loaded.masks["text"][i].sum() == len(rows)
            for m in ("audio", "vision"):
                first, table = expected[m]
                n = len(table)
                assert loaded.alignment[m][i].tolist() == table + [PADDING] * (data.lengths[m] - n)
                np.testing.assert_array_equal(loaded.features[m][i, :n], source[m][video][0][first: first + n])
                assert loaded.masks[m][i].tolist() == [True] * n + [False] * (data.lengths[m] - n)
        assert loaded.labels.tolist() == [{"vidA[0]": 1.5, "vidA[1]": -0.5, "vidB[0]": 2.0}[s] for s in loaded.ids]
    assert len(data.splits["train"]) == 0
    tables = synthetic.load_correspondence(out)
    np.testing.assert_allclose(tables["test_word_intervals"][0, :2], [[0.0, 0.5], [1.0, 2.0]])
    np.testing.assert_allclose(tables["test_audio_times"][0, :10], 0.1 + 0.2 * np.arange(10), rtol=1e-6)


def write_folds(folder, folds, name="folds.json"):
    path = folder / name
    path.write_text(json.dumps(folds))
    return path


def test_folds_from_the_sdk_module_and_segment_ids(tmp_path):
    module = tmp_path / "cmu_mosi_std_folds.py"
    module.write_text("standard_train_fold=['vidA']\nstandard_valid_fold=[]\nstandard_test_fold=['vidB[0]']\n"
                      "import os; os.system('touch never')\n")
    folds = read_folds(module)
    assert folds == {"vidA": "train", "vidB[0]": "test"} and not (tmp_path / "never").exists()
    built = build(sequences(tmp_path)[0], folds)
    assert built.counts == {"train": 2, "valid": 0, "test": 1} and built.unassigned == 0
    both = write_folds(tmp_path, {"train": ["vidA"], "test": ["vidA"]})
    with pytest.raises(ValueError, match="'vidA' is in both 'train' and 'test'"):
        read_folds(both)
    with pytest.raises(ValueError, match="expected folds named among"):
        read_folds(write_folds(tmp_path, {"dev": ["vidA"]}))


def damage(paths, modality, video, change):
    """Rewrite one video of a sequence with ``change(features, intervals)``."""
    with h5py.File(paths[modality], "r+") as handle:
        group = handle[modality]["data"][video]
        features, intervals = change(group["features"][()], group["intervals"][()])
        del group["features"], group["intervals"]
        group.create_dataset("features", data=features)
        group.create_dataset("intervals", data=intervals)


def _nan_row(f, i):
    f = f.copy()
    f[3] = np.nan
    return f, i


@pytest.mark.parametrize("change, message", [
    (_nan_row, r"vision.csd: video 'vidB': features row 3 holds NaN or \+inf"),
    (lambda f, i: (f[:-1], i), "vision.csd: video 'vidB': features has 7 rows but intervals has 8"),
    (lambda f, i: (f, i[:, ::-1]), r"vision.csd: video 'vidB': interval 0 runs backwards or is not finite \(0.25 to 0.0\)"),
    (lambda f, i: (f, i[:, :1]), r"vision.csd: video 'vidB': intervals should be \(T, 2\)"),
    (lambda f, i: (np.array(True), i), r"vision.csd: video 'vidB': features should be \(T, d\) or \(T,\), got shape \(\)"),
])
def test_invalid_videos_are_one_line_errors(tmp_path, change, message):
    paths, _ = sequences(tmp_path)
    damage(paths, "vision", "vidB", change)
    with pytest.raises(CsdError, match=message) as error:
        build(paths)
    assert "\n" not in str(error.value)


def test_neg_inf_is_replaced_and_counted(tmp_path):
    paths, source = sequences(tmp_path)
    damage(paths, "audio", "vidB", lambda f, i: (np.where(np.arange(len(f))[:, None] == 1, -np.inf, f), i))
    built = build(paths)
    assert built.replaced_neg_inf["audio"] == WIDTH["audio"]
    row = list(built.data["train"]["id"]).index("vidB[0]")
    np.testing.assert_array_equal(built.data["train"]["audio"][row, 1], 0)


def test_foreign_truncated_and_incomplete_files(tmp_path):
    paths, _ = sequences(tmp_path)
    size = paths["audio"].stat().st_size
    paths["audio"].write_bytes(paths["audio"].read_bytes()[: size // 2])
    with pytest.raises(CsdError, match=r"audio.csd: .*(truncated|unreadable)"):
        build(paths)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle.create_dataset("x", data=np.arange(3))
        handle.create_group("y")
    with pytest.raises(CsdError, match=r"foreign.h5: not a computational sequence: expected one root group .*\['x', 'y'\]"):
        ComputationalSequence(foreign)
    no_meta = tmp_path / "no_meta.csd"
    with h5py.File(no_meta, "w") as handle:
        handle.create_group("COVAREP").create_group("data")
    with pytest.raises(CsdError, match="no_meta.csd: not a computational sequence: group 'COVAREP' has no 'metadata' group"):
        ComputationalSequence(no_meta)
    with h5py.File(paths["vision"], "r+") as handle:
        del handle["vision"]["data"]["vidA"]["intervals"]
    with pytest.raises(CsdError, match="vision.csd: video 'vidA': missing intervals"):
        ComputationalSequence(paths["vision"]).read("vidA")
    text = tmp_path / "text.txt"
    text.write_text("not hdf5")
    with pytest.raises(CsdError, match="text.txt: not a readable HDF5 file"):
        ComputationalSequence(text)


def test_our_writer_round_trips(tmp_path):
    words = np.array(["sp", "héllo"])[:, None]
    path = write_csd(tmp_path / "w.csd", "words", {"v": (words, [[0, 1], [1, 2]])}, {"root name": "words"})
    with ComputationalSequence(path) as sequence:
        assert sequence.metadata == {"root name": "words"}
        assert sequence.read("v").features[:, 0].tolist() == ["sp", "héllo"]


def test_cli_converts_and_reports(tmp_path, capsys):
    paths, _ = sequences(tmp_path)
    out = tmp_path / "mosi.pkl"
    argv = ["csd", *[a for name, path in paths.items() for a in (f"--{name}", str(path))], "--out", str(out)]
    assert data_cli(argv) == 0
    printed = capsys.readouterr().out
    assert "segments: train 3, valid 0, test 0 (3 in no fold, put in train)" in printed
    assert "left out 1 segment(s), video missing from audio: vidC[0]" in printed
    assert len(load_mmsa(out).splits["train"]) == 3
    paths["audio"].write_bytes(b"\x89HDF\r\n")
    assert data_cli(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "audio.csd: not a readable HDF5 file" in err[0]
    assert data_cli([*argv, "--folds", str(tmp_path / "none.json")]) == 2
    assert capsys.readouterr().err.strip().endswith("none.json: no such file")


def test_shipped_sample_matches_its_command_and_converts(tmp_path):
    shipped = PROJECT_ROOT / "data_samples" / "csd_synthetic"
    paths = csd_sample.write(tmp_path / "again")
    for path in paths.values():
        assert path.read_bytes() == (shipped / path.name).read_bytes(), f"{path.name} differs from its command's output"
    assert sum(p.stat().st_size for p in shipped.iterdir()) < 200_000
    with ComputationalSequence(shipped / "acoustic.csd") as sequence:
        assert "SYNTHETIC" in sequence.metadata["computational sequence description"]
    sources = {name: shipped / file for name, file in csd_sample.FILES.items()}
    built = build(sources, read_folds(shipped / "folds.json"))
    assert built.counts == {"train": 5, "valid": 3, "test": 3} and not built.skipped and built.unassigned == 0
    tables = built.correspondence["train_audio"]
    assert (tables == NO_WORD).any() and (tables == PADDING).any()


def test_pause_frames_are_left_out_of_correspondence_accuracy():
    truth = torch.tensor([[0, 1, NO_WORD, 1, PADDING], [NO_WORD, 0, 0, 2, 1]])
    mask = torch.tensor([[True, True, True, True, False], [True] * 5])
    plan = torch.rand(2, 5, 3, generator=torch.Generator().manual_seed(0))
    guess = plan.argmax(2)
    pairs = [(int(g), int(t)) for gs, ts, ms in zip(guess, truth, mask) for g, t, m in zip(gs, ts, ms) if m and t >= 0]
    expected = sum(g == t for g, t in pairs) / len(pairs)
    assert len(pairs) == 7
    assert ot.correspondence_accuracy(plan, truth, mask) == pytest.approx(expected)
    assert ot.correspondence_accuracy(plan, truth) == pytest.approx(expected)
    assert analysis.frame_accuracy(guess, truth, mask) == pytest.approx(expected)
    per_clip = [sum(g == t for g, t in pairs[:3]) / 3, sum(g == t for g, t in pairs[3:]) / 4]
    np.testing.assert_allclose(analysis.per_clip_accuracy(guess, truth, mask), per_clip)


def test_word_vectors_without_silences_are_matched_by_interval(tmp_path):
    """MOSEI's plain word-vector sequence leaves out the sp rows; each word still gets its own vector."""
    paths, source = sequences(tmp_path)
    with_sp = build(paths)
    spoken = {v: [i for i, (w, _, _) in enumerate(WORDS[v]) if w != "sp"] for v in WORDS}
    sdk_file(paths["text"], "text", {v: (f[spoken[v]], i[spoken[v]]) for v, (f, i) in source["text"].items()})
    without_sp = build(paths)
    np.testing.assert_array_equal(without_sp.data["train"]["text"], with_sp.data["train"]["text"])
    sdk_file(paths["text"], "text", {v: (f[spoken[v][1:]], i[spoken[v][1:]]) for v, (f, i) in source["text"].items()})
    with pytest.raises(CsdError, match=r"text.csd: video 'vidA': no word vector for the word 'hello' at 0.400-1.000 s of .*words.csd"):
        build(paths)


def test_limits_cut_long_segments_and_say_so(tmp_path):
    paths, source = sequences(tmp_path)
    built = build(paths, limits={"text": 3, "audio": 8})
    assert built.cut == {"text": 1, "audio": 3}  # vidA[0] has 4 words; all three segments more than 8 audio frames
    data = built.data["train"]
    row = list(data["id"]).index("vidA[0]")
    assert data["text"].shape[1] == 3 and data["audio"].shape[1] == 8 and data["text_lengths"][row] == 3
    # the first 8 of vidA[0]'s frames; frames of its 4th word ("world", cut) count as in no word
    assert built.correspondence["train_audio"][row].tolist() == [0, 0, 0, 1, 1, 1, N, N]
    np.testing.assert_array_equal(data["audio"][row], source["audio"]["vidA"][0][2:10])
    assert built.correspondence["train_vision"][row].tolist() == [0, 0, 1, 1, 1, N, N, N, N, N]
    with pytest.raises(ValueError, match="limits must be at least 1"):
        build(paths, limits={"audio": 0})
