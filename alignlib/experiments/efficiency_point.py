"""One point of the efficiency sweep, measured in its own process: ``python -m
alignlib.experiments.efficiency_point POINT_JSON`` prints its result row (JSON). The fusion module
alone (:func:`fusion_module`) on one random clip of ``length`` tokens per modality; its peak memory
and median latency (:func:`measure_in_process`). Only torch and the models are imported here, so a
point's process starts quickly; :mod:`~alignlib.experiments.efficiency` is the sweep and its view.
"""
from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from dataclasses import dataclass

import torch
from torch import nn

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


if __name__ == "__main__":  # one point, in its own process (measure_point starts it)
    print(json.dumps(measure_in_process(Point(**json.loads(sys.argv[1])))))
