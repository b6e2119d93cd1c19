"""The notebook suite as regression tests: every notebook runs with its default (CPU) parameters
and ``solutions=True`` (its exercises' reference solutions must pass their checks), and its
recorded metrics must match tests/baselines/<notebook>.json within each tolerance.
Baselines change only with ``pytest --update-baselines``."""
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.compare import compare_notebooks

from alignlib import notebooks
from alignlib.common.files import atomic_write_json
from alignlib.notebooks.exercises import CHECKS
from baseline_compare import BASELINE_DIR, compare_with_baseline, updated_baseline

NOTEBOOKS = notebooks.discover()


def test_the_suite_has_notebooks():
    assert [p.stem for p in NOTEBOOKS] == ["01_optimal_transport", "02_mmd", "03_mamba", "04_experts_and_coupling",
                                           "05_data", "06_training", "07_inside_trained_models", "08_paper_experiments", "09_emma",
                                           "10_learned_alignment"]


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_matches_its_baseline(notebook, tmp_path, request):
    run = notebooks.execute(notebook, tmp_path)
    baseline_path = BASELINE_DIR / f"{notebook.stem}.json"
    old = json.loads(baseline_path.read_text()) if baseline_path.exists() else None
    if request.config.getoption("--update-baselines"):
        atomic_write_json(baseline_path, updated_baseline(run.metrics, old))
        pytest.skip(f"baseline rewritten: {baseline_path}")
    assert old is not None, f"no baseline at {baseline_path}; create it with pytest --update-baselines"
    problems = compare_with_baseline(run.metrics, old)
    assert not problems, f"{notebook.name} drifted from its baseline:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_pair_is_in_sync_and_stripped(notebook):
    ipynb = nbformat.read(notebook, as_version=4)
    for cell in ipynb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{notebook.name} has outputs; run nbstripout"
    paired = notebook.with_suffix(".py")
    assert paired.exists(), f"{notebook.name} has no py:percent twin"
    compare_notebooks(jupytext.read(paired), jupytext.read(notebook), fmt="py:percent")
    assert ipynb.metadata["kernelspec"]["name"] == "python3"
    assert ipynb.metadata["language_info"]["name"] == "python"


def test_nbstripout_verify_passes():
    nbstripout = Path(sys.executable).parent / "nbstripout"
    result = subprocess.run([str(nbstripout), "--verify", *map(str, NOTEBOOKS)], capture_output=True, text=True)
    assert result.returncode == 0, f"run `make notebooks` to strip: {result.stdout}{result.stderr}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_and_full_profile(notebook):
    ipynb = nbformat.read(notebook, as_version=4)
    tagged = [c for c in ipynb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{notebook.name}: expected one cell tagged 'parameters', found {len(tagged)}"
    source = tagged[0].source
    assert 'metrics_path: str = ""' in source
    assert "\nsolutions: bool = False  #" in source, f"{notebook.name}: no annotated `solutions: bool = False`"
    names = [line.split(":")[0] for line in source.splitlines() if line and not line.startswith("#")]
    for line in source.splitlines():
        if line and not line.startswith("#"):
            assert ":" in line.split("=")[0], f"{notebook.name}: parameter not annotated: {line!r}"
    full = notebooks.profile_parameters(notebook, "full")
    unknown = set(full) - set(names)
    assert not unknown, f"{notebook.name}: full profile sets unknown parameters {sorted(unknown)}"
    assert full, f"{notebook.name}: the full profile changes nothing"


def exercise_checks(notebook) -> list[str]:
    """The exercises a notebook checks, in order: the names of its ``exercise.check("...", ...)`` calls."""
    cells = nbformat.read(notebook, as_version=4).cells
    return [name for cell in cells if cell.cell_type == "code"
            for name in re.findall(r'^exercise\.check\("(\w+)"', cell.source, re.MULTILINE)]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_ends_with_exercises_whose_answers_are_empty(notebook):
    cells = nbformat.read(notebook, as_version=4).cells
    headings = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## Exercises")]
    assert len(headings) == 1, f"{notebook.name}: expected one '## Exercises' section"
    section = cells[headings[0]:]
    assert not any(c.cell_type == "markdown" and re.match(r"## (?!#)", c.source) for c in section[1:]), \
        "the Exercises section must be the notebook's last"
    exercises = [c for c in section if c.cell_type == "markdown" and c.source.startswith("### ")]
    checks = exercise_checks(notebook)
    assert 3 <= len(exercises) <= 5 and len(checks) >= 2, f"{notebook.name}: {len(exercises)} exercises, {len(checks)} checked"
    assert set(checks) <= set(CHECKS), f"unknown exercises {set(checks) - set(CHECKS)}"
    answers = [c.source for c in section if c.cell_type == "code" and "# your" in c.source]
    assert len(answers) == len(exercises), f"{notebook.name}: one answer cell per exercise"
    for source in answers:  # a function whose body is its docstring and `...`, or a prediction of None
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef):
                body = node.body[1:] if ast.get_docstring(node) else node.body
                assert ast.unparse(body[0]) == "..." and len(body) == 1, f"{notebook.name}: {node.name} is answered"
            elif isinstance(node, ast.Assign) and "# your prediction" in source:
                assert isinstance(node.value, ast.Constant) and node.value.value is None, f"{notebook.name}: predicted"


def test_every_exercise_check_is_used_by_one_notebook():
    used = [name for notebook in NOTEBOOKS for name in exercise_checks(notebook)]
    assert sorted(used) == sorted(CHECKS), "each check of alignlib.notebooks.exercises serves exactly one notebook cell"
