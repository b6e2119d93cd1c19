"""The emma sweep (notebook 09): EMMA's pixel-wise alignment and multi-scale feature fusion at
teaching scale, the four variants (baseline, +pixel, +MFF, +both) trained once per seed through
:func:`alignlib.models.emma.train_and_score`, as notebook 09 runs them. The default profile is
notebook 09's parameters cell, the full one its ``notebooks/params/09_emma.full.yaml`` (test scenes
use ``data_seed + 1``, as in the notebook)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from alignlib.experiments.sweep import RUN_OVERHEAD_S, Sweep, SweepError, run_id

PIXEL_WEIGHT = 1.0  # lambda of the pixel-wise alignment loss
VARIANTS = {"baseline": {}, "+pixel": {"pixel_weight": PIXEL_WEIGHT}, "+MFF": {"mff": True},
            "+both (EMMA)": {"pixel_weight": PIXEL_WEIGHT, "mff": True}}
# seconds per EMMA training step per scene of the batch at d_model 64 and 4 layers (one thread;
# a full run, 4000 steps of 128 scenes with evaluation and probes, took 634 s); for the estimate only
SECONDS_PER_SCENE_STEP = 1.2e-3


def grid(settings: dict) -> list[dict]:
    """The four variants, each trained once per seed; a run carries every setting but the seeds."""
    sizes = {k: v for k, v in settings.items() if k != "seeds"}
    return [{"id": run_id(label, seed), "kind": "emma", "factors": {"variant": label, "seed": seed},
             "emma": {**sizes, "options": options, "seed": seed}}
            for label, options in VARIANTS.items() for seed in settings["seeds"]]


def execute(run: dict, root: Path, device: str) -> tuple[dict, list[dict]]:
    """One variant and seed: test scores, probe R² per layer and the mean loss parts of the last 5 % of the steps."""
    from alignlib.data.digit_scenes import make_digit_scenes
    from alignlib.models.emma import EmmaConfig, train_and_score

    if device != "cpu":
        raise SweepError(f"the emma sweep runs on the CPU only, got --device {device}")
    s = run["emma"]
    train_data = make_digit_scenes(s["n_train"], "train", seed=s["data_seed"])
    test_data = make_digit_scenes(s["n_test"], "test", seed=s["data_seed"] + 1)
    config = EmmaConfig(patch_size=s["patch_size"], d_model=s["d_model"], n_layers=s["n_layers"], **s["options"])
    result = train_and_score(config, train_data, test_data, train_data.subset(slice(0, s["probe_scenes"])),
                             s["train_steps"], s["batch_size"], s["learning_rate"], seed=s["seed"], progress=False)
    tail = result.history[-max(1, len(result.history) // 20):]  # the last 5 % of the steps
    metrics = {**result.scores, **{f"probe_r2_layer{k}": float(v) for k, v in enumerate(result.r2)},
               **{f"final_{part}_loss": float(np.mean([h[part] for h in tail])) for part in tail[0]}}
    return s, [{"metrics": metrics}]


def estimate(run: dict) -> float:
    e = run["emma"]
    size = e["d_model"] / 64 * e["n_layers"] / 4
    return RUN_OVERHEAD_S + SECONDS_PER_SCENE_STEP * e["train_steps"] * e["batch_size"] * size


SWEEP = Sweep(
    name="emma",
    reproduces="EMMA: pixel-wise alignment and multi-scale fusion (baseline, +pixel, +MFF, +both)",
    profiles={"default": {"n_train": 4000, "n_test": 900, "probe_scenes": 1000, "data_seed": 0, "patch_size": 8,
                          "d_model": 32, "n_layers": 3, "train_steps": 400, "batch_size": 64, "learning_rate": 3e-3,
                          "seeds": (0,)},
              "full": {"n_train": 20000, "n_test": 3000, "probe_scenes": 2000, "data_seed": 0, "patch_size": 8,
                       "d_model": 64, "n_layers": 4, "train_steps": 4000, "batch_size": 128, "learning_rate": 3e-3,
                       "seeds": (0, 1, 2)}},
    grid=grid, execute=execute, estimate=estimate, notebook="09_emma")
