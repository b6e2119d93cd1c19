"""How many threads alignlib computes with: one count for torch's intra-op pool and the C++ scan.

The count is ``$ALIGNLIB_THREADS`` when set (else ``$OMP_NUM_THREADS``), else the cores this
process may run on (``os.sched_getaffinity``). A process that starts workers sharing its cores
(sweep workers, test workers, notebook kernels) gives each :func:`share` of them through
:func:`environment`. The fused scan runs on ``torch.get_num_threads()`` threads of torch's own
OpenMP runtime, so setting torch's count sets both.

Idle OpenMP threads sleep (``OMP_WAIT_POLICY=passive``) instead of spinning on a core that a
neighbouring process needs: two processes that spin against each other on two cores run 13-19
times slower than alone. The runtime reads the policy once, when ``import torch`` loads it.

Importing alignlib changes nothing; the entry points call :func:`configure` first: every command
line (``python -m alignlib.train``, ``.experiments`` and its workers, ``.data``, ``.notebooks``,
``.ssm.kernels``, the benchmark scripts), the test run (``tests/conftest.py``). It sets the policy
for this process when torch is not loaded yet and for every process it starts; a notebook kernel
inherits it from the runner, or from its kernel spec (``make``), and its count from
``$OMP_NUM_THREADS``, which torch reads when it loads.
"""
from __future__ import annotations

import os
import sys

VARIABLE = "ALIGNLIB_THREADS"


def cores() -> int:
    """The cores this process may run on (its CPU affinity), not every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity API (macOS, Windows)
        return os.cpu_count() or 1


def threads() -> int:
    """This process's thread count: ``$ALIGNLIB_THREADS``, else ``$OMP_NUM_THREADS``, else :func:`cores`."""
    for name in (VARIABLE, "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"${name} must be a positive integer, got {value!r}")
            return int(value)
    return cores()


def share(workers: int) -> int:
    """Threads for each of ``workers`` processes that share this process's threads (at least 1)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    return max(1, threads() // workers)


def environment(count: int) -> dict[str, str]:
    """Environment variables that give a process started with them ``count`` threads, waiting passively."""
    value = str(count)
    return {VARIABLE: value, "OMP_NUM_THREADS": value, "MKL_NUM_THREADS": value, "OPENBLAS_NUM_THREADS": value,
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "passive")}


def configure(count: int | None = None) -> int:
    """Give this process ``count`` threads (default :func:`threads`) and its children the same
    environment; returns the count. Where torch is loaded already, sets its count directly (its
    wait policy then reaches only the children). An entry point calls it first."""
    explicit = count is not None or any(os.environ.get(n, "").strip() for n in (VARIABLE, "OMP_NUM_THREADS"))
    count = threads() if count is None else count
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    if not explicit:  # torch's own default is the cores too; a child with another affinity counts its own
        return count
    os.environ.update(environment(count))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
    return count
