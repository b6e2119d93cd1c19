"""Selective scan forward + backward on CPU: B=4, D=128, N=16, L in {256, 1024, 4096}.

Peers in one run: the sequential loop (alignlib's reference), alignlib's chunked scan, alignlib's
fused C++ scan, mamba.py's parallel scan (``mambapy.pscan``, a bench dependency: pip install -e
.[bench]) and mamba-ssm's ``selective_scan_ref`` where it imports (its backward grows
quadratically with L, so only at the shorter lengths). Each case runs in a fresh subprocess on
``--threads`` threads (2 by default) so its peak memory (max RSS above the inputs) is its own.
Ratios (of wall times) are against the chunked scan and mamba.py's; CPU time of all threads is
recorded beside each wall time, a check where other work shares the machine.
Run: python benchmarks/bench_scan.py
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from alignlib.common import threads
from common import median_seconds, write_result

BATCH, CHANNELS, STATES = 4, 128, 16
LENGTHS = (256, 1024, 4096)
CASES = ("loop", "chunked", "fused", "mambapy", "mamba_ssm_ref")


def make_inputs(length: int, layout: str):
    g = torch.Generator().manual_seed(0)
    u = torch.randn(BATCH, CHANNELS, length, generator=g)
    delta = F.softplus(torch.randn(BATCH, CHANNELS, length, generator=g) - 2.0)
    A = -torch.arange(1, STATES + 1, dtype=torch.float32).repeat(CHANNELS, 1)
    B = torch.randn(BATCH, STATES, length, generator=g)
    C = torch.randn(BATCH, STATES, length, generator=g)
    if layout == "mambapy":  # (B, L, ED) and (B, L, N)
        u, delta, B, C = (t.transpose(1, 2).contiguous() for t in (u, delta, B, C))
    return u, delta, A, B, C


def scan_function(case: str):
    if case == "loop":
        from alignlib.ssm.selective_scan import selective_scan_reference
        return selective_scan_reference
    if case == "chunked":
        from alignlib.ssm.selective_scan import selective_scan_chunked
        return selective_scan_chunked
    if case == "fused":
        from alignlib.ssm import kernels
        from alignlib.ssm.selective_scan import selective_scan_fused
        if kernels.load("selective_scan") is None:
            raise RuntimeError("the C++ kernel did not build")
        return selective_scan_fused
    if case == "mamba_ssm_ref":
        from mamba_ssm.ops.selective_scan_interface import selective_scan_ref
        return selective_scan_ref
    from mambapy.pscan import pscan

    def mambapy_scan(x, delta, A, B, C):  # mamba.py's MambaBlock.selective_scan, without D
        delta_a = torch.exp(delta.unsqueeze(-1) * A)
        bx = delta.unsqueeze(-1) * B.unsqueeze(2) * x.unsqueeze(-1)
        return (pscan(delta_a, bx) @ C.unsqueeze(-1)).squeeze(3)
    return mambapy_scan


def measure(case: str, length: int) -> dict:
    """Run in a subprocess: time forward + backward and the peak memory above the inputs."""
    try:
        scan = scan_function(case)
    except Exception as error:
        return {"case": case, "length": length, "skipped": f"{type(error).__name__}: {error}"}
    inputs = make_inputs(length, "mambapy" if case == "mambapy" else "mamba_ssm")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def run():
        leaves = [t.clone().requires_grad_() if i != 2 else t for i, t in enumerate(inputs)]
        scan(*leaves).sum().backward()

    run()
    peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    repeats = 3 if length <= 1024 or case != "loop" else 1
    cpu_start = time.process_time()
    seconds = median_seconds(run, repeats=repeats)
    # CPU time of all threads per run (warm-up included): a check on wall times taken on a busy machine
    cpu_seconds = (time.process_time() - cpu_start) / (repeats + 1)
    return {"case": case, "length": length, "seconds": seconds, "cpu_seconds": cpu_seconds, "peak_mib": peak_mib}


def main() -> None:
    threads.configure()
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=CASES)
    parser.add_argument("--length", type=int)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.case:  # the child process
        print(json.dumps(measure(args.case, args.length)))
        return
    rows = []
    for length in LENGTHS:
        for case in CASES:
            if case == "mamba_ssm_ref" and length > 1024:
                rows.append({"case": case, "length": length, "skipped": "backward is O(L^2): shorter lengths only"})
                continue
            child = subprocess.run([sys.executable, str(Path(__file__)), "--case", case, "--length", str(length),
                                    "--threads", str(args.threads)], capture_output=True, text=True, check=True)
            rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(f"selective scan forward+backward, CPU, B={BATCH}, D={CHANNELS}, N={STATES}, threads={args.threads}")
    print(f"{'L':>6} {'case':<14} {'seconds':>9} {'cpu s':>8} {'ns/elem':>8} {'peak MiB':>9} {'vs chunked':>11} "
          f"{'vs mambapy':>11}")
    for row in rows:
        if "skipped" in row:
            print(f"{row['length']:>6} {row['case']:<14} skipped: {row['skipped']}")
            continue
        row["ns_per_state_element"] = row["seconds"] / (BATCH * CHANNELS * STATES * row["length"]) * 1e9
        for peer_case in ("chunked", "mambapy"):
            peer = next(r for r in rows if r["case"] == peer_case and r["length"] == row["length"])
            row[f"speedup_vs_{peer_case}"] = peer["seconds"] / row["seconds"]
            row[f"memory_vs_{peer_case}"] = row["peak_mib"] / peer["peak_mib"] if peer["peak_mib"] > 0 else None
        print(f"{row['length']:>6} {row['case']:<14} {row['seconds']:>9.3f} {row['cpu_seconds']:>8.3f} "
              f"{row['ns_per_state_element']:>8.2f} "
              f"{row['peak_mib']:>9.1f} {row['speedup_vs_chunked']:>10.2f}x {row['speedup_vs_mambapy']:>10.2f}x")
    path = write_result("scan_cpu", {"batch": BATCH, "channels": CHANNELS, "states": STATES, "threads": args.threads,
                                     "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
