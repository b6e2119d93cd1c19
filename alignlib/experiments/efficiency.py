"""Memory and latency of the fusion module alone against sequence length, batch 1, inference
(AlignMamba-2 Fig. 4/5, AlignMamba-1 Fig. 3/4).

The fusion module is the registry's model with its input projections (and AlignMamba-2's unimodal
Mamba layers, the paper's "unimodal encoders") replaced by pass-throughs: AlignMamba-1's explicit
OT plans, transport and Mamba stack; AlignMamba-2's Modality-Aware Mamba blocks on ``[H_A; H_V; H_L]``;
the MulT-style cross-modal and self-attention blocks. Each modality has ``length`` tokens of width
``d_model``. Every point runs in its own process (``python -m alignlib.experiments.efficiency``)
so its peak memory is its own: on CPU the rise of the peak resident set over the first forward
pass (``VmHWM``, reset just before it), with the address space capped at ``memory_limit_mib`` above what the process
already holds; on CUDA ``torch.cuda.max_memory_allocated`` above the allocated baseline. Running
out of memory is a result (``status: "oom"``), as is a point over ``time_limit_s`` (``"timeout"``).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

STARTUP_ALLOWANCE_S = 60  # imports, model build and warm-up before the timed passes
OOM_MESSAGES = ("can't allocate memory", "not enough memory", "out of memory", "std::bad_alloc")


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


def measure_in_process(model: str, length: int, d_model: int, n_layers: int, repeats: int, time_limit_s: float,
                       memory_limit_mib: float, device: str = "cpu") -> dict:
    """The child's work: peak memory over the first pass, then the median latency of up to
    ``repeats`` more passes within ``time_limit_s``. Returns a result row."""
    torch.manual_seed(0)
    module = fusion_module(model, d_model, n_layers).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        module(random_batch(64, d_model, device))  # warm-up: lazy initialisation, thread pools
        batch = random_batch(length, d_model, device)
        sync()
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            limit = _address_space_bytes() + int(memory_limit_mib * 2**20)
            resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
            base = _reset_peak_resident()
        try:
            start = time.perf_counter()
            module(batch)
            sync()
            first = time.perf_counter() - start
            peak = (torch.cuda.max_memory_allocated() if device.startswith("cuda")
                    else _resident_bytes("VmHWM")) - base
            times, spent = [], first
            while len(times) < repeats and spent + (times[-1] if times else first) <= time_limit_s:
                start = time.perf_counter()
                module(batch)
                sync()
                times.append(time.perf_counter() - start)
                spent += times[-1]
        except (MemoryError, RuntimeError) as error:
            if isinstance(error, MemoryError) or any(s in str(error).lower() for s in OOM_MESSAGES):
                return {"status": "oom", "reason": str(error).splitlines()[0][:200], "metrics": {}}
            raise
    if first > time_limit_s:
        return {"status": "timeout", "reason": f"one pass took {first:.1f} s > {time_limit_s} s", "metrics": {}}
    return {"status": "ok", "repeats": len(times),
            "metrics": {"latency_ms": 1e3 * statistics.median(times or [first]), "first_pass_ms": 1e3 * first,
                        "peak_mib": peak / 2**20}}


def measure_point(model: str, length: int, d_model: int, n_layers: int, repeats: int, time_limit_s: float,
                  memory_limit_mib: float, device: str = "cpu") -> dict:
    """Run one point in a fresh process; a process killed by the kernel (SIGKILL) counts as out of memory."""
    command = [sys.executable, "-m", "alignlib.experiments.efficiency", "--model", model, "--length", str(length),
               "--d-model", str(d_model), "--n-layers", str(n_layers), "--repeats", str(repeats),
               "--time-limit-s", str(time_limit_s), "--memory-limit-mib", str(memory_limit_mib), "--device", device]
    try:
        child = subprocess.run(command, capture_output=True, text=True, timeout=time_limit_s + STARTUP_ALLOWANCE_S)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "reason": f"no result within {time_limit_s} s (+{STARTUP_ALLOWANCE_S} s start-up)",
                "metrics": {}}
    if child.returncode == -9:
        return {"status": "oom", "reason": "killed by SIGKILL (the kernel's out-of-memory killer)", "metrics": {}}
    if child.returncode != 0:
        tail = (child.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"efficiency point {model} at length {length} failed (exit {child.returncode}): {tail}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alignlib.experiments.efficiency",
                                     description="one efficiency point (normally started by the efficiency sweep)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--length", type=int, required=True)
    parser.add_argument("--d-model", type=int, required=True)
    parser.add_argument("--n-layers", type=int, required=True)
    parser.add_argument("--repeats", type=int, required=True)
    parser.add_argument("--time-limit-s", type=float, required=True)
    parser.add_argument("--memory-limit-mib", type=float, required=True)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    print(json.dumps(measure_in_process(args.model, args.length, args.d_model, args.n_layers, args.repeats,
                                        args.time_limit_s, args.memory_limit_mib, args.device)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
