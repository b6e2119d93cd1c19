"""Fuzz: truncated, bit-flipped and structurally wrong pickles, ``.npz`` tables and ``.csd`` files end in
the loaders' one-line :class:`~alignlib.data.MalformedDataError` (or load, when the damage left a
valid file), never in another exception."""
import io
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from alignlib.data import MalformedDataError, load_mmsa, synthetic
from alignlib.data.csd import ComputationalSequence
from alignlib.data.from_sdk import build
from test_csd import sequences
from test_safe_pickle import mmsa_file

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PICKLE = pickle.dumps(mmsa_file(), protocol=pickle.HIGHEST_PROTOCOL)


def tables_of(data):
    return {f"{s}_{m}": np.zeros((len(data[s]["regression_labels"]), data[s][m].shape[1]), np.int16)
            for s in data for m in ("audio", "vision")}


NPZ = io.BytesIO()
np.savez_compressed(NPZ, **tables_of(mmsa_file()))
NPZ = NPZ.getvalue()


def damaged(blob: bytes, cut: int | None, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(blob if cut is None else blob[: cut % len(blob)])
    for position, bit in flips:
        if out:
            out[position % len(out)] ^= 1 << bit
    return bytes(out)


damage = dict(cut=st.none() | st.integers(0, 10**6),
              flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), max_size=4))


def loads_or_one_line_error(load, path):
    try:
        load(path)
    except MalformedDataError as error:
        assert "\n" not in str(error) and Path(path).name in str(error)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(**damage)
def test_damaged_pickles(folder, cut, flips):
    path = folder / "data.pkl"
    path.write_bytes(damaged(PICKLE, cut, flips))
    loads_or_one_line_error(load_mmsa, path)


leaves = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=5)
          | st.binary(max_size=5) | hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(min_dims=0, max_dims=3, max_side=3)))
structures = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
                          | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=8)
KEYS = ("text", "audio", "vision", "regression_labels", "id", "audio_lengths", "vision_lengths")


@pytest.mark.filterwarnings("ignore:overflow encountered in cast", "ignore::numpy.exceptions.ComplexWarning")
@FUZZ
@given(replaced=st.dictionaries(st.tuples(st.sampled_from(("train", "valid", "test")), st.sampled_from(KEYS)),
                                structures, min_size=1, max_size=3),
       top=st.none() | structures)
def test_structurally_wrong_pickles(folder, replaced, top):
    data = mmsa_file()
    for (split, key), value in replaced.items():
        data[split][key] = value
    path = folder / "data.pkl"
    path.write_bytes(pickle.dumps(data if top is None else top))
    loads_or_one_line_error(load_mmsa, path)


@FUZZ
@given(**damage)
def test_damaged_correspondence_tables(folder, cut, flips):
    path = folder / "tables.pkl"
    path.write_bytes(PICKLE)
    synthetic.correspondence_path(path).write_bytes(damaged(NPZ, cut, flips))
    loads_or_one_line_error(load_mmsa, path)
    loads_or_one_line_error(synthetic.load_correspondence, path)


@pytest.fixture(scope="module")
def csd_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("csd")
    paths, _ = sequences(folder)
    return folder, paths, {name: path.read_bytes() for name, path in paths.items()}


@FUZZ
@given(name=st.sampled_from(("words", "text", "audio", "vision", "labels")), **damage)
def test_damaged_computational_sequences(csd_files, name, cut, flips):
    folder, paths, blobs = csd_files
    broken = folder / f"broken_{name}.csd"
    broken.write_bytes(damaged(blobs[name], cut, flips))
    given_paths = {**paths, name: broken}
    try:
        build(given_paths)
    except MalformedDataError as error:  # usually blames the damaged file; a mismatch may blame its partner
        assert "\n" not in str(error) and any(str(path) in str(error) for path in given_paths.values())


datasets = hnp.arrays(hnp.integer_dtypes() | hnp.floating_dtypes() | hnp.boolean_dtypes() | hnp.byte_string_dtypes(max_len=3),
                      hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))


@FUZZ
@given(roots=st.lists(st.sampled_from(("words", "x")), min_size=0, max_size=2, unique=True),
       groups=st.sets(st.sampled_from(("data", "metadata")), max_size=2),
       videos=st.dictionaries(st.sampled_from(("v1", "v2")),
                              st.dictionaries(st.sampled_from(("features", "intervals", "other")), datasets, max_size=3),
                              max_size=2))
def test_structurally_wrong_computational_sequences(folder, roots, groups, videos):
    path = folder / "wrong.csd"
    with h5py.File(path, "w") as handle:
        for root in roots:
            group = handle.create_group(root)
            for name in groups:
                group.create_group(name)
            if "data" in groups:
                for video, entries in videos.items():
                    for key, value in entries.items():
                        group["data"].create_dataset(f"{video}/{key}", data=value)

    def read_all(p):
        with ComputationalSequence(p) as sequence:
            for video in sequence.videos:
                sequence.read(video)

    loads_or_one_line_error(read_all, path)
