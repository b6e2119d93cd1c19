"""The learned-alignment sweep (notebook 10): AlignMamba-1 on MOSI-length clips with the paper's
relaxed plan, the plan it learns without the tables (:class:`alignlib.align.monotone.MonotoneAligner`),
and the oracle and shuffled controls; the oracle plan again in a model twice as wide trained at lr
3e-3 (in the full profile three times TrainConfig's lr, at which the others train; the default profile
trains every run at 3e-3); the learned plan again on a second data seed. Each run keeps a checkpoint
per epoch; every checkpoint's own plan (epoch 0 being the initial model) is scored
against the true frame-to-word tables on the first test clips, and the last row adds the test
metrics of the checkpoint best on validation and its correspondence on every test clip."""
from __future__ import annotations

import json
from pathlib import Path

from alignlib.experiments import training
from alignlib.experiments.sweep import Sweep

VARIANTS = {"relaxed plan (paper)": {"plan": "relaxed"}, "learned plan": {"plan": "learned"},
            "oracle plan": {"plan": "oracle"}, "shuffled plan": {"plan": "shuffled"}}
SECOND_DATA = "learned plan, data seed 1"
TUNED_ORACLE = "oracle plan, twice as wide, lr 3e-3"
EPOCH_SECONDS = {"default": 1.0, "full": 15.0}  # an epoch with its evaluations, this project's CPU, one thread


def grid(settings: dict) -> list[dict]:
    runs = [training.references_run(settings)]
    for label, options in VARIANTS.items():
        runs += [training.training_run(label, "alignmamba1", options, seed, settings) for seed in settings["seeds"]]
    tuned = {**settings, "d_model": 2 * settings["d_model"], "lr": 3e-3}
    runs += [training.training_run(TUNED_ORACLE, "alignmamba1", VARIANTS["oracle plan"], seed, tuned)
             for seed in settings["seeds"]]
    second = {**settings, "data": {**settings["data"], "seed": 1}}
    runs += [training.training_run(SECOND_DATA, "alignmamba1", VARIANTS["learned plan"], seed, second, data_seed=1)
             for seed in settings["seeds"]]
    return [{**run, "kind": "learned", "analysis": {"clips": settings["clips"]}} if run["kind"] == "train" else run
            for run in runs]


@training.with_references
def execute(run: dict, root: Path, device: str) -> tuple[dict, list[dict]]:
    """Train keeping every epoch's checkpoint; one row per checkpoint with its own plan's accuracy
    (``audio_model``, ``vision_model``) and the proportional guess (``*_proportional``) on the first
    test clips; the last row adds the test metrics and :func:`training.correspondence_metrics`."""
    from alignlib import analysis
    from alignlib.data import load_mmsa
    from alignlib.models.checkpoint import load_model

    config = training.train_config(run, root, device)
    kept = analysis.train_keeping_epochs(config)
    test = load_mmsa(config.data).splits["test"]
    clips = range(min(run["analysis"]["clips"], len(test)))
    models = [analysis.initial_model(config)] + [load_model(path)[0] for path in kept]
    rows = []
    for epoch, model in enumerate(models):
        found = analysis.correspondences(model, test, test.alignment, clips, methods=("proportional",))
        rows.append({"epoch": epoch, "metrics": {f"{m}_{k}": v for m, scores in found.accuracy.items()
                                                  for k, v in scores.items()}})
    tested = json.loads((Path(config.out) / "test_metrics.json").read_text())
    rows[-1]["metrics"].update({f"test_{k}": v for k, v in tested.items() if k not in ("epoch", "test_missing_rate")},
                               test_best_epoch=tested["epoch"], **training.correspondence_metrics(config))
    return {**training.recorded(config, root), "analysis": run["analysis"]}, rows


def estimate(run: dict) -> float:
    if run["kind"] == "references":
        return training.estimate(run)
    profile = "full" if run["data"]["preset"] == "mosi" else "default"
    width = run["train"]["model_options"]["d_model"] / SWEEP.profiles[profile]["d_model"]
    return EPOCH_SECONDS[profile] * width * min(run["train"]["epochs"], training.EXPECTED_EPOCHS)


SWEEP = Sweep(
    name="learned",
    reproduces="beyond the papers: a frame-to-word alignment learned without the tables, beside AlignMamba-1's "
               "relaxed plan and the oracle and shuffled controls",
    profiles={"default": {**training.SIZES["default"], "data": {"preset": "tiny", "n_clips": 600, "seed": 0},
                          "d_model": 16, "clips": 60, "seeds": (0,)},
              "full": {"data": {"preset": "mosi", "n_clips": None, "seed": 0}, "epochs": 60, "patience": 8,
                       "max_steps": 2400, "batch_size": 32, "d_model": 64, "n_layers": 2, "clips": 120,
                       "seeds": (0, 1, 2)}},
    grid=grid, execute=execute, estimate=estimate, notebook="10_learned_alignment")
