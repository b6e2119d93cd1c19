"""The papers' experiments as resumable sweeps: ``python -m alignlib.experiments NAME --profile
default|full --out DIR [--resume] [--device cpu|cuda]`` with NAME one of ``ablations``,
``missing``, ``lambda``, ``efficiency``.

* :mod:`~alignlib.experiments.grids`: the declared grids per profile (and their time estimate);
* :mod:`~alignlib.experiments.runner`: running a sweep (one JSON, rewritten after every run) and
  the tidy results table;
* :mod:`~alignlib.experiments.efficiency`: the fusion-module memory and latency harness;
* :mod:`~alignlib.experiments.stats`: means with t-intervals, log-log slopes;
* :mod:`~alignlib.experiments.plots`: curves with bands, heatmaps, log-log plots.
"""
