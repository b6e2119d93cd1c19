"""The restricted unpickler: a pickle that would run code is refused before anything runs, and files in
MMSA's layout (object arrays of strings, every protocol, numpy 1.x names) still load."""
import io
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest

from alignlib.common import safe_pickle
from alignlib.data import MalformedDataError, load_mmsa


class WritesAFile:
    """Unpickling this calls ``Path.write_text(target, ...)``."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return Path.write_text, (Path(self.target), "ran")


class RunsCode:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return exec, (f"open({str(self.target)!r}, 'w').write('ran')",)


def mmsa_file(extra=None):
    """A small file in MMSA's layout: float arrays, ids and raw text as object arrays of strings."""
    rng = np.random.default_rng(0)
    data = {}
    for split, n in (("train", 3), ("valid", 2), ("test", 2)):
        data[split] = {"text": rng.standard_normal((n, 4, 5)).astype(np.float32),
                       "audio": rng.standard_normal((n, 6, 2)).astype(np.float32),
                       "vision": rng.standard_normal((n, 5, 3)).astype(np.float32),
                       "regression_labels": rng.uniform(-3, 3, n).astype(np.float32),
                       "classification_labels": rng.integers(0, 3, n),
                       "id": np.array([f"video_{split}${i}" for i in range(n)], dtype=object),
                       "raw_text": np.array(["a film", "ok"] + ["so so"] * (n - 2), dtype=object),
                       "annotations": ["Positive"] * n, "audio_lengths": [6] * n, "meta": {"fps": np.float64(30.0)}}
    data["train"].update(extra or {})
    return data


@pytest.mark.parametrize("payload", [WritesAFile, RunsCode])
def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path, payload):
    target = tmp_path / "pwned.txt"
    evil = pickle.dumps(mmsa_file({"x": payload(target)}))
    pickle.loads(evil)  # the plain unpickler runs it: the payload is real
    assert target.read_text() == "ran"
    target.unlink()
    path = tmp_path / "evil.pkl"
    path.write_bytes(evil)
    with pytest.raises(MalformedDataError) as error:
        load_mmsa(path)
    name = "pathlib.Path.write_text" if payload is WritesAFile else "builtins.exec"
    assert str(error.value) == (f"{path}: refused to load the global {name} (only numpy arrays, dtypes and builtin "
                                "containers and scalars are allowed)")
    assert not target.exists()


def test_refused_inside_an_object_array(tmp_path):
    target = tmp_path / "pwned.txt"
    inner = np.array([WritesAFile(target), "x"], dtype=object)
    with pytest.raises(safe_pickle.UnsafePickleError, match="Path.write_text"):
        safe_pickle.load(io.BytesIO(pickle.dumps({"a": inner})))
    assert not target.exists()


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_mmsa_layout_loads_in_every_protocol(tmp_path, protocol):
    data = mmsa_file()
    blob = pickle.dumps(data, protocol=protocol)
    path = tmp_path / "mmsa.pkl"
    path.write_bytes(blob)
    loaded = load_mmsa(path)
    for split in ("train", "valid", "test"):
        np.testing.assert_array_equal(loaded.splits[split].features["audio"], data[split]["audio"])
        assert loaded.splits[split].ids.tolist() == data[split]["id"].tolist()
        assert loaded.splits[split].ids.dtype == object
    assert loaded.splits["train"].raw["meta"]["fps"] == 30.0


def test_numpy_1_pickles_load():
    """numpy 1.x wrote ``numpy.core.multiarray`` where numpy 2 writes ``numpy._core.multiarray``."""
    blob = pickle.dumps(mmsa_file(), protocol=2)
    old = blob.replace(b"numpy._core.", b"numpy.core.")
    globals_named = {arg for op, arg, _ in pickletools.genops(old) if op.name == "GLOBAL"}
    assert "numpy.core.multiarray _reconstruct" in globals_named
    loaded = safe_pickle.load(io.BytesIO(old))
    np.testing.assert_array_equal(loaded["test"]["text"], mmsa_file()["test"]["text"])


class Reduces:
    """Pickles as ``numpy._reconstruct`` followed by the given array state, as a damaged file could."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        return np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), self.state


def object_dtype_without_its_flags():
    """An object dtype whose pickled flags say "no pointers" (a flipped bit in ``'i8'`` gives ``'O8'``)."""
    dtype = np.dtype("O8", False, True)
    dtype.__setstate__((3, "|", None, None, None, -1, -1, 0))
    return dtype


@pytest.mark.parametrize("state, reason", [
    ((1, (3,), object_dtype_without_its_flags(), False, b"\x01" * 24), "the dtype '|O' is damaged: its flags 0"),
    ((1, (6,), np.dtype(object), False, ["a", "b"]), r"its shape \(6,\) is given 2 items"),
    ((1, (2,), np.dtype(object), False, bytes(16)), r"its shape \(2,\) is given bytes"),
    ((1, (2,), np.dtype([("a", "i4"), ("b", "O")]), False, [(1, "x"), (2, "y")]), "refused a structured dtype"),
])
def test_damaged_arrays_are_refused_before_numpy_reads_them(state, reason):
    """numpy, unguarded, reads the first two's raw bytes or short list as object pointers and crashes the
    interpreter; a structured dtype is refused whole (its fields' flags are not checked)."""
    blob = pickle.dumps({"audio": Reduces(state)}, protocol=2)
    with pytest.raises(safe_pickle.UnsafePickleError, match=reason):
        safe_pickle.load(io.BytesIO(blob))


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_loads_plain_arrays_equal_to_what_was_pickled(protocol):
    inner = np.arange(6, dtype=np.int16).reshape(2, 3, order="F")
    objects = np.empty((2, 2), dtype=object, order="F")
    objects[:] = [["a", inner], [None, 1.5]]
    data = {"objects": objects, "scalar": np.float32(2.5), "nested": [(inner, np.asfortranarray(np.eye(2)))],
            "text": np.array(["ab", "c"]), "when": np.array(["2020-01-01"], dtype="M8[D]")}
    blob = pickle.dumps(data, protocol=protocol)
    loaded, unrestricted = safe_pickle.load(io.BytesIO(blob)), pickle.loads(blob)

    def arrays(tree):
        return [tree["objects"], tree["objects"][0, 1], *tree["nested"][0], tree["text"], tree["when"]]
    for array, reference in zip(arrays(loaded), arrays(unrestricted)):
        assert type(array) is np.ndarray and array.flags.owndata == reference.flags.owndata
    assert loaded["objects"].tolist()[0][0] == "a" and loaded["objects"][1, 1] == 1.5
    np.testing.assert_array_equal(loaded["objects"][0, 1], inner)
    assert loaded["nested"][0][0] is loaded["objects"][0, 1]  # shared in the pickle, shared when loaded
    for key in ("text", "when"):
        np.testing.assert_array_equal(loaded[key], data[key])
    assert loaded["scalar"] == np.float32(2.5) and loaded["scalar"].dtype == np.float32


def test_a_huge_memo_index_costs_nothing():
    """One flipped bit in a memo index (LONG_BINPUT 2**31 - 1): C's unpickler sizes an array to it (16 GB)."""
    assert safe_pickle.load(io.BytesIO(b"\x80\x02]r\xff\xff\xff\x7f.")) == []


def test_a_bytearray_longer_than_its_file_is_refused_without_allocating_it():
    """BYTEARRAY8 declaring 2**40 bytes (1 TB), followed by 3: Python's unpickler would zero-fill 1 TB first."""
    with pytest.raises(pickle.UnpicklingError, match="ends inside a bytearray of 1099511627776 bytes"):
        safe_pickle.load(io.BytesIO(b"\x80\x05\x96" + (1 << 40).to_bytes(8, "little") + b"abc"))
    assert safe_pickle.load(io.BytesIO(pickle.dumps(bytearray(b"abc"), protocol=5))) == bytearray(b"abc")



class FromBuffer:
    """An array made by ``_frombuffer`` whose state the pickle then sets (numpy's pickles never do)."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        return np._core.numeric._frombuffer, (b"", np.dtype("f8"), (0,), "C"), self.state


@pytest.mark.parametrize("blob, reason", [
    # numpy crashes on a datetime dtype's state without its metadata (8 entries, not 9)
    (b"\x80\x02cnumpy\ndtype\nU\x02M8\x89\x88\x87R(K\x04U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.",
     "a damaged dtype: its state"),
    # a state set on an array numpy's pickles never set one on: numpy would read the short list as pointers
    (pickle.dumps(FromBuffer((1, (10**6,), np.dtype(object), False, ["a"])), protocol=2),
     "refused to set the state of a ndarray"),
    (b"c__builtin__\nbytearray\nJ\xff\xff\xff\x7f\x85R.", r"refused bytearray of a size \(2147483647\)"),  # 2 GB of zeros
    (b"\x80\x02cnumpy\nndarray\nJ\x00\xca\x9a;\x85U\x01O\x86R.", "refused to call numpy.ndarray"),  # 10**9 objects
])
def test_numpys_callables_only_as_numpys_pickles_use_them(blob, reason):
    with pytest.raises(safe_pickle.UnsafePickleError, match=reason):
        safe_pickle.load(io.BytesIO(blob))


def test_shared_and_cyclic_objects_stay_so():
    inner = [np.arange(2)]
    outer = (inner,)
    inner.append(outer)
    loaded = safe_pickle.load(io.BytesIO(pickle.dumps(outer, protocol=2)))
    assert loaded[0][1] is loaded and np.array_equal(loaded[0][0], np.arange(2))
