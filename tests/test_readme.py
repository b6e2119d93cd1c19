"""README quotes the committed results: each number it gives for a sweep is what that sweep's view
computes from ``benchmarks/results`` (formatted as README writes it), each sweep's run time is the
JSON's, and each committed full profile names the commit(s) that made it."""
import re
from pathlib import Path

import pytest

from alignlib.experiments import lambda_grid, model_table, sweeps
from alignlib.experiments.sweep import load

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
RESULTS = {name: load(path) for name in sweeps()
           if (path := ROOT / "benchmarks" / "results" / f"experiments_{name}.json").exists()}


def commits(record: dict) -> set[str]:
    return {run["software"]["git"] for run in record["runs"].values() if "software" in run}


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_each_committed_sweep_names_its_commits(name):
    made_by = commits(RESULTS[name])
    assert not any(commit.endswith("+dirty") for commit in made_by) or RESULTS[name].get("allow_dirty")
    assert len(made_by) == 1, f"{name}: runs from {sorted(made_by)}"


def sweep_row(name: str) -> str:
    rows = [line for line in README.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"README's sweep table has no single row for {name}"
    return rows[0]


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_the_sweep_table_gives_each_sweeps_recorded_run_time(name):
    minutes = sum(run["seconds"] for run in RESULTS[name]["runs"].values()) / 60
    assert f"| {minutes:.1f} min |" in sweep_row(name)


def test_the_model_table_quotes_the_models_sweep():
    table = model_table.table(RESULTS["models"])
    lines = README.splitlines()
    for model, row in table.iterrows():
        if model.startswith("reference: "):
            name = model.removeprefix("reference: ")
            line = next(line for line in lines if line.startswith(f"| reference `{name}`"))
            assert f"| {row.MAE} |" in line and f"| {row.Non0_acc_2} |" in line
            continue
        line = next((line for line in lines if line.startswith("| ") and f"| {row.MAE} |" in line), None)
        assert line is not None, f"README's model table has no row with {model}'s MAE {row.MAE}"
        assert f"| {row.steps} |" in line and row.Corr.split()[0] in line and row.Non0_acc_2.split()[0] in line


def test_the_lambda_row_quotes_the_pooled_trend():
    row = sweep_row("lambda")
    trend = lambda_grid.trend(RESULTS["lambda"]).set_index("term")
    for term in ("log10_ot", "log10_mmd"):
        fit = trend.loc[term]
        assert f"{fit.coef:+.4f}".replace("-", "−") in row.replace("-", "−"), term
        assert f"adjusted p = {fit.p_adjusted:.2g}" in row, term
    cells = lambda_grid.cells(RESULTS["lambda"])
    assert f"cell MAE {cells['mean'].min():.3f}-{cells['mean'].max():.3f}" in row
    assert re.search(rf"{len(cells)} cells × {int(cells['n'].max())} seeds", row)
