"""Running a sweep: every declared run through its executor, one JSON of results rewritten
atomically after each run, resumable run by run, and the results as a tidy table.

The JSON (``experiments_<sweep>.json``) holds the sweep, profile, command and declared grid, and
per finished run its exact configuration, seed, software versions, seconds and result rows
(``{"metrics": {...}, ...}``; extra keys such as ``test_missing_rate`` or ``status`` are factors).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from alignlib import __version__
from alignlib.experiments.grids import PROFILES, SWEEPS, estimate_seconds
from alignlib.files import atomic_write_json

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class SweepError(ValueError):
    """A sweep that cannot start as asked (the message says why)."""


def software() -> dict:
    """Versions that can change a result: Python, libraries, alignlib and its git commit."""
    import numpy
    import scipy
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "alignlib"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += "+dirty" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "alignlib": __version__, "git": commit, "machine": platform.machine(),
            "torch_threads": torch.get_num_threads()}


def ensure_data(root: Path, spec: dict) -> Path:
    """The synthetic data file a run asks for, generated once under ``root/data``."""
    from alignlib.data import synthetic

    path = root / "data" / f"synthetic_{spec['preset']}_{spec['n_clips'] or 'preset'}_seed{spec['seed']}.pkl"
    if not path.exists():
        synthetic.write(path, *synthetic.generate(spec["preset"], spec["seed"], spec["n_clips"]))
    return path


def run_folder(root: Path, run: dict) -> Path:
    """``root/runs/<sweep>/<id>``: run ids are unique within a sweep, and sweeps can share ``root``."""
    return root / "runs" / run.get("sweep", "") / run["id"]


def run_training(run: dict, root: Path, device: str) -> tuple[dict, list[dict]]:
    """Train through :func:`alignlib.train.train` (resuming an interrupted run from its
    ``last.pt``); with ``test_missing_rates``, test the best checkpoint at each rate."""
    from alignlib.train import TrainConfig, train

    data_path = ensure_data(root, run["data"])
    run_dir = run_folder(root, run)
    config = TrainConfig(**run["train"], data=str(data_path), out=str(run_dir), device=device, resume=True)
    metrics = train(config, progress=False)
    rows = ([{"metrics": metrics}] if "test_missing_rates" not in run
            else [{"test_missing_rate": rate, "metrics": m} for rate, m in missing_metrics(config, run["test_missing_rates"])])
    recorded = dataclasses.asdict(config)
    recorded.update(data=os.path.relpath(data_path, root), out=os.path.relpath(run_dir, root))
    return recorded, rows


def missing_metrics(config, rates) -> list[tuple[float, dict]]:
    """Test metrics of the run's best checkpoint with modalities dropped at each rate (at inference
    only; seeded by the run's seed, at least one modality kept per clip)."""
    from alignlib.data import load_mmsa, missing_modality_mask
    from alignlib.models.checkpoint import load_model
    from alignlib.train import choose_device, evaluate

    device = choose_device(config.device)
    model = load_model(Path(config.out) / "best.pt")[0].to(device)
    test = load_mmsa(config.data).splits["test"]
    results = []
    for rate in rates:
        present = missing_modality_mask(len(test), rate, seed=config.seed) if rate > 0 else None
        results.append((rate, evaluate(model, test, config.batch_size, device, present=present)[0]))
    return results


def run_efficiency(run: dict, root: Path, device: str) -> tuple[dict, list[dict]]:
    from alignlib.experiments.efficiency import measure_point

    settings = {**run["efficiency"], "device": device}
    return settings, [measure_point(**settings)]


def run_emma(run: dict, root: Path, device: str) -> tuple[dict, list[dict]]:
    """One EMMA variant and seed through :func:`alignlib.models.emma.train_and_score`, as notebook 09 runs it."""
    from alignlib.models import emma
    from alignlib.data import digit_scenes

    if device != "cpu":
        raise SweepError(f"the emma sweep runs on the CPU only, got --device {device}")
    s = run["emma"]
    train_data = digit_scenes.make_digit_scenes(s["n_train"], "train", seed=s["data_seed"])
    test_data = digit_scenes.make_digit_scenes(s["n_test"], "test", seed=s["data_seed"] + 1)
    config = emma.EmmaConfig(patch_size=s["patch_size"], d_model=s["d_model"], n_layers=s["n_layers"], **s["options"])
    result = emma.train_and_score(config, train_data, test_data, train_data.subset(slice(0, s["probe_scenes"])),
                                  s["train_steps"], s["batch_size"], s["learning_rate"], seed=s["seed"], progress=False)
    tail = result.history[-max(1, len(result.history) // 20):]  # the last 5 % of the steps
    metrics = {**result.scores, **{f"probe_r2_layer{k}": float(v) for k, v in enumerate(result.r2)},
               **{f"final_{part}_loss": float(np.mean([h[part] for h in tail])) for part in tail[0]}}
    return s, [{"metrics": metrics}]


def run_inside(run: dict, root: Path, device: str) -> tuple[dict, list[dict]]:
    """Train with a checkpoint per epoch (:func:`alignlib.analysis.train_keeping_epochs`, resumable
    epoch by epoch), then one row per checkpoint, epoch 0 being the initial model:
    :func:`alignlib.analysis.checkpoint_summary` on the first test clips, and on the last row the
    test metrics of the checkpoint best on validation (``test_*``, from epoch ``test_best_epoch``)."""
    from alignlib import analysis
    from alignlib.data import load_mmsa
    from alignlib.train import TrainConfig

    data_path = ensure_data(root, run["data"])
    run_dir = run_folder(root, run)
    config = TrainConfig(**run["train"], data=str(data_path), out=str(run_dir), device=device)
    kept = analysis.train_keeping_epochs(config)
    test = load_mmsa(data_path).splits["test"]
    truth = analysis.truth_tables(data_path, "test")
    clips, blur = range(min(run["analysis"]["clips"], len(test))), run["analysis"]["blur"]
    rows = [{"epoch": epoch, "metrics": summary}
            for epoch, summary in enumerate(analysis.epoch_summaries(config, kept, test, truth, clips, blur))]
    tested = json.loads((run_dir / "test_metrics.json").read_text())  # the checkpoint best on validation
    rows[-1]["metrics"].update({f"test_{k}": v for k, v in tested.items()
                                if isinstance(v, (int, float)) and k not in ("epoch", "test_missing_rate")})
    rows[-1]["metrics"]["test_best_epoch"] = tested["epoch"]
    recorded = dataclasses.asdict(config)
    recorded.update(data=os.path.relpath(data_path, root), out=os.path.relpath(run_dir, root), analysis=run["analysis"])
    return recorded, rows


EXECUTORS = {"train": run_training, "efficiency": run_efficiency, "emma": run_emma, "inside": run_inside}


def skipped_efficiency_row(run: dict, record: dict) -> dict | None:
    """A point is skipped when a shorter length of its model already ran out of memory or time."""
    if run["kind"] != "efficiency":
        return None
    for other in record["runs"].values():
        status = other["rows"][0].get("status")
        if (other["factors"]["model"] == run["factors"]["model"] and other["factors"]["length"] < run["factors"]["length"]
                and status in ("oom", "timeout")):
            return {"status": "skipped", "reason": f"{status} at length {other['factors']['length']}", "metrics": {}}
    return None


def results_path(name: str, out: Path) -> Path:
    return Path(out) / f"experiments_{name}.json"


def run_sweep(name: str, profile: str = "default", out: str | os.PathLike = "build/experiments", resume: bool = False,
              device: str = "cpu", progress: bool = True, command: str | None = None) -> dict:
    """Run (or continue, with ``resume``) one sweep; returns its results record (also the JSON).

    Runs go to ``out/runs/<name>/<id>``, synthetic data to ``out/data``, the JSON to
    ``out/experiments_<name>.json``, rewritten atomically after every run.
    """
    if name not in SWEEPS:
        raise SweepError(f"unknown sweep {name!r}; choose one of {sorted(SWEEPS)}")
    if profile not in PROFILES:
        raise SweepError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SweepError(f"--out {out} is a file, not a folder")
    path = results_path(name, out)
    grid = json.loads(json.dumps(SWEEPS[name].runs(profile)))
    record = {"sweep": name, "profile": profile, "reproduces": SWEEPS[name].reproduces, "device": device,
              "command": command or f"python -m alignlib.experiments {name} --profile {profile} --out {out}",
              "estimated_seconds": sum(map(estimate_seconds, grid)), "grid": grid, "runs": {}}
    if path.exists():
        if not resume:
            raise SweepError(f"{path} exists; pass --resume to continue that sweep, or choose another --out")
        old = json.loads(path.read_text())
        if (old.get("sweep"), old.get("profile"), old.get("grid")) != (name, profile, grid):
            raise SweepError(f"{path} holds another sweep, profile or grid; choose another --out")
        record["runs"] = old["runs"]
    out.mkdir(parents=True, exist_ok=True)
    versions = software()
    todo = [run for run in grid if run["id"] not in record["runs"]]
    from tqdm.auto import tqdm

    with tqdm(total=len(grid), initial=len(grid) - len(todo), desc=name, unit="run", disable=not progress) as bar:
        for run in todo:
            with locked(path):  # another worker may have finished or taken it meanwhile
                record["runs"] = {**read_runs(path), **record["runs"]}
                if run["id"] in record["runs"] or not claim(out, run["id"]):
                    continue
            bar.set_postfix_str(run["id"])
            start = time.perf_counter()
            skipped = skipped_efficiency_row(run, record)
            config, rows = ((run["efficiency"], [skipped]) if skipped
                            else EXECUTORS[run["kind"]]({**run, "sweep": name}, out, device))
            seed = run["factors"].get("seed")
            done = {"factors": run["factors"], "config": config, "seed": seed, "software": versions, "device": device,
                    "seconds": time.perf_counter() - start, "rows": rows}
            with locked(path):
                record["runs"] = {**read_runs(path), **record["runs"], run["id"]: done}
                atomic_write_json(path, record)
            claim_path(out, run["id"]).unlink(missing_ok=True)
            bar.update()
    with locked(path):
        record["runs"] = {**read_runs(path), **record["runs"]}
        atomic_write_json(path, record)
    return record


# -- several workers on one sweep ---------------------------------------------------------------------
# Processes that run the same sweep into the same folder share it: each run is claimed by one of
# them (``out/claims/<id>`` holds its PID), and the JSON is re-read and merged under a lock before
# every write. A claim whose process has died is taken over.
def claim_path(out: Path, run_id: str) -> Path:
    return Path(out) / "claims" / run_id


def claim(out: Path, run_id: str) -> bool:
    """Take ``run_id`` for this process; False when a live process holds it. Call under :func:`locked`."""
    path = claim_path(out, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        try:
            holder = int(path.read_text())
        except (OSError, ValueError):
            holder = 0
        if holder != os.getpid() and process_alive(holder):
            return False
    path.write_text(str(os.getpid()))
    return True


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on ``path`` (through ``path.lock``) for the sweep's workers."""
    import fcntl

    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_runs(path: Path) -> dict:
    """The finished runs recorded at ``path`` (empty when there is no file yet)."""
    return json.loads(path.read_text())["runs"] if path.exists() else {}


def tidy(record: dict):
    """One row per (run, result row, metric): the run's factors, the row's extra keys, ``metric``,
    ``value`` (a result row without metrics, such as an out-of-memory point, gives one row, value NaN)."""
    import pandas as pd

    rows = []
    for run in record["grid"]:
        done = record["runs"].get(run["id"])
        for result in (done or {}).get("rows", []):
            extra = {k: v for k, v in result.items() if k != "metrics"}
            if not result["metrics"]:  # a point that ran out of memory or time: its status, no value
                rows.append({"sweep": record["sweep"], "run": run["id"], **run["factors"], **extra,
                             "metric": None, "value": float("nan")})
            for metric, value in result["metrics"].items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    rows.append({"sweep": record["sweep"], "run": run["id"], **run["factors"], **extra,
                                 "metric": metric, "value": float(value)})
    return pd.DataFrame(rows)


def load(path: str | os.PathLike) -> dict:
    """A sweep's results record from its JSON."""
    return json.loads(Path(path).read_text())
