"""Training: ``python -m alignlib.train --model alignmamba2 --data PATH --out DIR [--epochs N] [--config FILE.yaml]``.

Adam, ReduceLROnPlateau on the validation MAE, gradient clipping, L1 loss plus each model's
auxiliary losses, early stopping; seeded and reproducible on CPU. Per-epoch metrics go to
``DIR/metrics.jsonl``; ``DIR/best.pt`` and ``DIR/last.pt`` are written atomically; ``--resume``
continues from ``last.pt`` and ends where an uninterrupted run would. ``DIR/test_metrics.json``
holds the MSA metrics of the best checkpoint on the test split.

Multi-GPU (or multi-process CPU) through PyTorch's own engine:
``torchrun --nproc_per_node=N -m alignlib.train ...`` wraps the model in DistributedDataParallel;
each global batch of ``--batch-size`` clips is split evenly across the processes, so the loss
trajectory is the one of a single process.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from alignlib.data import MMSADataset, collate, load_mmsa, missing_modality_mask
from alignlib.files import atomic_open, atomic_write_bytes, atomic_write_json
from alignlib.metrics import msa_metrics
from alignlib.models import MODELS, ModelConfig, build_model


@dataclass
class TrainConfig:
    """Everything a run needs; ``model_options`` go to :class:`alignlib.models.ModelConfig`."""

    model: str = "alignmamba2"
    data: str = ""
    out: str = "runs/default"
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    grad_clip: float = 1.0
    patience: int = 8  # epochs without a better validation MAE before stopping
    plateau_patience: int = 3
    plateau_factor: float = 0.5
    seed: int = 0
    device: str = "auto"
    bf16: bool = False
    missing_rate: float = 0.0
    resume: bool = False
    model_options: dict = field(default_factory=dict)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, or made for another model or data."""


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def choose_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def global_batches(n_samples: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The epoch's shuffled global batches: the same for any number of processes."""
    order = np.random.default_rng([seed, epoch]).permutation(n_samples)
    return [order[i:i + batch_size] for i in range(0, n_samples, batch_size)]


def save_checkpoint(path: Path, state: dict) -> None:
    """Serialise in memory first, then write atomically: a failure leaves the old file intact."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_open(path) as handle:
        handle.write(buffer.getvalue())


def load_checkpoint(path: Path, config: TrainConfig, dims: dict) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises several types for damaged files
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not an alignlib checkpoint")
    if state.get("model_name") != config.model:
        raise CheckpointError(f"{path}: made for model {state.get('model_name')!r}, not {config.model!r}")
    if state.get("dims") != dims:
        raise CheckpointError(f"{path}: made for feature widths {state.get('dims')}, but the data has {dims}")
    made_with = ModelConfig.from_dict(state.get("config", {}).get("model_options", {}))
    if made_with != ModelConfig.from_dict(config.model_options):
        raise CheckpointError(f"{path}: made with model options {dataclasses.asdict(made_with)}, "
                              f"not {dataclasses.asdict(ModelConfig.from_dict(config.model_options))}")
    return state


def evaluate(model, split, batch_size: int, device) -> tuple[dict, np.ndarray]:
    model.eval()
    dataset = MMSADataset(split)
    predictions = []
    with torch.no_grad():
        for first in range(0, len(dataset), batch_size):
            batch = collate([dataset[i] for i in range(first, min(first + batch_size, len(dataset)))]).to(device)
            predictions.append(model(batch)[0].float().cpu())
    predictions = torch.cat(predictions).numpy()
    return msa_metrics(predictions, split.labels), predictions


def train(config: TrainConfig, progress: bool = True) -> dict:
    """Run training; returns the test metrics of the best checkpoint."""
    if config.model not in MODELS:
        raise ValueError(f"unknown model {config.model!r}; choose one of {sorted(MODELS)}")
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = choose_device(config.device)
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    if config.batch_size % world:
        raise ValueError(f"--batch-size {config.batch_size} must be divisible by the {world} processes")

    out = Path(config.out)
    data = load_mmsa(config.data or None)
    set_seed(config.seed)
    model = build_model(config.model, data.dims, ModelConfig.from_dict(config.model_options)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.plateau_factor,
                                                           patience=config.plateau_patience)
    present = (missing_modality_mask(len(data.splits["train"]), config.missing_rate, seed=config.seed)
               if config.missing_rate > 0 else None)
    train_set = MMSADataset(data.splits["train"], present)
    start_epoch, best, stale = 0, math.inf, 0
    if config.resume and (out / "last.pt").exists():
        state = load_checkpoint(out / "last.pt", config, data.dims)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        start_epoch, best, stale = state["epoch"] + 1, state["best"], state["stale"]
    net = torch.nn.parallel.DistributedDataParallel(model) if distributed else model
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", dataclasses.asdict(config))
        log_path = out / "metrics.jsonl"
        # a fresh run starts an empty log; a resumed one drops epochs logged after its checkpoint
        kept = [line for line in (log_path.read_text().splitlines() if start_epoch and log_path.exists() else [])
                if json.loads(line)["epoch"] <= start_epoch]
        atomic_write_bytes(log_path, "".join(line + "\n" for line in kept).encode())

    from tqdm.auto import tqdm

    for epoch in range(start_epoch, config.epochs):
        net.train()
        batches = global_batches(len(train_set), config.batch_size, config.seed, epoch)
        totals: dict[str, float] = {}
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress or rank != 0, leave=False)
        for indices in bar:
            share = np.array_split(indices, world)[rank]
            batch = collate([train_set[i] for i in share]).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16 and device.type == "cuda"):
                prediction, aux = net(batch)
                task = torch.nn.functional.l1_loss(prediction.float(), batch.labels)
                loss = task + sum(aux.values())
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            logged = {"loss": loss, "task": task, **aux}
            values = torch.stack([v.detach().float() for v in logged.values()])
            if distributed:  # log the global batch's losses, not this process's share
                dist.all_reduce(values)
                values /= world
            for name, value in zip(logged, values.tolist()):
                totals[name] = totals.get(name, 0.0) + value * len(indices) / len(train_set)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        valid, _ = evaluate(model, data.splits["valid"], config.batch_size, device)
        scheduler.step(valid["MAE"])
        improved = valid["MAE"] < best
        best, stale = (valid["MAE"], 0) if improved else (best, stale + 1)
        if rank == 0:
            record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                      **{f"train_{k}": v for k, v in totals.items()}, **{f"valid_{k}": v for k, v in valid.items()}}
            with open(out / "metrics.jsonl", "a") as log:
                log.write(json.dumps(record) + "\n")
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "rng": torch.get_rng_state(), "epoch": epoch,
                     "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None, "best": best, "stale": stale,
                     "model_name": config.model, "dims": data.dims, "config": dataclasses.asdict(config)}
            if improved:
                save_checkpoint(out / "best.pt", state)
            save_checkpoint(out / "last.pt", state)
            if progress:
                print(f"epoch {epoch + 1}: train loss {totals['loss']:.4f}, valid MAE {valid['MAE']:.4f}, "
                      f"Acc-2 {valid['Non0_acc_2']:.3f}{' (best)' if improved else ''}")
        if stale >= config.patience:
            break

    if distributed:
        dist.barrier()
    best_state = load_checkpoint(out / "best.pt", config, data.dims)
    model.load_state_dict(best_state["model"])
    test, predictions = evaluate(model, data.splits["test"], config.batch_size, device)
    if rank == 0:
        atomic_write_json(out / "test_metrics.json", {"epoch": best_state["epoch"] + 1, **test})
    if distributed:
        dist.destroy_process_group()
    return test


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m alignlib.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), help=f"model to train (default {defaults.model})")
    parser.add_argument("--data", help="MMSA pickle (default: $ALIGNLIB_DATA)")
    parser.add_argument("--out", help=f"run folder for metrics and checkpoints (default {defaults.out})")
    parser.add_argument("--config", type=Path, help="YAML file with any of these options (command-line flags win)")
    parser.add_argument("--epochs", type=int, help=f"maximum epochs (default {defaults.epochs})")
    parser.add_argument("--batch-size", type=int, help=f"global batch size (default {defaults.batch_size})")
    parser.add_argument("--lr", type=float, help=f"Adam learning rate (default {defaults.lr})")
    parser.add_argument("--grad-clip", type=float, help=f"gradient norm clip (default {defaults.grad_clip})")
    parser.add_argument("--patience", type=int, help=f"early-stopping patience in epochs (default {defaults.patience})")
    parser.add_argument("--seed", type=int, help=f"seed (default {defaults.seed})")
    parser.add_argument("--device", help="auto (CUDA when present), cpu, cuda, cuda:1, ... (default auto)")
    parser.add_argument("--bf16", action="store_true", default=None, help="bf16 autocast on GPU")
    parser.add_argument("--missing-rate", type=float, help="drop each training modality with this probability (default 0)")
    parser.add_argument("--resume", action="store_true", default=None, help="continue from OUT/last.pt")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="model option, e.g. --set d_model=128 --set moe=false (see alignlib.models.ModelConfig)")
    args = parser.parse_args(argv)

    values: dict = {}
    if args.config:
        import yaml

        loaded = yaml.safe_load(args.config.read_text()) or {}
        if not isinstance(loaded, dict):
            parser.error(f"{args.config}: expected a mapping of options")
        values.update(loaded)
    for key in ("model", "data", "out", "epochs", "batch_size", "lr", "grad_clip", "patience", "seed", "device",
                "bf16", "missing_rate", "resume"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    options = dict(values.pop("model_options", {}) or {})
    for item in args.set:
        key, _, raw = item.partition("=")
        import yaml

        options[key] = yaml.safe_load(raw)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(values) - known
    if unknown:
        parser.error(f"unknown option(s) {sorted(unknown)}")
    config = TrainConfig(**values, model_options=options)
    if not config.data and not os.environ.get("ALIGNLIB_DATA"):
        parser.error("give --data PATH (or set $ALIGNLIB_DATA)")
    ModelConfig.from_dict(options)  # fail early on an unknown model option
    return config


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    metrics = train(config)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
