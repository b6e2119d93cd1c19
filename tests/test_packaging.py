"""environment.yml stays consistent with pyproject.toml, the single source of dependencies."""
import re
import tomllib

import yaml
from packaging.specifiers import SpecifierSet

from alignlib import PROJECT_ROOT


def load():
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    environment = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    return pyproject, environment


def test_environment_yml_matches_pyproject():
    pyproject, environment = load()
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert pip_section == ["-e .[test]"], "conda users install the project itself through pip"

    python = next(d for d in conda if d.startswith("python"))
    version = python.split("=")[-1]
    assert version in SpecifierSet(pyproject["project"]["requires-python"])

    torch_range = next(re.sub(r"^torch", "", d).strip() for d in pyproject["project"]["dependencies"] if d.startswith("torch"))
    pytorch = next(d for d in conda if d.startswith("pytorch"))
    assert SpecifierSet(pytorch.removeprefix("pytorch")) == SpecifierSet(torch_range)
    assert "2.13.0" in SpecifierSet(torch_range), "the Makefile pins torch==2.13.0; the range must admit it"
    assert {"pip", python, pytorch} == set(conda), f"unexpected conda packages: {conda}"


def test_extras_are_declared():
    pyproject, _ = load()
    extras = pyproject["project"]["optional-dependencies"]
    names = {k: {re.split(r"[<>=;\[ ]", d)[0] for d in v} for k, v in extras.items()}
    assert {"pytest", "nbmake", "pytest-xdist", "hypothesis", "nbstripout"} <= names["test"]
    assert {"mamba-ssm", "causal-conv1d"} <= names["cuda"]
    core = {re.split(r"[<>=;\[ ]", d)[0] for d in pyproject["project"]["dependencies"]}
    assert {"torch", "numpy", "geomloss", "pot", "plotly", "anywidget", "ipywidgets", "seaborn",
            "papermill", "jupyterlab", "jupytext", "tqdm"} <= core
