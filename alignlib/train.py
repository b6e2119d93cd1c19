"""Training: ``python -m alignlib.train --model alignmamba2 --data PATH --out DIR [--epochs N] [--config FILE.yaml]``.

Adam, ReduceLROnPlateau on the validation MAE, gradient clipping, L1 loss plus each model's
auxiliary losses, early stopping after ``patience`` epochs without a better validation MAE, an
optional budget of optimiser steps; seeded and reproducible on CPU. The learning curves go to
``DIR/metrics.jsonl``, one line per epoch (``train_loss``, ``train_task`` = the training L1/MAE
under dropout, each auxiliary loss, ``valid_MAE`` and the other validation metrics, ``steps``);
``DIR/best.pt`` and ``DIR/last.pt`` (:mod:`alignlib.models.checkpoint`) are written atomically;
``--resume`` continues from ``last.pt`` and ends where an uninterrupted run would.
``DIR/test_metrics.json`` holds the MSA metrics of the best checkpoint on the test split (with
``--test-missing-rate R``, modalities dropped at inference only, AlignMamba's Table 1 protocol)
and how the run ended: ``optimizer_steps``, ``epochs_run``, ``stopped_by`` and ``valid_flat``
(:func:`convergence`).

Every field of :class:`TrainConfig` is a flag (``--batch-size 16``) and every field of
:class:`alignlib.models.sentiment.ModelConfig` a ``--set key=value``, each parsed with its field's type. A
user's mistake (missing or malformed data, a bad value, an unusable checkpoint: a
:class:`~alignlib.common.errors.UserError`) prints one line ``error: ...`` on stderr and exits 2;
anything else is a bug and shows its traceback (exit 1).

Multi-GPU (or multi-process CPU) through PyTorch's own engine:
``torchrun --nproc_per_node=N -m alignlib.train ...`` wraps the model in DistributedDataParallel;
each global batch of ``--batch-size`` clips is split evenly across the processes, so the loss
trajectory is the one of a single process.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from alignlib.common import threads

if __name__ == "__main__":  # the command line: threads configured before numpy and torch load (README: Threads)
    threads.configure()

import numpy as np
import torch
import torch.distributed as dist

from alignlib.common.checks import trusted
from alignlib.common.errors import UserError
from alignlib.common.files import atomic_write_bytes, atomic_write_json
from alignlib.data import MMSADataset, collate, load_mmsa, missing_modality_mask
from alignlib.data.sampler import length_grouped_batches, real_lengths, trim_batch
from alignlib.metrics import msa_metrics
from alignlib.models.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from alignlib.models.sentiment import MODELS, ModelConfig, build_model


@dataclass
class TrainConfig:
    """Everything a run needs; ``model_options`` go to :class:`alignlib.models.sentiment.ModelConfig`."""

    model: str = "alignmamba2"
    data: str = ""  # MMSA pickle (empty: $ALIGNLIB_DATA)
    out: str = "runs/default"  # run folder for metrics and checkpoints
    epochs: int = 20  # maximum epochs
    max_steps: int = 0  # optimiser-step budget, checked after each epoch (0: none)
    batch_size: int = 32  # global batch size
    lr: float = 1e-3  # Adam learning rate
    grad_clip: float = 1.0  # gradient-norm clip
    patience: int = 8  # epochs without a better validation MAE before stopping
    plateau_patience: int = 3  # epochs without improvement before the learning rate drops
    plateau_factor: float = 0.5  # learning-rate factor on a plateau
    seed: int = 0
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:1, ...
    bf16: bool = False  # bf16 autocast on GPU
    missing_rate: float = 0.0  # drop each training modality with this probability
    test_missing_rate: float = 0.0  # drop test modalities at inference (AlignMamba Table 1), seeded
    length_batches: bool = True  # batch clips of similar real length (padding then costs almost nothing)
    resume: bool = False  # continue from OUT/last.pt
    keep_epochs: bool = False  # also keep every epoch's checkpoint as OUT/epoch_K.pt
    model_options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.model not in MODELS:
            raise UserError(f"model: unknown {self.model!r}; choose one of {sorted(MODELS)}")
        for name in ("epochs", "batch_size", "patience", "plateau_patience"):
            if getattr(self, name) < 1:
                raise UserError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.max_steps < 0:
            raise UserError(f"max_steps: must be >= 0 (0: no budget), got {self.max_steps}")
        for name in ("lr", "grad_clip"):
            if not getattr(self, name) > 0:
                raise UserError(f"{name}: must be > 0, got {getattr(self, name)}")
        if not 0 < self.plateau_factor < 1:
            raise UserError(f"plateau_factor: must be in (0, 1), got {self.plateau_factor}")
        for name in ("missing_rate", "test_missing_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UserError(f"{name}: must be in [0, 1), got {getattr(self, name)}")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise UserError(f"out: {self.out} is a file, not a run folder")
        ModelConfig.from_dict(self.model_options)  # unknown or invalid model options fail here


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def choose_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"device: unknown {name!r}; use auto, cpu, cuda or cuda:N") from None


def global_batches(n_samples: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The epoch's shuffled global batches: the same for any number of processes."""
    order = np.random.default_rng([seed, epoch]).permutation(n_samples)
    return [order[i:i + batch_size] for i in range(0, n_samples, batch_size)]


def checked_checkpoint(path: Path, config: TrainConfig, dims: dict) -> dict:
    """The checkpoint at ``path`` (:func:`alignlib.models.checkpoint.read_checkpoint`), refused with a
    one-line :class:`~alignlib.models.checkpoint.CheckpointError` when made for another model, other
    feature widths ``dims`` or other model options than ``config``'s."""
    state = read_checkpoint(path)
    if state["model_name"] != config.model:
        raise CheckpointError(f"{path}: made for model {state['model_name']!r}, not {config.model!r}")
    if state["dims"] != dims:
        raise CheckpointError(f"{path}: made for feature widths {state['dims']}, but the data has {dims}")
    made_with = ModelConfig.from_dict(state["config"]["model_options"])
    if made_with != ModelConfig.from_dict(config.model_options):
        raise CheckpointError(f"{path}: made with model options {dataclasses.asdict(made_with)}, "
                              f"not {dataclasses.asdict(ModelConfig.from_dict(config.model_options))}")
    return state


def evaluate(model, split, batch_size: int, device, present: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """MSA metrics and predictions ``(N,)`` of ``model`` on a split; ``present (N, 3)`` drops
    modalities at inference (see :func:`alignlib.data.missing_modality_mask`).

    Clips are batched in order of real length and each batch cut to its longest clip: the models
    are invariant to padding and to batch composition, so this changes the speed, not the result."""
    model.eval()
    dataset = MMSADataset(split, present, alignment=needs_alignment(model))
    order = np.argsort(real_lengths(split.masks, "sum"), kind="stable")
    predictions = np.empty(len(dataset), dtype=np.float32)
    with torch.no_grad(), trusted():  # a split's values were checked where it was loaded
        for first in range(0, len(dataset), batch_size):
            indices = order[first:first + batch_size]
            batch = trim_batch(collate([dataset[i] for i in indices])).to(device)
            predictions[indices] = model(batch)[0].float().cpu().numpy()
    return msa_metrics(predictions, split.labels), predictions


@dataclass
class Run:
    """The live objects of a run."""

    config: TrainConfig
    data: object
    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: object
    train_set: MMSADataset
    device: torch.device
    rank: int = 0
    world: int = 1
    start_epoch: int = 0
    best: float = math.inf
    stale: int = 0
    steps: int = 0  # optimiser steps so far
    valid_history: list = field(default_factory=list)  # validation MAE after each epoch


def setup_distributed(config: TrainConfig) -> tuple[torch.device, int, int]:
    """The device, rank and world size; under torchrun, joins the process group."""
    device = choose_device(config.device)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device, 0, 1
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    rank, world = dist.get_rank(), dist.get_world_size()
    if config.batch_size % world:
        raise UserError(f"batch_size: {config.batch_size} is not divisible by the {world} processes")
    return device, rank, world


def build_run(config: TrainConfig, device: torch.device, rank: int, world: int) -> Run:
    """Data, seeded model, optimiser and scheduler."""
    data = load_mmsa(config.data or None)
    set_seed(config.seed)
    model = build_model(config.model, data.dims, ModelConfig.from_dict(config.model_options)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.plateau_factor,
                                                           patience=config.plateau_patience)
    present = (missing_modality_mask(len(data.splits["train"]), config.missing_rate, seed=config.seed)
               if config.missing_rate > 0 else None)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    train_set = MMSADataset(data.splits["train"], present, alignment=needs_alignment(model))
    return Run(config, data, model, net, optimizer, scheduler, train_set, device, rank, world)


def restore(run: Run, out: Path) -> None:
    """Continue from ``out/last.pt`` (model, optimiser, scheduler, RNG, epoch counters)."""
    state = checked_checkpoint(out / "last.pt", run.config, run.data.dims)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    run.start_epoch, run.best, run.stale = state["epoch"] + 1, state["best"], state["stale"]
    run.steps, run.valid_history = state["steps"], list(state["valid_history"])


def start_log(run: Run, out: Path) -> None:
    """A fresh run starts an empty log; a resumed one drops epochs logged after its checkpoint."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", dataclasses.asdict(run.config))
    except OSError as error:
        raise UserError(f"out: cannot write the run folder {out} ({error.strerror or error})") from None
    log_path = out / "metrics.jsonl"
    lines = log_path.read_text().splitlines() if run.start_epoch and log_path.exists() else []
    kept = [line for line in lines if json.loads(line)["epoch"] <= run.start_epoch]
    atomic_write_bytes(log_path, "".join(line + "\n" for line in kept).encode())


def train_epoch(run: Run, epoch: int, progress: bool) -> dict[str, float]:
    """One pass over the training split; returns the epoch's mean losses by name."""
    from tqdm.auto import tqdm

    config = run.config
    run.net.train()
    if config.length_batches:
        lengths = real_lengths(run.train_set.split.masks, "sum")
        batches = length_grouped_batches(lengths, config.batch_size, config.seed, epoch)
    else:
        batches = global_batches(len(run.train_set), config.batch_size, config.seed, epoch)
    totals: dict[str, float] = {}
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress or run.rank != 0, leave=False)
    for indices in bar:
        share = np.array_split(indices, run.world)[run.rank]
        batch = trim_batch(collate([run.train_set[i] for i in share])).to(run.device)
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=config.bf16 and run.device.type == "cuda"), \
                trusted():  # the data's values were checked where it was loaded, not on every pass
            prediction, aux = run.net(batch)
            task = torch.nn.functional.l1_loss(prediction.float(), batch.labels)
            loss = task + sum(aux.values())
        run.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.grad_clip)
        run.optimizer.step()
        run.steps += 1
        logged = {"loss": loss, "task": task, **aux}
        values = torch.stack([v.detach().float() for v in logged.values()])
        if run.world > 1:  # log the global batch's losses, not this process's share
            dist.all_reduce(values)
            values /= run.world
        for name, value in zip(logged, values.tolist()):
            totals[name] = totals.get(name, 0.0) + value * len(indices) / len(run.train_set)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return totals


def checkpoint_state(run: Run, epoch: int) -> dict:
    """Everything :func:`restore` needs to continue after ``epoch``, in the checkpoint format of
    :mod:`alignlib.models.checkpoint` (tensors and plain data)."""
    return {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(), "rng": torch.get_rng_state(), "epoch": epoch,
            "cuda_rng": torch.cuda.get_rng_state_all() if run.device.type == "cuda" else None,
            "best": float(run.best), "stale": run.stale, "steps": run.steps,
            "valid_history": [float(v) for v in run.valid_history], "model_name": run.config.model, "dims": run.data.dims,
            "config": dataclasses.asdict(run.config)}


def final_test(run: Run, out: Path) -> dict:
    """Test metrics of the best checkpoint (modalities dropped at ``test_missing_rate``)."""
    best_state = checked_checkpoint(out / "best.pt", run.config, run.data.dims)
    run.model.load_state_dict(best_state["model"])
    split = run.data.splits["test"]
    rate = run.config.test_missing_rate
    present = missing_modality_mask(len(split), rate, seed=run.config.seed) if rate > 0 else None
    test, _ = evaluate(run.model, split, run.config.batch_size, run.device, present)
    return {"epoch": best_state["epoch"] + 1, "test_missing_rate": rate, **test, **convergence(run)}


def needs_alignment(model: torch.nn.Module) -> bool:
    """Whether ``model`` reads the true frame-to-word tables (only the oracle controls do)."""
    return bool(getattr(model, "needs_alignment", False))


def validation_flat(history: list[float], window: int, tolerance: float = 0.01) -> bool:
    """Whether a validation curve (MAE per epoch) has flattened: its best over the last ``window``
    epochs improves on the best before them by less than ``tolerance`` (relative). False while the
    curve is shorter than ``window + 1`` epochs."""
    if len(history) <= window:
        return False
    before, recent = min(history[:-window]), min(history[-window:])
    return recent >= before * (1 - tolerance)


def convergence(run: Run) -> dict:
    """What a result needs beside its metrics: ``optimizer_steps``, ``epochs_run``, ``stopped_by``
    (``patience``, ``steps`` or ``epochs``) and ``valid_flat`` (:func:`validation_flat` over the
    last ``patience`` epochs, or stopped by patience)."""
    config = run.config
    stopped_by = ("patience" if run.stale >= config.patience
                  else "steps" if config.max_steps and run.steps >= config.max_steps else "epochs")
    flat = stopped_by == "patience" or validation_flat(run.valid_history, config.patience)
    return {"optimizer_steps": run.steps, "epochs_run": len(run.valid_history), "stopped_by": stopped_by,
            "valid_flat": flat}


def train(config: TrainConfig, progress: bool = True) -> dict:
    """Run training; returns the test metrics of the best checkpoint (also in ``OUT/test_metrics.json``)."""
    device, rank, world = setup_distributed(config)
    out = Path(config.out)
    run = build_run(config, device, rank, world)
    if config.resume and (out / "last.pt").exists():
        restore(run, out)
    if rank == 0:
        start_log(run, out)
    for epoch in range(run.start_epoch, config.epochs):
        if run.stale >= config.patience or (config.max_steps and run.steps >= config.max_steps):
            break  # early stopping, or the step budget spent (also when a finished run is resumed)
        totals = train_epoch(run, epoch, progress)
        valid, _ = evaluate(run.model, run.data.splits["valid"], config.batch_size, device)
        run.scheduler.step(valid["MAE"])
        improved = valid["MAE"] < run.best
        run.best, run.stale = (valid["MAE"], 0) if improved else (run.best, run.stale + 1)
        run.valid_history.append(valid["MAE"])
        if rank == 0:
            record = {"epoch": epoch + 1, "lr": run.optimizer.param_groups[0]["lr"], "steps": run.steps,
                      **{f"train_{k}": v for k, v in totals.items()}, **{f"valid_{k}": v for k, v in valid.items()}}
            with open(out / "metrics.jsonl", "a") as log:
                log.write(json.dumps(record) + "\n")
            state = checkpoint_state(run, epoch)
            if improved:
                save_checkpoint(out / "best.pt", state)
            if config.keep_epochs:  # before last.pt: a run killed in between trains this epoch again, to the same state
                save_checkpoint(out / f"epoch_{epoch + 1}.pt", state)
            save_checkpoint(out / "last.pt", state)
            if progress:
                print(f"epoch {epoch + 1}: train loss {totals['loss']:.4f}, valid MAE {valid['MAE']:.4f}, "
                      f"Acc-2 {valid['Non0_acc_2']:.3f}{' (best)' if improved else ''}")
    if world > 1:
        dist.barrier()
    test = final_test(run, out)
    if rank == 0:
        atomic_write_json(out / "test_metrics.json", test)
    if world > 1:
        dist.destroy_process_group()
    return test


class UsageError(UserError):
    """A mistake in the command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise UsageError(message)


def parse_value(text: str, kind: str, name: str):
    """``text`` as a value of the dataclass field type ``kind`` (``int``, ``float``, ``bool``, ``str``)."""
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        raise UsageError(f"{name}: expected true or false, got {text!r}")
    try:
        return {"int": int, "float": float, "str": str}[kind](text)
    except ValueError:
        raise UsageError(f"{name}: expected {'an integer' if kind == 'int' else 'a number'}, got {text!r}") from None


def _flag_type(kind: str, name: str):
    def convert(raw):
        try:
            return parse_value(raw, kind, name)
        except UsageError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    convert.__name__ = kind
    return convert


def _check_type(value, kind: str, name: str):
    """A YAML value against the field type: ints are fine for floats, nothing else is converted."""
    expected = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "dict": (dict,)}[kind]
    if isinstance(value, bool) and kind != "bool" or not isinstance(value, expected):
        raise UsageError(f"{name}: expected {kind}, got {value!r}")
    return float(value) if kind == "float" else value


def _field_help(cls) -> dict[str, str]:
    """The trailing comments of a dataclass's fields, as help texts."""
    import inspect

    helps = {}
    for line in inspect.getsource(cls).splitlines():
        name, _, rest = line.strip().partition(":")
        if "#" in rest and name.isidentifier():
            helps[name] = rest.split("#", 1)[1].strip()
    return helps


def build_parser() -> argparse.ArgumentParser:
    """Flags generated from :class:`TrainConfig`'s fields, plus ``--config`` and ``--set``."""
    parser = _Parser(prog="python -m alignlib.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="YAML file with any of these options (command-line flags win)")
    helps = _field_help(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name == "model_options":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        text = f"{helps.get(f.name, f.name.replace('_', ' '))} (default {default!r})"
        if f.type == "bool":
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif f.name == "model":
            parser.add_argument(flag, dest=f.name, choices=sorted(MODELS), default=None, help=text)
        else:
            parser.add_argument(flag, dest=f.name, default=None, metavar=f.type.upper(), help=text,
                                type=_flag_type(f.type, f.name))
    model_fields = ", ".join(f"{f.name} ({f.type}, default {f.default!r})" for f in dataclasses.fields(ModelConfig))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"model option (alignlib.models.sentiment.ModelConfig): {model_fields}")
    return parser


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from the command line (and ``--config`` YAML); raises
    :class:`UsageError` or another :class:`~alignlib.common.errors.UserError` with a one-line message
    for a user's mistake."""
    args = build_parser().parse_args(argv)
    train_types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    model_types = {f.name: f.type for f in dataclasses.fields(ModelConfig)}
    values: dict = {}
    if args.config:
        import yaml

        try:
            loaded = yaml.safe_load(args.config.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise UsageError(f"{args.config}: unreadable YAML ({type(error).__name__}: {error})".split("\n")[0]) from None
        if not isinstance(loaded, dict):
            raise UsageError(f"{args.config}: expected a mapping of options")
        unknown = set(loaded) - set(train_types)
        if unknown:
            raise UsageError(f"{args.config}: unknown option(s) {sorted(unknown)}")
        values.update({k: _check_type(v, train_types[k], k) for k, v in loaded.items()})
    values.update({k: getattr(args, k) for k in train_types if getattr(args, k, None) is not None})
    options = dict(values.pop("model_options", {}) or {})
    for name, value in options.items():
        if name in model_types:
            options[name] = _check_type(value, model_types[name], name)
    for item in args.set:
        key, equals, raw = item.partition("=")
        if not equals:
            raise UsageError(f"--set {item}: expected KEY=VALUE")
        if key not in model_types:
            raise UsageError(f"--set {key}: unknown model option; known: {sorted(model_types)}")
        options[key] = parse_value(raw, model_types[key], key)
    config = TrainConfig(**values, model_options=options)
    if not config.data and not os.environ.get("ALIGNLIB_DATA"):
        raise UsageError("give --data PATH (or set $ALIGNLIB_DATA)")
    return config


def main(argv: list[str] | None = None) -> int:
    """The CLI: a user's mistake (:class:`~alignlib.common.errors.UserError`) prints ``error: ...`` on
    stderr and exits 2, without a traceback; any other exception is a bug and shows its traceback."""
    try:
        config = parse_args(argv)
        metrics = train(config)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
