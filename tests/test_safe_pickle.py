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
