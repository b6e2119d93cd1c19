"""The efficiency sweep: memory and latency of the fusion module alone against sequence length,
batch 1, inference (AlignMamba-2 Fig. 4/5, AlignMamba-1 Fig. 3/4); the harness that measures one
:class:`Point`, and notebook 08's log-log plots.

The fusion module is the registry's model with its input projections (and AlignMamba-2's unimodal
Mamba layers, the paper's "unimodal encoders") replaced by pass-throughs: AlignMamba-1's explicit
OT plans, transport and Mamba stack; AlignMamba-2's Modality-Aware Mamba blocks on ``[H_A; H_V; H_L]``;
the MulT-style cross-modal and self-attention blocks. Each modality has ``length`` tokens of width
``d_model``. Every point runs in its own process (``python -m alignlib.experiments.efficiency
POINT_JSON``) so its peak memory is its own: on CPU the rise of the peak resident set over the
first forward pass (``VmHWM``, reset just before it), with the address space capped at
``memory_limit_mib`` above what the process already holds; on CUDA ``torch.cuda.max_memory_allocated``
above the allocated baseline. Running out of memory is a result (``status: "oom"``), as is a point
over ``time_limit_s`` (``"timeout"``); a model's longer points are then skipped.
"""
from __future__ import annotations

import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from alignlib.experiments.sweep import Sweep, tidy

MODELS = ("alignmamba1", "alignmamba2", "mult")
STARTUP_ALLOWANCE_S = 60  # imports, model build and warm-up before the timed passes
POINT_OVERHEAD_S = 5.0  # a point's process start (imports), for the estimate
OOM_MESSAGES = ("can't allocate memory", "not enough memory", "out of memory", "std::bad_alloc")


@dataclass(frozen=True)
class Point:
    """One measurement: ``model``'s fusion module on ``length`` tokens per modality of width
    ``d_model`` (``n_layers`` layers); the median of up to ``repeats`` passes within
    ``time_limit_s``, memory capped ``memory_limit_mib`` above the process's own."""

    model: str
    length: int
    d_model: int
    n_layers: int
    repeats: int
    time_limit_s: float
    memory_limit_mib: float
    device: str = "cpu"


class PassThrough(nn.Module):
    """Stands in for a unimodal Mamba layer ``(x, mask) -> (x, cache)``: returns ``(x, None)``."""

    def forward(self, x, mask=None):
        return x, None


def fusion_module(name: str, d_model: int, n_layers: int) -> nn.Module:
    """The model ``name`` for ``d_model``-wide inputs with only its fusion part doing work (eval mode)."""
    from alignlib.data.mmsa import MODALITIES
    from alignlib.models.sentiment import ModelConfig, build_model

    model = build_model(name, {m: d_model for m in MODALITIES}, ModelConfig(d_model=d_model, n_layers=n_layers, dropout=0.0))
    for m in MODALITIES:
        model.inputs[m] = nn.Identity()
        if hasattr(model, "unimodal"):
            model.unimodal[m] = PassThrough()
    return model.eval()


def random_batch(length: int, d_model: int, device: str):
    """One clip, ``length`` real tokens per modality: features ``(1, length, d_model)``."""
    from alignlib.data.mmsa import MODALITIES, Batch

    g = torch.Generator().manual_seed(0)
    features = {m: torch.randn(1, length, d_model, generator=g).to(device) for m in MODALITIES}
    masks = {m: torch.ones(1, length, dtype=torch.bool, device=device) for m in MODALITIES}
    return Batch(features, masks, torch.zeros(1, device=device), torch.ones(1, len(MODALITIES), dtype=torch.bool, device=device),
                 ["point"])


def _address_space_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def _resident_bytes(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) from ``/proc/self/status``."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def _reset_peak_resident() -> int:
    """Reset the peak resident set to the current one (Linux ``clear_refs`` 5); returns it."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return _resident_bytes("VmRSS")


def measure_in_process(point: Point) -> dict:
    """The child's work: peak memory over the first pass, then the median latency of up to
    ``point.repeats`` more passes within ``point.time_limit_s``. Returns a result row."""
    torch.manual_seed(0)
    device, on_cuda = point.device, point.device.startswith("cuda")
    module = fusion_module(point.model, point.d_model, point.n_layers).to(device)
    sync = torch.cuda.synchronize if on_cuda else (lambda: None)
    with torch.inference_mode():
        module(random_batch(64, point.d_model, device))  # warm-up: lazy initialisation, thread pools
        batch = random_batch(point.length, point.d_model, device)
        sync()
        if on_cuda:
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            limit = _address_space_bytes() + int(point.memory_limit_mib * 2**20)
            resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
            base = _reset_peak_resident()
        try:
            start = time.perf_counter()
            module(batch)
            sync()
            first = time.perf_counter() - start
            peak = (torch.cuda.max_memory_allocated() if on_cuda else _resident_bytes("VmHWM")) - base
            times, spent = [], first
            while len(times) < point.repeats and spent + (times[-1] if times else first) <= point.time_limit_s:
                start = time.perf_counter()
                module(batch)
                sync()
                times.append(time.perf_counter() - start)
                spent += times[-1]
        except (MemoryError, RuntimeError) as error:
            if isinstance(error, MemoryError) or any(s in str(error).lower() for s in OOM_MESSAGES):
                return {"status": "oom", "reason": str(error).splitlines()[0][:200], "metrics": {}}
            raise
    if first > point.time_limit_s:
        return {"status": "timeout", "reason": f"one pass took {first:.1f} s > {point.time_limit_s} s", "metrics": {}}
    return {"status": "ok", "repeats": len(times),
            "metrics": {"latency_ms": 1e3 * statistics.median(times or [first]), "first_pass_ms": 1e3 * first,
                        "peak_mib": peak / 2**20}}


def measure_point(point: Point) -> dict:
    """Run one point in a fresh process; a process killed by the kernel (SIGKILL) counts as out of memory."""
    command = [sys.executable, "-m", "alignlib.experiments.efficiency", json.dumps(dataclasses.asdict(point))]
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


def show(record: dict, title: str):
    """Log-log memory and latency against length with fitted slopes, and each point's status;
    returns the tidy table and the slopes ``{metric: {model: slope}}``."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    from alignlib.experiments import plots

    results = tidy(record)
    print(f"{title}: {record['command']} (device {record['device']})")
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
    slopes = {metric: plots.scaling(ax, results, metric) for ax, metric in zip(axes, ("peak_mib", "latency_ms"))}
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(f"{title}: fusion module, batch 1 (x: out of memory or time)")
    plt.tight_layout()
    plt.show()
    display(results.drop_duplicates("run").pivot(index="model", columns="length", values="status"))
    return results, slopes


SWEEP = Sweep(
    name="efficiency",
    reproduces="AlignMamba-2 Fig. 4/5; AlignMamba-1 Fig. 3/4 (memory, latency vs length)",
    profiles={  # tokens per modality; each point a subprocess with its own time and memory limit
        "default": {"lengths": (256, 512, 1024), "d_model": 16, "n_layers": 2, "repeats": 3,
                    "time_limit_s": 20, "memory_limit_mib": 2048},
        "full": {"lengths": (1024, 2048, 4096, 8192, 16384, 32768, 65536, 100000), "d_model": 64, "n_layers": 2,
                 "repeats": 10, "time_limit_s": 120, "memory_limit_mib": 8192}},
    grid=grid, execute=execute, estimate=estimate, upper_bound=True, skip=skip, show=show)


if __name__ == "__main__":  # one point, in its own process (measure_point starts it)
    print(json.dumps(measure_in_process(Point(**json.loads(sys.argv[1])))))
