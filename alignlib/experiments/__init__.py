"""The papers' experiments as resumable sweeps: ``python -m alignlib.experiments NAME --profile
default|full --out DIR [--resume] [--device cpu|cuda] [--workers N]``.

Each experiment is one :class:`~alignlib.experiments.sweep.Sweep` (its profiles, grid of runs,
executor, time estimate and notebook view), the ``SWEEP`` of its own module in this package;
:func:`sweeps` finds them, so a new sweep is one module with its ``SWEEP`` (and the notebook cell
that shows it), nothing else. Shared by the sweeps:

* :mod:`~alignlib.experiments.sweep`: the ``Sweep``, running one into its JSON (resumable, shared
  by workers), the tidy results table;
* :mod:`~alignlib.experiments.cluster`: a sweep's missing runs as scheduler jobs (SLURM through submitit);
* :mod:`~alignlib.experiments.training`: training runs (data and sizes per profile, executor, estimate);
* :mod:`~alignlib.experiments.stats`: means with t-intervals (clipped to a metric's range for display), log-log slopes;
* :mod:`~alignlib.experiments.plots`: curves with bands, intervals, heatmaps, log-log plots.
"""
from __future__ import annotations

import importlib
import pkgutil


def sweeps() -> dict:
    """``{name: Sweep}``: the ``SWEEP`` of every module of this package that defines one."""
    found = {}
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            sweep = getattr(importlib.import_module(f"{__name__}.{module.name}"), "SWEEP", None)
            if sweep is not None:
                found[sweep.name] = sweep
    return found
