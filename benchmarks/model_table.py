"""A quick table at a fixed epoch budget (not trained to convergence: the converged model table,
with reference lines and controls, is the ``models`` sweep of ``alignlib.experiments``): every
model on MOSI-sized synthetic data with three seeds; test Acc-2 (Non0), F1 (Non0), MAE and Corr as
mean and spread (sample standard deviation).
JSON to benchmarks/results/NAME.json (rewritten after every run, so an interrupted table keeps its
finished runs; ``--resume`` skips them), a markdown table to stdout.

With ``--readouts mean modality_mean last`` every model is trained once per readout (the
comparison that chose each sequence model's default readout: ``--name readout_table``).
Run: python benchmarks/model_table.py [--epochs 3] [--seeds 0 1 2] [--models ...] [--readouts ...]
     [--name model_table] [--device cuda] [--resume]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from alignlib.common import threads
from alignlib.data import synthetic
from alignlib.models.sentiment import MODELS
from alignlib.train import TrainConfig, train
from common import RESULTS, write_result

PATH = Path(__file__).resolve().parent.parent / "build" / "synthetic_mosi.pkl"
COLUMNS = ("Non0_acc_2", "Non0_F1_score", "MAE", "Corr")


def main() -> None:
    threads.configure()
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--models", nargs="*", default=sorted(MODELS))
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--clips", type=int, help="a smaller MOSI-sized benchmark of this many clips (default: MOSI's 2199)")
    parser.add_argument("--readouts", nargs="*", default=["auto"], help="readout options to compare (default: each model's)")
    parser.add_argument("--name", default="model_table", help="results file name under benchmarks/results/")
    parser.add_argument("--reuse", metavar="NAME", help="take the runs of NAME.json (same settings) whose readout "
                        "is the model's default instead of training them again (e.g. --reuse readout_table)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resume", action="store_true", help="keep the finished runs of an earlier, same-settings table")
    args = parser.parse_args()
    path = PATH if args.clips is None else PATH.with_name(f"synthetic_mosi_{args.clips}.pkl")
    if not path.exists():
        synthetic.write(path, *synthetic.generate("mosi", seed=0, n_clips=args.clips))
    settings = {"epochs": args.epochs, "d_model": args.d_model, "device": args.device, "clips": args.clips}
    runs = previous_runs(args.name, settings) if args.resume else []
    if args.reuse:
        for run in previous_runs(args.reuse, settings):
            default = MODELS[run["model"]].default_readout
            fresh = not any(r["model"] == run["model"] and r["seed"] == run["seed"] for r in runs)
            if run["readout"] == default and "auto" in args.readouts and fresh:
                runs.append({**run, "readout": "auto", "readout_used": default, "reused_from": f"{args.reuse}.json"})
    rows = [(name, readout) for name in args.models for readout in args.readouts]
    for name, readout in rows:
        for seed in args.seeds:
            if any(r["model"] == name and r.get("readout", "auto") == readout and r["seed"] == seed for r in runs):
                continue
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                options = {"d_model": args.d_model, "n_layers": 2, "readout": readout}
                config = TrainConfig(model=name, data=str(path), out=out, epochs=args.epochs, batch_size=32, seed=seed,
                                     device=args.device, model_options=options)
                metrics = train(config, progress=False)
            used = MODELS[name].default_readout if readout == "auto" else readout
            runs.append({"model": name, "readout": readout, "readout_used": used, "seed": seed,
                         "seconds": time.perf_counter() - start, **metrics})
            print(f"{name} ({readout}) seed {seed}: " + ", ".join(f"{c} {metrics[c]:.4f}" for c in COLUMNS), flush=True)
            write_result(args.name, {**settings, "seeds": args.seeds, "command": COMMAND, "runs": runs})
    print("\n| model | readout | " + " | ".join(COLUMNS) + " | seconds/run |\n|---|---|" + "---|" * (len(COLUMNS) + 1))
    for name, readout in rows:
        mine = [r for r in runs if r["model"] == name and r.get("readout", "auto") == readout]
        cells = []
        for column in COLUMNS:
            values = [r[column] for r in mine]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {spread:.3f}")
        seconds = statistics.mean(r["seconds"] for r in mine)
        print(f"| {name} | {readout} | " + " | ".join(cells) + f" | {seconds:.0f} |")


COMMAND = "python benchmarks/model_table.py " + " ".join(sys.argv[1:])


def previous_runs(name: str, settings: dict) -> list[dict]:
    """The runs of ``NAME.json`` if it was made with the same settings, else none."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return []
    previous = json.loads(path.read_text())
    if any(previous.get(key) != value for key, value in settings.items()):
        print(f"{path} was made with other settings; starting afresh", flush=True)
        return []
    return previous["runs"]


if __name__ == "__main__":
    main()
