"""The GPU checks in one command (meant to take under 8 minutes on one GPU):

1. the selective scans on CUDA (the chunked scan, and mamba-ssm's kernel where it imports) against
   the sequential loop: outputs and gradients -> ``results/gpu_scans.json``;
2. one converged-length training run of AlignMamba-1 with the learned plan (the ``learned`` sweep's
   full-profile run ``learned-plan-seed0``: MOSI-length clips, early stopping, at most 2400 steps)
   and one AlignMamba-2 epoch with bf16 autocast on MOSI-sized data -> ``results/gpu_training.json``;
3. the efficiency curve to 100k tokens (the ``efficiency`` sweep's full profile on CUDA)
   -> ``results/gpu_efficiency.json``.

On a machine without CUDA it prints one line saying so and exits 0.
Run: python benchmarks/gpu_check.py [--out build/gpu_check]   (or: make gpu-check)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from common import write_result

SCAN_SIZES = {"batch": 2, "channels": 32, "states": 16}
SCAN_LENGTHS = (64, 1024)
SCAN_TOLERANCE = 1e-3  # float32 sums over up to 1024 steps (tests/test_selective_scan.py uses the same)


def scan_inputs(length: int, seed: int = 0) -> dict:
    """Random scan inputs on CUDA, mamba-ssm's layout: ``u, delta, z (B, D, L)``, ``B, C (B, N, L)``."""
    g = torch.Generator().manual_seed(seed)
    b, d, n = SCAN_SIZES["batch"], SCAN_SIZES["channels"], SCAN_SIZES["states"]

    def r(*shape):
        return torch.randn(*shape, generator=g)

    return {k: v.cuda() for k, v in dict(u=r(b, d, length), delta=r(b, d, length) - 1.0, A=-torch.exp(r(d, n)),
                                         B=r(b, n, length), C=r(b, n, length), D=r(d), z=r(b, d, length),
                                         delta_bias=r(d)).items()}


def outputs_and_gradients(scan, args: dict) -> list[torch.Tensor]:
    leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
    y = scan(**leaves, delta_softplus=True)
    y.backward(torch.ones_like(y))
    return [y.detach()] + [leaves[k].grad for k in sorted(leaves)]


def check_scans() -> dict:
    """Each CUDA scan's largest relative error against the loop, output and every gradient."""
    from alignlib.ssm.selective_scan import mamba_ssm_kernel, selective_scan, selective_scan_reference

    scans = {"chunked": lambda **a: selective_scan(**a, backend="chunked")}
    if mamba_ssm_kernel() is not None:
        scans["mamba_ssm_cuda"] = lambda **a: selective_scan(**a, backend="cuda")
    rows = []
    for length in SCAN_LENGTHS:
        args = scan_inputs(length)
        expected = outputs_and_gradients(selective_scan_reference, args)
        for name, scan in scans.items():
            got = outputs_and_gradients(scan, args)
            error = max(((g - e).abs().max() / e.abs().max().clamp_min(1e-12)).item() for g, e in zip(got, expected))
            rows.append({"scan": name, "length": length, "max_relative_error": error, "ok": error <= SCAN_TOLERANCE})
            print(f"scan {name:<15} L={length:<5} max relative error {error:.2e} {'ok' if rows[-1]['ok'] else 'FAILED'}")
    return {"sizes": SCAN_SIZES, "tolerance": SCAN_TOLERANCE, "mamba_ssm": "mamba_ssm_cuda" in scans, "rows": rows}


def learned_run(out: Path) -> dict:
    """The ``learned`` sweep's full-profile run of the learned plan, seed 0, trained on CUDA."""
    from alignlib.experiments import learned, training
    from alignlib.train import train

    run = next(r for r in learned.SWEEP.runs("full") if r["id"] == "learned-plan-seed0")
    config = training.train_config({**run, "sweep": "gpu_check"}, out, "cuda")
    start = time.perf_counter()
    tested = train(config, progress=False)
    seconds = time.perf_counter() - start
    found = training.correspondence_metrics(config)
    print(f"AlignMamba-1, learned plan: {tested['epochs_run']} epochs, {tested['optimizer_steps']} steps, "
          f"test MAE {tested['MAE']:.3f}, {seconds:.0f} s")
    return {"run": run["id"], "config": training.recorded(config, out), "seconds": seconds, "test": tested,
            "correspondence": found}


def bf16_epoch(out: Path) -> dict:
    """One AlignMamba-2 epoch under bf16 autocast on MOSI-sized synthetic data (d_model 64, batch 32)."""
    from alignlib.data import synthetic
    from alignlib.train import TrainConfig, train

    data = out / "data" / "synthetic_mosi_seed0.pkl"
    if not data.exists():
        synthetic.write(data, *synthetic.generate("mosi", seed=0))
    config = TrainConfig(model="alignmamba2", data=str(data), out=str(out / "runs" / "alignmamba2_bf16"), epochs=1,
                         batch_size=32, device="cuda", bf16=True, model_options={"d_model": 64, "n_layers": 2})
    start = time.perf_counter()
    tested = train(config, progress=False)
    seconds = time.perf_counter() - start
    losses = [json.loads(line) for line in (Path(config.out) / "metrics.jsonl").read_text().splitlines()]
    print(f"AlignMamba-2, one bf16 epoch: {seconds:.1f} s, train loss {losses[-1]['train_loss']:.3f}")
    return {"seconds": seconds, "train_loss": losses[-1]["train_loss"], "test": tested}


def efficiency_curve(out: Path) -> dict:
    """The efficiency sweep's full profile (to 100k tokens per modality) on CUDA."""
    from alignlib.experiments import efficiency

    folder = out / "efficiency"
    record = efficiency.SWEEP.run("full", folder, resume=efficiency.SWEEP.results_path(folder).exists(),
                                  device="cuda", progress=False, command="python benchmarks/gpu_check.py")
    statuses = {run_id: run["rows"][0].get("status") for run_id, run in record["runs"].items()}
    print(f"efficiency: {sum(s == 'ok' for s in statuses.values())}/{len(statuses)} points measured")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/gpu_check"), help="runs and data (default build/gpu_check)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine; the GPU checks need one (nothing was run)")
        return 0
    device = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda}
    start = time.perf_counter()
    scans = check_scans()
    write_result("gpu_scans", {**device, **scans})
    write_result("gpu_training", {**device, "alignmamba1_learned": learned_run(args.out),
                                  "alignmamba2_bf16_epoch": bf16_epoch(args.out)})
    write_result("gpu_efficiency", {**device, **efficiency_curve(args.out)})
    minutes = (time.perf_counter() - start) / 60
    print(f"gpu_check: {minutes:.1f} min; results in benchmarks/results/gpu_*.json")
    return 0 if all(row["ok"] for row in scans["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
