"""One thread count for torch and the C++ scan, each worker's share of the cores, idle threads
asleep: in this process, in a child started after ``import alignlib`` and in a notebook kernel."""
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


@pytest.mark.parametrize("imports", ["import alignlib, torch", "import torch, alignlib"])
def test_a_child_gets_the_count_and_the_runtime_a_passive_wait(imports):
    env = {k: v for k, v in os.environ.items() if k not in (*COUNT_VARIABLES, "OMP_WAIT_POLICY")}
    child = subprocess.run([sys.executable, "-c", f"{imports}; print(torch.get_num_threads())"],
                           env={**env, "ALIGNLIB_THREADS": "1", "OMP_DISPLAY_ENV": "true"},
                           capture_output=True, text=True, check=True)
    assert child.stdout.split() == ["1"]
    if imports.startswith("import alignlib"):  # set before torch loads its OpenMP runtime, which reads it once
        assert "OMP_WAIT_POLICY = 'PASSIVE'" in child.stderr and "OMP_NUM_THREADS = '1'" in child.stderr


def test_a_notebook_kernel_inherits_the_count(tmp_path, monkeypatch):
    for name, value in threads.environment(1).items():  # below torch's default (the cores) where there are two
        monkeypatch.setenv(name, value)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell('metrics_path: str = ""'),
                      nbformat.v4.new_code_cell("import os\nimport torch\nat_import = torch.get_num_threads()\n"
                                                "from alignlib.notebooks import record_metrics\n"
                                                "record_metrics(metrics_path, at_import=at_import, "
                                                "after_alignlib=torch.get_num_threads(), "
                                                "passive=os.environ['OMP_WAIT_POLICY'] == 'passive')")]
    notebook.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(notebook, tmp_path / "01_threads.ipynb")
    run = notebooks.execute(tmp_path / "01_threads.ipynb", tmp_path / "out")
    assert run.metrics == {"at_import": 1.0, "after_alignlib": 1.0, "passive": 1.0}
