"""Training runs, as the ablations, missing and lambda sweeps declare them: the synthetic data and
sizes of each profile, a run's entry in a grid, its executor (:func:`alignlib.train.train`,
resuming an interrupted run from its ``last.pt``) and its time estimate."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from alignlib.experiments.sweep import RUN_OVERHEAD_S, run_id

# synthetic benchmark data: the tiny preset's shapes (16 words, 40 audio and 48 video frames per clip)
SIZES = {"default": {"data": {"preset": "tiny", "n_clips": 100, "seed": 0},  # 60 / 20 / 20 clips
                     "epochs": 1, "batch_size": 32, "d_model": 16, "n_layers": 1},
         "full": {"data": {"preset": "tiny", "n_clips": 2000, "seed": 0},  # 1200 / 400 / 400 clips
                  "epochs": 6, "batch_size": 32, "d_model": 32, "n_layers": 2}}
# seconds per training epoch per 1000 clips of the tiny shapes at d_model 32 (this project's 2-core
# CPU, one epoch of alignlib.train on 1000 clips); used only for the printed estimate
EPOCH_SECONDS_PER_1000 = {"alignmamba1": 1.0, "alignmamba2": 4.7, "concat": 1.9, "multistream": 2.1}


def training_run(label: str, model: str, options: dict, seed: int, settings: dict, **factors) -> dict:
    """A grid's run: ``model`` with model ``options`` trained at the sizes of ``settings`` (as :data:`SIZES`)."""
    return {"id": run_id(label, seed), "kind": "train",
            "factors": {"variant": label, "model": model, **factors, "seed": seed},
            "data": settings["data"],
            "train": {"model": model, "epochs": settings["epochs"], "batch_size": settings["batch_size"],
                      "patience": settings["epochs"], "seed": seed,
                      "model_options": {"d_model": settings["d_model"], "n_layers": settings["n_layers"], **options}}}


def ensure_data(spec: dict, root: Path) -> Path:
    """The synthetic data file a run asks for, generated once under ``root/data``."""
    from alignlib.data import synthetic

    path = root / "data" / f"synthetic_{spec['preset']}_{spec['n_clips'] or 'preset'}_seed{spec['seed']}.pkl"
    if not path.exists():
        synthetic.write(path, *synthetic.generate(spec["preset"], spec["seed"], spec["n_clips"]))
    return path


def train_config(run: dict, root: Path, device: str, **fields):
    """The :class:`alignlib.train.TrainConfig` of ``run``: its data under ``root/data``, its folder
    ``root/runs/<sweep>/<id>`` (ids are unique within a sweep, and sweeps can share ``root``)."""
    from alignlib.train import TrainConfig

    out = root / "runs" / run.get("sweep", "") / run["id"]
    return TrainConfig(**run["train"], data=str(ensure_data(run["data"], root)), out=str(out), device=device, **fields)


def recorded(config, root: Path) -> dict:
    """``config`` as the results JSON records it: a dict, its paths relative to ``root``."""
    return {**dataclasses.asdict(config), "data": os.path.relpath(config.data, root), "out": os.path.relpath(config.out, root)}


def execute(run: dict, root: Path, device: str) -> tuple[dict, list[dict]]:
    """Train (resuming an interrupted run from its ``last.pt``); one row, the test metrics."""
    from alignlib.train import train

    config = train_config(run, root, device, resume=True)
    return recorded(config, root), [{"metrics": train(config, progress=False)}]


def estimate(run: dict) -> float:
    """Seconds of a training run on this project's 2-core CPU, from :data:`EPOCH_SECONDS_PER_1000`."""
    from alignlib.data import synthetic

    data, train = run["data"], run["train"]
    clips = data["n_clips"] or sum(synthetic.PRESETS[data["preset"]]["splits"])
    width = train["model_options"]["d_model"] / 32
    return RUN_OVERHEAD_S + EPOCH_SECONDS_PER_1000[train["model"]] * clips / 1000 * width * train["epochs"]
