"""The inside sweep (notebook 07): AlignMamba-2's claim that its OT and MMD losses align each frame
with its word, and its experts' activity. Each variant is trained with a checkpoint per epoch, and
every checkpoint (epoch 0 being the initial model) is summarised by
:func:`alignlib.analysis.checkpoint_summary` on the first test clips: its plans scored against the
synthetic truth, its alignment losses, expert shares and routing mutual information."""
from __future__ import annotations

import json
from pathlib import Path

from alignlib.align.ot import BLUR
from alignlib.experiments import training
from alignlib.experiments.sweep import RUN_OVERHEAD_S, Sweep

VARIANTS = {"AM2 with losses": ("alignmamba2", {}), "AM2 without losses": ("alignmamba2", {"align_loss": False}),
            "AM2 OT weight 1": ("alignmamba2", {"lambda_ot": 1.0}), "AlignMamba-1": ("alignmamba1", {}),
            "AM2 learned routing": ("alignmamba2", {"routing": "learned"}),
            "AlignMamba-1 learned plan": ("alignmamba1", {"plan": "learned"})}
# the estimate, for MOSI-sized clips (an upper bound for the tiny ones): seconds per epoch at
# d_model 64 (benchmarks/results/training_cpu.json), and per scored clip and checkpoint
MOSI_EPOCH_SECONDS = {"alignmamba1": 7.9, "alignmamba2": 45.5}  # with its validation and test evaluation
SECONDS_PER_CLIP = {"alignmamba1": 0.25, "alignmamba2": 1.0}


def grid(settings: dict) -> list[dict]:
    """The trained models of notebook 07, each with every epoch's checkpoint analysed, and the data's reference lines."""
    return [training.references_run(settings)] + [{**training.training_run(label, model, options, seed, settings), "kind": "inside",
             "analysis": {"clips": settings["clips"], "blur": settings["blur"]}}
            for label, (model, options) in VARIANTS.items() for seed in settings["seeds"]]


@training.with_references
def execute(run: dict, root: Path, device: str) -> tuple[dict, list[dict]]:
    """Train with a checkpoint per epoch (:func:`alignlib.analysis.train_keeping_epochs`, resumable
    epoch by epoch), then one row per checkpoint, epoch 0 being the initial model:
    :func:`alignlib.analysis.checkpoint_summary` on the first test clips, and on the last row the
    test metrics of the checkpoint best on validation (``test_*``, from epoch ``test_best_epoch``)."""
    from alignlib import analysis
    from alignlib.data import load_mmsa

    config = training.train_config(run, root, device)
    kept = analysis.train_keeping_epochs(config)
    test = load_mmsa(config.data).splits["test"]
    clips, blur = range(min(run["analysis"]["clips"], len(test))), run["analysis"]["blur"]
    rows = [{"epoch": epoch, "metrics": summary}
            for epoch, summary in enumerate(analysis.epoch_summaries(config, kept, test, test.alignment, clips, blur))]
    tested = json.loads((Path(config.out) / "test_metrics.json").read_text())  # the checkpoint best on validation
    rows[-1]["metrics"].update({f"test_{k}": v for k, v in tested.items()
                                if isinstance(v, (int, float)) and k not in ("epoch", "test_missing_rate")})
    rows[-1]["metrics"]["test_best_epoch"] = tested["epoch"]
    return {**training.recorded(config, root), "analysis": run["analysis"]}, rows


def estimate(run: dict) -> float:
    """Training, a test evaluation per epoch and the plans of every checkpoint (epoch 0's too)."""
    from alignlib.data import synthetic

    if run["kind"] == "references":
        return training.estimate(run)
    data, train = run["data"], run["train"]
    preset = synthetic.PRESETS[data["preset"]]
    length = sum(preset["lengths"].values()) / sum(synthetic.PRESETS["mosi"]["lengths"].values())
    clips = (data["n_clips"] or sum(preset["splits"])) / sum(synthetic.PRESETS["mosi"]["splits"])
    epoch = MOSI_EPOCH_SECONDS[train["model"]] * train["model_options"]["d_model"] / 64 * clips * length
    plans = SECONDS_PER_CLIP[train["model"]] * run["analysis"]["clips"] * length
    epochs = min(train["epochs"], training.EXPECTED_EPOCHS)
    return RUN_OVERHEAD_S + epochs * epoch + (epochs + 1) * plans


# Each variant on the first `clips` test clips. The full profile trains to convergence on the short
# preset (MOSI's clips and widths, 16-word clips; training.SIZES) and scores 200 test clips per epoch.
SWEEP = Sweep(
    name="inside",
    reproduces="AlignMamba-2's claim that its OT and MMD losses align each frame with its word "
               "(against the synthetic truth), and its experts' activity",
    profiles={"default": {"data": {"preset": "tiny", "n_clips": None, "seed": 0}, "epochs": 3, "patience": 3,
                          "max_steps": 0, "batch_size": 16, "d_model": 16, "n_layers": 2, "clips": 8, "blur": BLUR,
                          "seeds": (0,)},
              "full": {**training.SIZES["full"], "clips": 200, "blur": BLUR, "seeds": (0, 1, 2)}},
    grid=grid, execute=execute, estimate=estimate, notebook="07_inside_trained_models")
