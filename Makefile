# Two commands do all the set-up from a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lab bench gpu-check notebooks clean

# torch==2.13.0 first (the CPU build); the project's own range admits it, so pip keeps it.
# The kernel's idle OpenMP threads sleep rather than spin on a core a neighbour needs (README: Threads).
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (alignlib)" \
		--env OMP_WAIT_POLICY passive >/dev/null
	$(BIN)/python -m alignlib.ssm.kernels  # the C++ scan into ~/.cache/alignlib; without a compiler, a warning and the PyTorch fallback
	touch $(STAMP)

run: $(STAMP)  ## execute every notebook into build/ with an HTML index
	$(BIN)/python -m alignlib.notebooks run --out build

test: $(STAMP)  ## the whole test suite, notebooks included
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=15  # the slowest 15 tests last: where the suite's time goes

lab: $(STAMP)  ## JupyterLab on the notebooks (on 127.0.0.1; root, as in containers, needs --allow-root)
	$(BIN)/jupyter lab notebooks --ServerApp.ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root)

bench: $(STAMP)  ## CPU benchmarks, JSON in benchmarks/results/ (GPU ones: benchmarks/gpu_*.py)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

gpu-check: $(STAMP)  ## the GPU checks in one command (under 8 minutes; JSON in benchmarks/results/gpu_*.json)
	$(BIN)/python benchmarks/gpu_check.py

notebooks: $(STAMP)  ## sync each .ipynb with its .py twin, then strip outputs
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.ipynb
	$(BIN)/nbstripout notebooks/[0-9][0-9]_*.ipynb

clean:
	rm -rf build .pytest_cache
