"""The results table: every model trained on MOSI-sized synthetic data with three seeds; test
Acc-2 (Non0), F1 (Non0), MAE and Corr as mean and spread (sample standard deviation).
JSON to benchmarks/results/model_table.json (rewritten after every run, so an interrupted table
keeps its finished runs; ``--resume`` skips them), a markdown table to stdout.
Run: python benchmarks/model_table.py [--epochs 3] [--seeds 0 1 2] [--models ...] [--device cuda] [--resume]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from alignlib.data import synthetic
from alignlib.models import MODELS
from alignlib.train import TrainConfig, train
from common import RESULTS, write_result

PATH = Path(__file__).resolve().parent.parent / "build" / "synthetic_mosi.pkl"
COLUMNS = ("Non0_acc_2", "Non0_F1_score", "MAE", "Corr")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--models", nargs="*", default=sorted(MODELS))
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resume", action="store_true", help="keep the finished runs of an earlier, same-settings table")
    args = parser.parse_args()
    if not PATH.exists():
        synthetic.write(PATH, *synthetic.generate("mosi", seed=0))
    settings = {"epochs": args.epochs, "d_model": args.d_model, "device": args.device}
    runs = previous_runs(settings) if args.resume else []
    for name in args.models:
        for seed in args.seeds:
            if any(r["model"] == name and r["seed"] == seed for r in runs):
                continue
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                config = TrainConfig(model=name, data=str(PATH), out=out, epochs=args.epochs, batch_size=32, seed=seed,
                                     device=args.device, model_options={"d_model": args.d_model, "n_layers": 2})
                metrics = train(config, progress=False)
            runs.append({"model": name, "seed": seed, "seconds": time.perf_counter() - start, **metrics})
            print(f"{name} seed {seed}: " + ", ".join(f"{c} {metrics[c]:.4f}" for c in COLUMNS), flush=True)
            write_result("model_table", {**settings, "seeds": args.seeds, "runs": runs})
    print("\n| model | " + " | ".join(COLUMNS) + " |\n|---|" + "---|" * len(COLUMNS))
    for name in args.models:
        cells = []
        for column in COLUMNS:
            values = [r[column] for r in runs if r["model"] == name]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {spread:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


def previous_runs(settings: dict) -> list[dict]:
    """The runs of ``model_table.json`` if it was made with the same settings, else none."""
    path = RESULTS / "model_table.json"
    if not path.exists():
        return []
    previous = json.loads(path.read_text())
    if any(previous.get(key) != value for key, value in settings.items()):
        print(f"{path} was made with other settings; starting afresh", flush=True)
        return []
    return previous["runs"]


if __name__ == "__main__":
    main()
