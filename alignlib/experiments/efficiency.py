"""The efficiency sweep: memory and latency of the fusion module alone against sequence length,
batch 1, inference (AlignMamba-2 Fig. 4/5, AlignMamba-1 Fig. 3/4); the harness that measures one
:class:`Point`, and its results view (notebook 08): each point's status, log-log slopes, where and
why a model failed, and the answer in words.

The fusion module is the registry's model with its input projections (and AlignMamba-2's unimodal
Mamba layers, the paper's "unimodal encoders") replaced by pass-throughs: AlignMamba-1's explicit
OT plans, transport and Mamba stack; AlignMamba-2's Modality-Aware Mamba blocks on ``[H_A; H_V; H_L]``;
the MulT-style cross-modal and self-attention blocks. Each modality has ``length`` tokens of width
``d_model``. Every point runs in its own process (``python -m alignlib.experiments.efficiency_point
POINT_JSON``, :mod:`~alignlib.experiments.efficiency_point`) so its peak memory is its own: on CPU the rise of the peak resident set over the
first forward pass (``VmHWM``, reset just before it), with the address space capped at
``memory_limit_mib`` above what the process already holds; on CUDA ``torch.cuda.max_memory_allocated``
above the allocated baseline. Running out of memory is a result (``status: "oom"``), as is a point
over ``time_limit_s`` (``"timeout"``); a model's longer points are then skipped.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path

from alignlib.experiments import stats
from alignlib.experiments.efficiency_point import Point
from alignlib.experiments.sweep import Sweep, tidy

MODELS = ("alignmamba1", "alignmamba2", "mult")
STARTUP_ALLOWANCE_S = 60  # imports, model build and warm-up before the timed passes
POINT_OVERHEAD_S = 5.0  # a point's process start (imports), for the estimate


def measure_point(point: Point) -> dict:
    """Run one point in a fresh process; a process killed by the kernel (SIGKILL) counts as out of memory."""
    command = [sys.executable, "-m", "alignlib.experiments.efficiency_point", json.dumps(dataclasses.asdict(point))]
    try:
        child = subprocess.run(command, capture_output=True, text=True,
                               timeout=point.time_limit_s + STARTUP_ALLOWANCE_S)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "reason": f"no result within {point.time_limit_s} s (+{STARTUP_ALLOWANCE_S} s "
                                               "start-up)", "metrics": {}}
    if child.returncode == -9:
        return {"status": "oom", "reason": "killed by SIGKILL (the kernel's out-of-memory killer)", "metrics": {}}
    if child.returncode != 0:
        tail = (child.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"efficiency point {point.model} at length {point.length} failed (exit {child.returncode}): "
                           f"{tail}")
    return json.loads(child.stdout.strip().splitlines()[-1])


# -- the sweep ----------------------------------------------------------------------------------------
def grid(settings: dict) -> list[dict]:
    """Every model at every length; the other settings are the :class:`Point`'s."""
    shared = {k: v for k, v in settings.items() if k != "lengths"}
    return [{"id": f"{model}-L{length}", "kind": "efficiency", "factors": {"model": model, "length": length},
             "efficiency": {"model": model, "length": length, **shared}}
            for model in MODELS for length in settings["lengths"]]


def execute(run: dict, root: Path, device: str) -> tuple[dict, list[dict]]:
    point = Point(**run["efficiency"], device=device)
    return dataclasses.asdict(point), [measure_point(point)]


def estimate(run: dict) -> float:
    """An upper bound: the process start and the point's time limit."""
    return POINT_OVERHEAD_S + run["efficiency"]["time_limit_s"]


def skip(run: dict, finished: dict) -> tuple[dict, list[dict]] | None:
    """A point is skipped when a shorter length of its model already ran out of memory or time."""
    for other in finished.values():
        status = other["rows"][0].get("status")
        if (other["factors"]["model"] == run["factors"]["model"] and other["factors"]["length"] < run["factors"]["length"]
                and status in ("oom", "timeout")):
            return run["efficiency"], [{"status": "skipped", "reason": f"{status} at length {other['factors']['length']}",
                                        "metrics": {}}]
    return None


# -- results view (notebook 08) -----------------------------------------------------------------------
PAPER_EFFICIENCY = ("AlignMamba-2 Fig. 4/5 (GPU, 10k to 100k tokens): MulT about 10 GB and 100 ms at 10k tokens and out "
                    "of memory at 20k, AlignMamba-1 out of memory near 80k, AlignMamba-2 linear up to 100k")
SQUARE_MATRICES = {"mult": "the attention weights of one cross-modal block, one L × L matrix per head",
                   "alignmamba1": "its explicit L × L transport plan"}  # what each model materialises


def square_matrices(model: str) -> int:
    """How many L × L matrices ``model``'s fusion module allocates at once: one per attention head
    (MulT-style), one transport plan (AlignMamba-1), none (AlignMamba-2)."""
    from alignlib.models.sentiment import ModelConfig

    return {"mult": ModelConfig().n_heads, "alignmamba1": 1}.get(model, 0)


def points(record: dict):
    """One row per model and length: ``status`` (ok, oom, timeout, skipped), ``peak_mib``, ``latency_ms``
    (NaN where the point did not run) and ``reason``."""
    import pandas as pd

    rows = []
    for run in record["grid"]:
        done = record["runs"].get(run["id"])
        if done is not None:
            row = done["rows"][0]
            rows.append({**run["factors"], "status": row.get("status"), "peak_mib": row["metrics"].get("peak_mib"),
                         "latency_ms": row["metrics"].get("latency_ms"), "reason": row.get("reason")})
    return pd.DataFrame(rows).astype({"peak_mib": float, "latency_ms": float})


def slopes(record: dict):
    """Per model: the log-log slope of ``peak_mib`` and ``latency_ms`` against the length over its
    measured points (:func:`~alignlib.experiments.stats.loglog_slope`; 1 linear, 2 quadratic)."""
    import pandas as pd

    ok = points(record)
    ok = ok[ok.status == "ok"]
    return pd.DataFrame([{"model": model, **{metric: stats.loglog_slope(part.length, part[metric]) if len(part) > 1
                                             else float("nan") for metric in ("peak_mib", "latency_ms")}}
                         for model, part in ok.groupby("model", sort=False)]).set_index("model")


def failed_bytes(reason: str) -> float:
    """The allocation an out-of-memory message names (``... tried to allocate N bytes``), NaN if none."""
    found = re.search(r"allocate (\d+) bytes", reason or "")
    return float(found.group(1)) if found else math.nan


def limits(record: dict):
    """Per model: the longest measured length with its ``peak_mib`` and ``latency_ms``, the first
    failure (``failure``, ``failed_at``), the allocation that failed (``failed_gib``) and, for a model
    that materialises L × L matrices, the size of those matrices at that length (``square_gib``, float32)."""
    import pandas as pd

    table = points(record)
    rows = []
    for model, part in table.groupby("model", sort=False):
        ok, failed = part[part.status == "ok"], part[part.status.isin(["oom", "timeout"])]
        longest = ok.loc[ok.length.idxmax()] if len(ok) else None
        first = failed.loc[failed.length.idxmin()] if len(failed) else None
        count = square_matrices(model)
        rows.append({"model": model, "longest": None if longest is None else int(longest.length),
                     "peak_mib": math.nan if longest is None else longest.peak_mib,
                     "latency_ms": math.nan if longest is None else longest.latency_ms,
                     "failure": None if first is None else first.status,
                     "failed_at": None if first is None else int(first.length),
                     "failed_gib": math.nan if first is None else failed_bytes(first.reason) / 2**30,
                     "square_gib": math.nan if first is None or not count else count * 4 * first.length ** 2 / 2**30})
    return pd.DataFrame(rows).set_index("model")


def ratios(record: dict):
    """At the longest length every model ran: each model's ``peak_mib`` and ``latency_ms`` relative to AlignMamba-2's."""
    table = points(record)
    ok = table[table.status == "ok"]
    common = max(set.intersection(*(set(part.length) for _, part in ok.groupby("model"))))
    at = ok[ok.length == common].set_index("model")[["peak_mib", "latency_ms"]]
    return (at / at.loc["alignmamba2"]).assign(length=common)


def summary(record: dict) -> str:
    """The answer: the paper's curves, ours (slopes, the longest length each model ran, where and why
    the explicit-interaction models failed, the ratios at the longest common length) and what carries over."""
    limit, slope, ratio = limits(record), slopes(record), ratios(record)
    setting = record["grid"][0]["efficiency"]
    text = [f"**Memory and latency** (the paper, {PAPER_EFFICIENCY}). Here on {record['device']} (d_model "
            f"{setting['d_model']}, {setting['n_layers']} layers, each point capped at {setting['memory_limit_mib'] / 1024:g} GiB "
            f"and {setting['time_limit_s']} s; {sum(run['seconds'] for run in record['runs'].values()) / 60:.1f} min for "
            f"{len(record['runs'])} points: " + ", ".join(f"{n} {status}" for status, n in
                                                          points(record).status.value_counts().items()) + "):"]
    for model, row in limit.iterrows():
        sentence = (f"{model} runs up to {row.longest} tokens per modality ({row.peak_mib / 1024:.2f} GiB, "
                    f"{row.latency_ms / 1e3:.1f} s a pass; log-log slopes {slope.loc[model, 'peak_mib']:.2f} for memory, "
                    f"{slope.loc[model, 'latency_ms']:.2f} for time)")
        if row.failure == "oom" and math.isfinite(row.square_gib):
            sentence += (f" and runs out of memory at {row.failed_at:.0f}: the allocation that failed, "
                         f"{row.failed_gib:.1f} GiB, is {SQUARE_MATRICES[model]} at that length "
                         f"({row.square_gib:.1f} GiB in float32)")
        elif isinstance(row.failure, str):
            sentence += f" and fails ({row.failure}) at {row.failed_at:.0f}"
        text.append(sentence + ".")
    text.append(f"At {int(ratio.length.iloc[0])} tokens, the longest all ran, memory relative to AlignMamba-2: "
                + ", ".join(f"{m} {r.peak_mib:.1f}x" for m, r in ratio.iterrows() if m != "alignmamba2")
                + "; time: " + ", ".join(f"{m} {r.latency_ms:.1f}x" for m, r in ratio.iterrows() if m != "alignmamba2")
                + ".")
    text.append("The failures come from materialising L × L matrices: attention computed without storing its weights "
                "(memory-efficient or flash attention) and a plan computed and applied block by block would not fail there, "
                "so the out-of-memory points measure these implementations, not what attention or OT must cost. The "
                "paper's absolute figures are GPU memory and time, not comparable with a capped CPU.")
    return " ".join(text)


def show(record: dict, title: str):
    """Log-log memory and latency against length with fitted slopes, and each point's status;
    returns the points table and the slopes."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    from alignlib.experiments import plots

    results = tidy(record)
    print(f"{title}: {record['command']} (device {record['device']})")
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
    for ax, metric in zip(axes, ("peak_mib", "latency_ms")):
        plots.scaling(ax, results, metric)
        ax.legend(fontsize=8)
    fig.suptitle(f"{title}: fusion module, batch 1 (x: out of memory or time)")
    plt.tight_layout()
    plt.show()
    table = points(record)
    display(table.pivot(index="model", columns="length", values="status"))
    display(slopes(record))
    return table, slopes(record)


SWEEP = Sweep(
    name="efficiency",
    reproduces="AlignMamba-2 Fig. 4/5; AlignMamba-1 Fig. 3/4 (memory, latency vs length)",
    profiles={  # tokens per modality; each point a subprocess with its own time and memory limit
        "default": {"lengths": (256, 512, 1024), "d_model": 16, "n_layers": 2, "repeats": 3,
                    "time_limit_s": 20, "memory_limit_mib": 2048},
        "full": {"lengths": (1024, 2048, 4096, 8192, 16384, 32768, 65536, 100000), "d_model": 64, "n_layers": 2,
                 "repeats": 10, "time_limit_s": 120, "memory_limit_mib": 8192}},
    grid=grid, execute=execute, estimate=estimate, upper_bound=True, skip=skip, show=show)
