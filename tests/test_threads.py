"""One thread count for torch and the C++ scan, each worker's share of the cores, idle threads
asleep: set by the entry points (command lines, the notebook runner, the test run), never by
``import alignlib``, and inherited by the processes they start."""
import json
import os
import subprocess
import sys

import nbformat
import pytest
import torch

import conftest
from alignlib import notebooks
from alignlib.common import threads

COUNT_VARIABLES = ("ALIGNLIB_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@pytest.fixture
def four_cores(monkeypatch):
    """This process on four cores, no thread count in its environment; torch's count restored after."""
    for name in (*COUNT_VARIABLES, "OMP_WAIT_POLICY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    before = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(before)


def test_the_count_is_the_cores_divided_among_workers_unless_set(four_cores):
    assert threads.cores() == 4 and threads.threads() == 4
    assert [threads.share(n) for n in (1, 2, 3, 8)] == [4, 2, 1, 1]
    four_cores.setenv("OMP_NUM_THREADS", "2")
    assert threads.threads() == 2
    four_cores.setenv("ALIGNLIB_THREADS", "6")
    assert threads.threads() == 6 and threads.share(4) == 1
    four_cores.setenv("ALIGNLIB_THREADS", "two")
    with pytest.raises(ValueError, match=r"\$ALIGNLIB_THREADS must be a positive integer, got 'two'"):
        threads.threads()
    with pytest.raises(ValueError, match="workers must be at least 1"):
        threads.share(0)


def test_configure_sets_torch_and_what_children_inherit(four_cores):
    assert threads.configure() == 4
    assert os.environ["OMP_WAIT_POLICY"] == "passive" and not set(COUNT_VARIABLES) & set(os.environ)
    assert threads.configure(3) == 3 and torch.get_num_threads() == 3
    assert [os.environ[name] for name in COUNT_VARIABLES] == ["3"] * 4
    four_cores.setenv("OMP_WAIT_POLICY", "active")  # a wait policy set on purpose is kept
    assert threads.environment(1)["OMP_WAIT_POLICY"] == "active"


def test_the_test_run_gives_each_worker_its_share(four_cores):
    class Config:  # the controller of `pytest -n 2`
        def getoption(self, name, default):
            return ["popen", "popen"] if name == "tx" else default

    conftest.pytest_configure(Config())
    assert os.environ["ALIGNLIB_THREADS"] == "2" and torch.get_num_threads() == 2


def test_this_worker_runs_at_its_share():
    assert torch.get_num_threads() == threads.threads() == int(os.environ["ALIGNLIB_THREADS"])
    assert os.environ["OMP_WAIT_POLICY"] == "passive"


def clean_environment(**settings) -> dict:
    """This process's environment without thread settings, plus ``settings``."""
    return {**{k: v for k, v in os.environ.items() if k not in (*COUNT_VARIABLES, "OMP_WAIT_POLICY")}, **settings}


def test_importing_alignlib_changes_nothing():
    """Neither the environment nor torch's count: a count in $ALIGNLIB_THREADS is left to the entry points."""
    child = subprocess.run([sys.executable, "-c", "import os, alignlib; print(os.environ.get('OMP_WAIT_POLICY'))"],
                           env=clean_environment(), capture_output=True, text=True, check=True)
    assert child.stdout.split() == ["None"]
    program = ("import os, torch; before = dict(os.environ), torch.get_num_threads()\n"
               "import alignlib, alignlib.train, alignlib.analysis, alignlib.experiments, alignlib.notebooks\n"
               "print((dict(os.environ), torch.get_num_threads()) == before, torch.get_num_threads())")
    child = subprocess.run([sys.executable, "-c", program], env=clean_environment(ALIGNLIB_THREADS="1"),
                           capture_output=True, text=True, check=True)
    assert child.stdout.split() == ["True", str(threads.cores())]


def test_the_training_command_configures_before_torch_loads(tmp_path):
    """``python -m alignlib.train`` sets the count and the passive wait before torch's OpenMP runtime
    reads them (it prints what it read with OMP_DISPLAY_ENV)."""
    child = subprocess.run([sys.executable, "-m", "alignlib.train", "--data", str(tmp_path / "none.pkl")],
                           env=clean_environment(ALIGNLIB_THREADS="1", OMP_DISPLAY_ENV="true"),
                           capture_output=True, text=True)
    assert child.returncode == 2 and "no such file" in child.stderr
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in child.stderr and "OMP_NUM_THREADS = '1'" in child.stderr


@pytest.mark.parametrize("cli, argv", [("alignlib.experiments.__main__", ["--help"]),
                                       ("alignlib.data.__main__", ["--help"]),
                                       ("alignlib.notebooks", ["--help"])])
def test_every_command_line_configures_first(cli, argv, four_cores):
    """Each command line's ``main`` configures threads before it parses its arguments."""
    import importlib

    calls = []
    four_cores.setattr(threads, "configure", lambda count=None: calls.append(count))
    with pytest.raises(SystemExit):
        importlib.import_module(cli).main(argv)
    assert calls == [None]


def test_a_notebook_kernel_inherits_the_runners_count(tmp_path, four_cores):
    """The runner (``python -m alignlib.notebooks run``) configures; every kernel it starts inherits
    ``$ALIGNLIB_THREADS``' count (as ``$OMP_NUM_THREADS``, which torch reads) and the passive wait."""
    four_cores.setenv("ALIGNLIB_THREADS", "1")  # below torch's default (the cores) where there are two
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell('metrics_path: str = ""'),
                      nbformat.v4.new_code_cell("import os\nimport torch\nfrom alignlib.notebooks import record_metrics\n"
                                                "record_metrics(metrics_path, threads=torch.get_num_threads(), "
                                                "passive=os.environ['OMP_WAIT_POLICY'] == 'passive')")]
    notebook.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(notebook, tmp_path / "01_threads.ipynb")
    four_cores.setattr(notebooks, "discover", lambda only: [tmp_path / "01_threads.ipynb"])
    assert notebooks.main(["run", "--out", str(tmp_path / "out")]) == 0
    metrics = json.loads((tmp_path / "out" / "01_threads.metrics.json").read_text())
    assert metrics == {"threads": 1.0, "passive": 1.0}
