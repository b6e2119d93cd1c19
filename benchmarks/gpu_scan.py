"""Selective scan forward + backward on a CUDA GPU: alignlib's chunked scan, mamba.py's parallel
scan and mamba-ssm's CUDA kernel (where it imports), B=4, D=128, N=16, L in {256, 1024, 4096, 16384}.
Times with CUDA events after warm-up; peak memory from torch.cuda.max_memory_allocated.
Run on a GPU machine: python benchmarks/gpu_scan.py
"""
from __future__ import annotations

import sys

import torch

from alignlib.common import threads
from bench_scan import BATCH, CHANNELS, STATES, make_inputs, scan_function
from common import write_result

LENGTHS = (256, 1024, 4096, 16384)


def time_case(scan, inputs, repeats: int = 10) -> tuple[float, float]:
    def run():
        leaves = [t.clone().requires_grad_() if i != 2 else t for i, t in enumerate(inputs)]
        scan(*leaves).sum().backward()

    run()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        run()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1000 / repeats, torch.cuda.max_memory_allocated() / 2**20


def main() -> None:
    threads.configure()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: run this script on a GPU machine")
    cases = {"chunked": scan_function("chunked"), "mambapy": scan_function("mambapy")}
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
        cases["mamba_ssm_cuda"] = selective_scan_fn
    except Exception as error:
        print(f"mamba-ssm's kernel does not import ({type(error).__name__}: {error}); skipped")
    rows = []
    for length in LENGTHS:
        for name, scan in cases.items():
            inputs = [t.cuda() for t in make_inputs(length, "mambapy" if name == "mambapy" else "mamba_ssm")]
            seconds, peak = time_case(scan, inputs)
            rows.append({"case": name, "length": length, "seconds": seconds, "peak_mib": peak})
            print(f"{length:>6} {name:<15} {seconds * 1e3:9.2f} ms {peak:9.1f} MiB")
    write_result("scan_gpu", {"device": torch.cuda.get_device_name(), "batch": BATCH, "channels": CHANNELS,
                              "states": STATES, "rows": rows})


if __name__ == "__main__":
    main()
