"""The runner, its HTML pages, the metrics helper and the baseline helpers, on small throw-away
notebooks; and papermill's reading of the suite's parameters cells."""
import ast
import json
import math
import re

import nbformat
import papermill
import pytest

from alignlib import notebooks
from alignlib.widgets.plans import TransportPlanExplorer
from baseline_compare import DEFAULT_ATOL, DEFAULT_RTOL, compare_with_baseline, updated_baseline


def make_notebook(path, code_cells, markdown=None):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    cells = [nbformat.v4.new_markdown_cell(markdown)] if markdown else []
    cells.append(nbformat.v4.new_code_cell('metrics_path: str = ""'))
    cells[-1].metadata["tags"] = ["parameters"]
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
    assert compare_with_baseline({"a": 1.09, "b": 5e-4}, baseline) == []
    problems = compare_with_baseline({"a": 1.2, "c": 1.0}, baseline)
    assert any(p.startswith("a: got 1.2") for p in problems)
    assert any(p.startswith("b: in the baseline but not recorded") for p in problems)
    assert any(p.startswith("c: recorded but not in the baseline") for p in problems)


def test_updated_baseline_keeps_tolerances():
    old = {"a": {"value": 1.0, "rtol": 0.2, "atol": 0.01}}
    assert updated_baseline({"a": 2.0, "b": 3.0}, old) == {
        "a": {"value": 2.0, "rtol": 0.2, "atol": 0.01},
        "b": {"value": 3.0, "rtol": DEFAULT_RTOL, "atol": DEFAULT_ATOL},
    }


def test_execute_records_metrics_and_names_a_failing_cell(tmp_path, capfd):
    good = make_notebook(tmp_path / "01_good.ipynb", [
        "from alignlib.notebooks import record_metrics\nrecord_metrics(metrics_path, answer=42)"])
    run = notebooks.execute(good, tmp_path / "out")
    assert run.metrics == {"answer": 42.0} and run.output.exists()
    kernel_log = capfd.readouterr().err
    assert "without encryption" not in kernel_log and "WARNING" not in kernel_log, kernel_log

    bad = make_notebook(tmp_path / "02_bad.ipynb", ["x = 1", "raise ValueError('tokens are empty')"])
    with pytest.raises(notebooks.NotebookFailed, match=r"02_bad.ipynb: cell \d+ failed with ValueError: tokens are empty"):
        notebooks.execute(bad, tmp_path / "out")


def test_unknown_profile_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        notebooks.profile_parameters(tmp_path / "01_x.ipynb", "huge")


def test_html_page_draws_maths_widgets_and_progress_from_local_files(tmp_path):
    notebook = make_notebook(tmp_path / "01_page.ipynb", [
        "from tqdm.auto import tqdm\nfor _ in tqdm(range(7), desc='steps'):\n    pass",
        "from alignlib.widgets.plans import TransportPlanExplorer\n"
        "TransportPlanExplorer(method='relaxed', n_source=6, n_target=4, seed=5)",
        "from alignlib.notebooks import record_metrics\nrecord_metrics(metrics_path, done=1)",
    ], markdown="The plan $P \\in \\mathbb{R}^{T_m \\times T_n}$.")
    out = tmp_path / "build"
    run = notebooks.execute(notebook, out)
    notebooks.write_index([run], [], out, "default")
    page = (out / "01_page.html").read_text()

    loaded = re.findall(r"<(?:script|link|img)[^>]*?(?:src|href)=[\"']([^\"']+)", page)
    assert sorted(set(loaded)) == ["static/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe",
                                   "static/plotly.min.js"], loaded
    assert all((out / path.split("?")[0]).is_file() for path in loaded)
    assert (out / "static/mathjax/config/TeX-AMS-MML_HTMLorMML-full.js").is_file()
    assert (out / "static/mathjax/fonts/HTML-CSS/STIX-Web/woff/STIXMathJax_Main-Regular.woff").is_file()
    assert "$P \\in \\mathbb{R}^{T_m \\times T_n}$" in page, "the maths is left for MathJax to typeset"
    assert "application/vnd.jupyter.widget" not in page, "no widget manager is asked for"

    assert '<progress max="7" value="7">' in page and re.search(r"steps:\s+100%", page)
    expected = TransportPlanExplorer(method="relaxed", n_source=6, n_target=4, seed=5).figure
    calls = [m.end() for m in re.finditer(r"Plotly\.newPlot\(document\.getElementById\('[\w-]+'\), ", page)]
    assert len(calls) == 1
    data, end = json.JSONDecoder().raw_decode(page, calls[0])
    layout, _ = json.JSONDecoder().raw_decode(page, end + len(", "))
    assert layout["title"]["text"] == expected.layout.title.text
    assert data[0]["z"] == expected.data[0].z.tolist()
    assert '<button class="active" disabled="">relaxed</button>' in page


@pytest.mark.parametrize("notebook", notebooks.discover(), ids=lambda p: p.stem)
def test_papermill_reads_every_parameter(notebook):
    cell = next(c for c in nbformat.read(notebook, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    assigned = [node.target.id for node in ast.parse(cell.source).body if isinstance(node, ast.AnnAssign)]
    assigned += [t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign) for t in node.targets]
    assert assigned, f"{notebook.name}: no parameter in its parameters cell"
    assert list(papermill.inspect_notebook(str(notebook))) == assigned


def test_html_page_drops_injected_parameters_and_folds_setup(tmp_path):
    """The first screen of a page: no injected cell (it names this machine's paths), setup folded."""
    notebook = make_notebook(tmp_path / "01_first.ipynb", [
        "import math  # the setup\nanswer = math.sqrt(16)",
        "from alignlib.notebooks import record_metrics\nrecord_metrics(metrics_path, answer=answer)",
        "print('the answer is', answer)",
    ], markdown="# Title\n\nWhat you will learn.")
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[2].metadata["tags"] = ["setup"]
    nbformat.write(nb, notebook)
    out = tmp_path / "build"
    run = notebooks.execute(notebook, out)
    executed = nbformat.read(run.output, as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert str(out) in json.dumps(executed.cells[2].source), "papermill injected this machine's path"
    notebooks.write_index([run], [], out, "default")
    page = (out / "01_first.html").read_text()
    assert str(tmp_path) not in page, "no absolute path of the machine that ran it"
    assert page.count('<details class="alignlib-folded">') == 2  # parameters and setup
    assert "import math  # the setup" in page.split("<details class=\"alignlib-folded\">")[2].split("</details>")[0]
    assert "the answer is 4.0" in page
