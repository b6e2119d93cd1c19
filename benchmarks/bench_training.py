"""One training epoch of every model on MOSI-sized synthetic data (1284 training clips; text 50,
audio 375, video 500 steps) in one run: seconds per epoch and the ratio to the concatenation
baseline; JSON. The same script runs on a GPU when one is present (``--device cuda``).
Run: python benchmarks/bench_training.py [--device cpu|cuda] [--d-model 64]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from alignlib.common import threads
from alignlib.data import synthetic
from alignlib.models.sentiment import MODELS
from alignlib.train import TrainConfig, train
from common import write_result

PATH = Path(__file__).resolve().parent.parent / "build" / "synthetic_mosi.pkl"


def main() -> None:
    threads.configure()
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--models", nargs="*", default=sorted(MODELS))
    args = parser.parse_args()
    if not PATH.exists():
        synthetic.write(PATH, *synthetic.generate("mosi", seed=0))
    rows = []
    for name in args.models:
        with tempfile.TemporaryDirectory() as out:
            config = TrainConfig(model=name, data=str(PATH), out=out, epochs=1, batch_size=32, device=args.device,
                                 model_options={"d_model": args.d_model, "n_layers": 2})
            start = time.perf_counter()
            train(config, progress=False)
            rows.append({"model": name, "seconds": time.perf_counter() - start})
        print(f"{name:>12}: {rows[-1]['seconds']:.1f} s (one epoch + validation + test)", flush=True)
    base = next((r["seconds"] for r in rows if r["model"] == "concat"), None)
    for row in rows:
        row["ratio_to_concat"] = row["seconds"] / base if base else None
    print("ratios to concat:", {r["model"]: round(r["ratio_to_concat"], 2) for r in rows if base})
    write_result(f"training_{args.device}", {"device": args.device, "d_model": args.d_model, "rows": rows})


if __name__ == "__main__":
    main()
