"""Where a training step's time goes, per model: ``torch.profiler`` over one epoch of ``STEPS`` steps
(batch 32) of ``alignlib.train`` on MOSI-shaped synthetic clips (text 50, audio 375, video 500 steps),
d_model 64, 2 layers, after one warm-up epoch. Per model: milliseconds a step and the operators with
the most self CPU time (ms a step, share of the step). JSON: ``results/profile_training.json``.
``--model-options`` (JSON) goes to every model and ``--result`` names the JSON, as in bench_training.py.
Run: python benchmarks/profile_training.py [--models concat alignmamba2 ...] [--top 15] [--model-options JSON]
     [--result NAME]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from alignlib.data import synthetic
from alignlib.models.sentiment import MODELS
from alignlib.train import TrainConfig, build_run, train_epoch
from common import write_result

STEPS = 8
CLIPS = 420  # the mosi preset's split shares give 8 training batches of 32 (256 clips)


def profile_model(name: str, data: Path, top: int, options: dict) -> dict:
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(model=name, data=str(data), out=out, epochs=2, batch_size=32, device="cpu",
                             model_options={"d_model": 64, "n_layers": 2, **options})
        run = build_run(config, torch.device("cpu"), 0, 1)
        train_epoch(run, 0, progress=False)  # warm-up: lazy initialisation, thread pools, allocator
        steps = run.steps
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            train_epoch(run, 1, progress=False)
        seconds = time.perf_counter() - start
        steps = run.steps - steps
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total_us = sum(e.self_cpu_time_total for e in events)
    ops = [{"op": e.key, "ms_per_step": e.self_cpu_time_total / 1e3 / steps, "share": e.self_cpu_time_total / total_us,
            "calls_per_step": e.count / steps} for e in events[:top]]
    print(f"{name:>12}: {1e3 * seconds / steps:7.1f} ms a step (profiled); top: "
          + ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in ops[:5]), flush=True)
    return {"model": name, "steps": steps, "ms_per_step": 1e3 * seconds / steps, "top_ops": ops}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="*", default=sorted(MODELS))
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--model-options", type=json.loads, default={}, help="JSON options for every model")
    parser.add_argument("--result", default="profile_training", help="the JSON's name under results/")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "synthetic_mosi_profile.pkl"
        synthetic.write(data, *synthetic.generate("mosi", seed=0, n_clips=CLIPS))
        rows = [profile_model(name, data, args.top, args.model_options) for name in args.models]
    write_result(args.result, {"d_model": 64, "n_layers": 2, "batch_size": 32, "steps": STEPS,
                               "model_options": args.model_options, "rows": rows})


if __name__ == "__main__":
    main()
