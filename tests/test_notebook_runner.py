"""The runner and the metrics helper, on small throw-away notebooks."""
import json
import math

import nbformat
import pytest

from alignlib import notebooks


def make_notebook(path, code_cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    cells = [nbformat.v4.new_code_cell('metrics_path: str = ""')]
    cells[0].metadata["tags"] = ["parameters"]
    cells += [nbformat.v4.new_code_cell(code) for code in code_cells]
    nb.cells = cells
    nbformat.write(nb, path)
    return path


def test_record_metrics_writes_json_and_rejects_nan(tmp_path):
    path = tmp_path / "m.json"
    assert notebooks.record_metrics(str(path), accuracy=0.5, steps=3) == {"accuracy": 0.5, "steps": 3.0}
    assert json.loads(path.read_text()) == {"accuracy": 0.5, "steps": 3.0}
    with pytest.raises(ValueError, match="'loss' is nan"):
        notebooks.record_metrics(str(path), loss=math.nan)
    assert json.loads(path.read_text()) == {"accuracy": 0.5, "steps": 3.0}, "a failed record must not clobber the file"
    assert notebooks.record_metrics("", x=1.0) == {"x": 1.0}


def test_compare_with_baseline_uses_each_tolerance():
    baseline = {"a": {"value": 1.0, "rtol": 0.1, "atol": 0.0}, "b": {"value": 0.0, "rtol": 0.0, "atol": 1e-3}}
    assert notebooks.compare_with_baseline({"a": 1.09, "b": 5e-4}, baseline) == []
    problems = notebooks.compare_with_baseline({"a": 1.2, "c": 1.0}, baseline)
    assert any(p.startswith("a: got 1.2") for p in problems)
    assert any(p.startswith("b: in the baseline but not recorded") for p in problems)
    assert any(p.startswith("c: recorded but not in the baseline") for p in problems)


def test_updated_baseline_keeps_tolerances():
    old = {"a": {"value": 1.0, "rtol": 0.2, "atol": 0.01}}
    assert notebooks.updated_baseline({"a": 2.0, "b": 3.0}, old) == {
        "a": {"value": 2.0, "rtol": 0.2, "atol": 0.01},
        "b": {"value": 3.0, "rtol": notebooks.DEFAULT_RTOL, "atol": notebooks.DEFAULT_ATOL},
    }


def test_execute_records_metrics_and_names_a_failing_cell(tmp_path):
    good = make_notebook(tmp_path / "01_good.ipynb", [
        "from alignlib.notebooks import record_metrics\nrecord_metrics(metrics_path, answer=42)"])
    run = notebooks.execute(good, tmp_path / "out")
    assert run.metrics == {"answer": 42.0} and run.output.exists()

    bad = make_notebook(tmp_path / "02_bad.ipynb", ["x = 1", "raise ValueError('tokens are empty')"])
    with pytest.raises(notebooks.NotebookFailed, match=r"02_bad.ipynb: cell \d+ failed with ValueError: tokens are empty"):
        notebooks.execute(bad, tmp_path / "out")


def test_unknown_profile_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        notebooks.profile_parameters(tmp_path / "01_x.ipynb", "huge")
