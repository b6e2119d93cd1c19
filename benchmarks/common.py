"""Shared helpers for the benchmark scripts: timing and the JSON record."""
from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import torch

from alignlib.common.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"


def median_seconds(fn, repeats: int = 3) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_result(name: str, payload: dict) -> Path:
    """Write ``benchmarks/results/<name>.json`` with the machine it ran on."""
    payload = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()},
        **payload,
    }
    return atomic_write_json(RESULTS / f"{name}.json", payload)
