"""One training epoch of every model on MOSI-sized synthetic data (1284 training clips; text 50,
audio 375, video 500 steps) in one run: seconds per epoch and the ratio to the concatenation
baseline; JSON. The same script runs on a GPU when one is present (``--device cuda``).

Each epoch's wall time and CPU time (every thread of the process; on a machine shared with other work
the CPU time is the steadier measure). ``--compare-with REV`` times the library of git revision
``REV`` beside this tree's, side by side in one run: each epoch in a fresh process, the two alternating
model by model, so a change in the machine's load touches both; the JSON then holds both, and each
model's speed-up (``1 - time / REV's time``).
``--model-options`` (JSON) goes to every model, and ``--result`` names the JSON: the learned sweep's
runs, say, are ``--models alignmamba1 --model-options '{"plan": "learned"}' --result training_cpu_learned``.
Run: python benchmarks/bench_training.py [--device cpu|cuda] [--d-model 64] [--models ...] [--compare-with REV]
     [--model-options JSON] [--result NAME]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
PATH = ROOT / "build" / "synthetic_mosi.pkl"


def epoch_seconds(name: str, device: str, d_model: int, options: dict) -> tuple[float, float]:
    """Wall and CPU seconds (every thread of this process) of one epoch of ``name``, with its
    validation and test passes, on :data:`PATH`."""
    from alignlib.train import TrainConfig, train

    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(model=name, data=str(PATH), out=out, epochs=1, batch_size=32, device=device,
                             model_options={"d_model": d_model, "n_layers": 2, **options})
        start, cpu = time.perf_counter(), time.process_time()
        train(config, progress=False)
        return time.perf_counter() - start, time.process_time() - cpu


def in_process(name: str, args, library: Path) -> tuple[float, float]:
    """:func:`epoch_seconds` in a fresh process that imports alignlib from ``library``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(library), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, __file__, "--one", name, "--device", args.device, "--d-model", str(args.d_model),
               "--model-options", json.dumps(args.model_options)]
    child = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    wall, cpu = child.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> None:
    from alignlib.common import threads
    from alignlib.data import synthetic
    from alignlib.models.sentiment import MODELS
    from common import write_result

    threads.configure()
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--model-options", type=json.loads, default={}, help="JSON options for every model")
    parser.add_argument("--result", help="the JSON's name under results/ (default training_<device>)")
    parser.add_argument("--models", nargs="*", default=sorted(MODELS))
    parser.add_argument("--compare-with", metavar="REV", help="also time git revision REV's library, side by side")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child: print one model's epoch seconds
    args = parser.parse_args()
    if args.one:
        print(*epoch_seconds(args.one, args.device, args.d_model, args.model_options))
        return
    if not PATH.exists():
        synthetic.write(PATH, *synthetic.generate("mosi", seed=0))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        if args.compare_with:
            archive = subprocess.run(["git", "archive", args.compare_with, "alignlib"], cwd=ROOT, capture_output=True,
                                     check=True).stdout
            subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        for name in args.models:
            row = {"model": name}
            if args.compare_with:
                row["reference_seconds"], row["reference_cpu_seconds"] = in_process(name, args, Path(folder))
                row["seconds"], row["cpu_seconds"] = in_process(name, args, ROOT)
                row["speedup"] = 1 - row["seconds"] / row["reference_seconds"]
                row["cpu_speedup"] = 1 - row["cpu_seconds"] / row["reference_cpu_seconds"]
            else:
                row["seconds"], row["cpu_seconds"] = epoch_seconds(name, args.device, args.d_model, args.model_options)
            rows.append(row)
            print(f"{name:>12}: {row['seconds']:.1f} s, {row['cpu_seconds']:.1f} CPU s (one epoch + validation + test)"
                  + (f"; {args.compare_with}: {row['reference_seconds']:.1f} s, {row['reference_cpu_seconds']:.1f} CPU s"
                     if args.compare_with else ""), flush=True)
    base = next((r for r in rows if r["model"] == "concat"), None)
    for row in rows:
        for key in ("seconds", "cpu_seconds", "reference_seconds", "reference_cpu_seconds"):
            if base and key in row:
                row[key.replace("seconds", "ratio_to_concat")] = row[key] / base[key]
    print("ratios to concat (CPU time):", {r["model"]: round(r["cpu_ratio_to_concat"], 2) for r in rows if base})
    write_result(args.result or f"training_{args.device}",
                 {"device": args.device, "d_model": args.d_model, "model_options": args.model_options,
                  "reference": args.compare_with, "rows": rows})


if __name__ == "__main__":
    main()
