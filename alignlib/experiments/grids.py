"""The four sweeps, each a declared grid of runs per profile (``default``: CPU minutes for the
notebook and CI; ``full``: the committed results, at most two hours in all on a 2-core CPU).

A run is a JSON-able dict: ``id`` (unique in its sweep), ``kind`` (``train`` or ``efficiency``),
``factors`` (what the plots and tables group by) and the settings its executor needs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from alignlib.align.ot import BLUR
from alignlib.data import synthetic

PROFILES = ("default", "full")
# synthetic benchmark data: the tiny preset's shapes (16 words, 40 audio and 48 video frames per clip)
DATA = {"default": {"preset": "tiny", "n_clips": 100, "seed": 0},  # 60 / 20 / 20 clips
        "full": {"preset": "tiny", "n_clips": 2000, "seed": 0}}  # 1200 / 400 / 400 clips
TRAINING = {"default": {"epochs": 1, "batch_size": 32, "d_model": 16, "n_layers": 1},
            "full": {"epochs": 6, "batch_size": 32, "d_model": 32, "n_layers": 2}}
SEEDS = {"ablations": {"default": (0, 1), "full": (0, 1, 2)},
         "missing": {"default": (0, 1), "full": (0, 1, 2, 3, 4)},
         "lambda": {"default": (0, 1), "full": (0, 1)},
         "emma": {"default": (0,), "full": (0, 1, 2)},
         "inside": {"default": (0,), "full": (0, 1, 2)}}
MISSING_RATES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # AlignMamba-1 Table 1 (0 added as the reference)
MISSING_MODELS = ("alignmamba1", "alignmamba2", "concat", "multistream")
LAMBDAS = {"default": (0.0, 1e-2, 1.0), "full": (0.0, 1e-3, 1e-2, 1e-1)}  # log grid with 0, both axes
EFFICIENCY_MODELS = ("alignmamba1", "alignmamba2", "mult")
EFFICIENCY = {  # tokens per modality; each point a subprocess with its own time and memory limit
    "default": {"lengths": (256, 512, 1024), "d_model": 16, "n_layers": 2, "repeats": 3,
                "time_limit_s": 20, "memory_limit_mib": 2048},
    "full": {"lengths": (1024, 2048, 4096, 8192, 16384, 32768, 65536, 100000), "d_model": 64, "n_layers": 2,
             "repeats": 10, "time_limit_s": 120, "memory_limit_mib": 8192},
}
# Inside trained models (notebook 07): each variant trained with a checkpoint per epoch, every
# checkpoint's plans scored against the synthetic truth on the first `clips` test clips. The full
# profile is MOSI-sized clips (660 of them, as benchmarks/results/model_table_660.json) at a CPU
# budget: the paper's 40 epochs at width 128 would take days here.
INSIDE = {"default": {"data": {"preset": "tiny", "n_clips": None, "seed": 0}, "epochs": 3, "batch_size": 16,
                      "d_model": 16, "n_layers": 2, "clips": 8, "blur": BLUR},
          "full": {"data": {"preset": "mosi", "n_clips": 660, "seed": 0}, "epochs": 3, "batch_size": 32,
                   "d_model": 64, "n_layers": 2, "clips": 12, "blur": BLUR}}
INSIDE_VARIANTS = {"AM2 with losses": ("alignmamba2", {}), "AM2 without losses": ("alignmamba2", {"align_loss": False}),
                   "AM2 OT weight 1": ("alignmamba2", {"lambda_ot": 1.0}), "AlignMamba-1": ("alignmamba1", {}),
                   "AM2 learned routing": ("alignmamba2", {"routing": "learned"})}
# EMMA at teaching scale (notebook 09): the default profile is notebook 09's defaults, the full one
# its notebooks/params/09_emma.full.yaml; test scenes use data_seed + 1, as in the notebook
EMMA = {"default": {"n_train": 4000, "n_test": 900, "probe_scenes": 1000, "data_seed": 0, "patch_size": 8,
                    "d_model": 32, "n_layers": 3, "train_steps": 400, "batch_size": 64, "learning_rate": 3e-3},
        "full": {"n_train": 20000, "n_test": 3000, "probe_scenes": 2000, "data_seed": 0, "patch_size": 8,
                 "d_model": 64, "n_layers": 4, "train_steps": 4000, "batch_size": 128, "learning_rate": 3e-3}}
PIXEL_WEIGHT = 1.0  # lambda of the pixel-wise alignment loss
EMMA_VARIANTS = {"baseline": {}, "+pixel": {"pixel_weight": PIXEL_WEIGHT}, "+MFF": {"mff": True},
                 "+both (EMMA)": {"pixel_weight": PIXEL_WEIGHT, "mff": True}}
# seconds per EMMA training step per scene of the batch at d_model 64 and 4 layers (one thread;
# a full run, 4000 steps of 128 scenes with evaluation and probes, took 634 s); for the estimate only
EMMA_SECONDS_PER_SCENE_STEP = 1.2e-3
# seconds per training epoch per 1000 clips of the tiny shapes at d_model 32 (this project's 2-core
# CPU, one epoch of alignlib.train on 1000 clips); used only for the printed estimate
EPOCH_SECONDS_PER_1000 = {"alignmamba1": 1.0, "alignmamba2": 4.7, "concat": 1.9, "multistream": 2.1}
RUN_OVERHEAD_S = 1.0  # model build, data load, validation and test evaluation
POINT_OVERHEAD_S = 5.0  # an efficiency point's process start (imports)
# the inside sweep's estimate, for MOSI-sized clips (an upper bound for the tiny ones): seconds per
# epoch at d_model 64 (benchmarks/results/training_cpu.json), and per scored clip and checkpoint
MOSI_EPOCH_SECONDS = {"alignmamba1": 7.9, "alignmamba2": 45.5}  # with its validation and test evaluation
INSIDE_SECONDS_PER_CLIP = {"alignmamba1": 0.25, "alignmamba2": 1.0}


def parameter_count(model: str, dims: dict, options: dict) -> int:
    """Trainable parameters of ``build_model(model, dims, ModelConfig(**options))``."""
    from alignlib.models.sentiment import ModelConfig, build_model

    return sum(p.numel() for p in build_model(model, dims, ModelConfig.from_dict(options)).parameters())


def matched_width(dims: dict, options: dict) -> int:
    """The ``d_model`` at which AlignMamba-2 with vanilla Mamba fusion (``moe=False``) has the
    parameter count closest to AlignMamba-2 with Modality-Aware Mamba at ``options["d_model"]``.

    ``d_model`` is the only width option, so the whole vanilla model widens (projections, unimodal
    layers, head), not just the fusion layers: the match is on total parameters. The count grows
    with the width, so the search walks up from the MoE model's width until it passes the target.
    """
    target = parameter_count("alignmamba2", dims, {**options, "moe": True})
    width, best = options["d_model"], None
    while True:
        count = parameter_count("alignmamba2", dims, {**options, "moe": False, "d_model": width})
        if best is None or abs(count - target) < abs(best[1] - target):
            best = (width, count)
        if count >= target:
            return best[0]
        width += 1


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _training_run(label: str, model: str, options: dict, seed: int, profile: str, **factors) -> dict:
    p = TRAINING[profile]
    return {"id": f"{_slug(label)}-seed{seed}", "kind": "train",
            "factors": {"variant": label, "model": model, **factors, "seed": seed},
            "data": DATA[profile],
            "train": {"model": model, "epochs": p["epochs"], "batch_size": p["batch_size"], "patience": p["epochs"],
                      "seed": seed, "model_options": {"d_model": p["d_model"], "n_layers": p["n_layers"], **options}}}


def ablation_variants(profile: str) -> list[tuple[str, str, dict]]:
    """``(label, model, model options)``: AlignMamba-2's Table 3 (with OT and MMD apart and a
    parameter-matched vanilla fusion) and AlignMamba-1's alignment ablations (its Table 3)."""
    base = {"d_model": TRAINING[profile]["d_model"], "n_layers": TRAINING[profile]["n_layers"]}
    matched = matched_width(synthetic.PRESETS[DATA[profile]["preset"]]["dims"], base)
    return [
        ("AlignMamba-2", "alignmamba2", {}),
        ("w/o OT loss", "alignmamba2", {"lambda_ot": 0.0}),
        ("w/o MMD loss", "alignmamba2", {"lambda_mmd": 0.0}),
        ("w/o dual alignment loss", "alignmamba2", {"align_loss": False}),
        ("w/o Modality-Aware Mamba", "alignmamba2", {"moe": False}),
        (f"w/o Modality-Aware Mamba, parameter-matched (d_model {matched})", "alignmamba2",
         {"moe": False, "d_model": matched}),
        ("w/o both", "alignmamba2", {"align_loss": False, "moe": False}),
        ("w/ learnable routing", "alignmamba2", {"routing": "learned"}),
        ("AlignMamba-1", "alignmamba1", {}),
        ("AlignMamba-1 w/o local OT", "alignmamba1", {"local_ot": False}),
        ("AlignMamba-1 w/o global MMD", "alignmamba1", {"lambda_mmd": 0.0}),
    ]


def ablation_runs(profile: str) -> list[dict]:
    return [_training_run(label, model, options, seed, profile)
            for label, model, options in ablation_variants(profile) for seed in SEEDS["ablations"][profile]]


def missing_runs(profile: str) -> list[dict]:
    """Each model trained on complete data, then tested at every missing rate (one run per seed)."""
    return [{**_training_run(model, model, {}, seed, profile), "test_missing_rates": list(MISSING_RATES)}
            for model in MISSING_MODELS for seed in SEEDS["missing"][profile]]


def lambda_runs(profile: str) -> list[dict]:
    grid = LAMBDAS[profile]
    return [_training_run(f"ot {ot:g} mmd {mmd:g}", "alignmamba2", {"lambda_ot": ot, "lambda_mmd": mmd}, seed, profile,
                          lambda_ot=ot, lambda_mmd=mmd)
            for ot in grid for mmd in grid for seed in SEEDS["lambda"][profile]]


def efficiency_runs(profile: str) -> list[dict]:
    p = EFFICIENCY[profile]
    settings = {k: p[k] for k in ("d_model", "n_layers", "repeats", "time_limit_s", "memory_limit_mib")}
    return [{"id": f"{model}-L{length}", "kind": "efficiency", "factors": {"model": model, "length": length},
             "efficiency": {"model": model, "length": length, **settings}}
            for model in EFFICIENCY_MODELS for length in p["lengths"]]


def inside_runs(profile: str) -> list[dict]:
    """The trained models of notebook 07, each with every epoch's checkpoint analysed."""
    p = INSIDE[profile]
    return [{"id": f"{_slug(label)}-seed{seed}", "kind": "inside", "factors": {"variant": label, "model": model,
                                                                                "seed": seed},
             "data": p["data"], "analysis": {"clips": p["clips"], "blur": p["blur"]},
             "train": {"model": model, "epochs": p["epochs"], "batch_size": p["batch_size"], "patience": p["epochs"],
                       "seed": seed, "model_options": {"d_model": p["d_model"], "n_layers": p["n_layers"], **options}}}
            for label, (model, options) in INSIDE_VARIANTS.items() for seed in SEEDS["inside"][profile]]


def emma_runs(profile: str) -> list[dict]:
    """The four EMMA variants of notebook 09, each trained once per seed."""
    return [{"id": f"{_slug(label)}-seed{seed}", "kind": "emma", "factors": {"variant": label, "seed": seed},
             "emma": {**EMMA[profile], "options": options, "seed": seed}}
            for label, options in EMMA_VARIANTS.items() for seed in SEEDS["emma"][profile]]


@dataclass(frozen=True)
class Sweep:
    name: str
    reproduces: str
    runs: Callable[[str], list[dict]]
    notebook: str = "08_paper_experiments"  # the notebook that shows the sweep


SWEEPS = {
    "ablations": Sweep("ablations", "AlignMamba-2 Table 3; AlignMamba-1 Table 3 (alignment rows)", ablation_runs),
    "missing": Sweep("missing", "AlignMamba-1 Table 1 (missing modalities at test time)", missing_runs),
    "lambda": Sweep("lambda", "AlignMamba-2 Fig. 6 (lambda_OT x lambda_MMD sensitivity)", lambda_runs),
    "efficiency": Sweep("efficiency", "AlignMamba-2 Fig. 4/5; AlignMamba-1 Fig. 3/4 (memory, latency vs length)",
                        efficiency_runs),
    "emma": Sweep("emma", "EMMA: pixel-wise alignment and multi-scale fusion (baseline, +pixel, +MFF, +both)",
                  emma_runs, notebook="09_emma"),
    "inside": Sweep("inside", "AlignMamba-2's claim that its OT and MMD losses align each frame with its word "
                    "(against the synthetic truth), and its experts' activity", inside_runs,
                    notebook="07_inside_trained_models"),
}


def estimate_seconds(run: dict) -> float:
    """A rough duration of one run on this project's 2-core CPU (an upper bound for efficiency points)."""
    if run["kind"] == "efficiency":
        return POINT_OVERHEAD_S + run["efficiency"]["time_limit_s"]
    if run["kind"] == "emma":
        e = run["emma"]
        size = e["d_model"] / 64 * e["n_layers"] / 4
        return RUN_OVERHEAD_S + EMMA_SECONDS_PER_SCENE_STEP * e["train_steps"] * e["batch_size"] * size
    data, train = run["data"], run["train"]
    if run["kind"] == "inside":  # training, a test evaluation per epoch and the plans of every checkpoint
        clips = (data["n_clips"] or sum(synthetic.PRESETS[data["preset"]]["splits"])) / sum(synthetic.PRESETS["mosi"]["splits"])
        epoch = MOSI_EPOCH_SECONDS[train["model"]] * train["model_options"]["d_model"] / 64 * clips
        plans = INSIDE_SECONDS_PER_CLIP[train["model"]] * run["analysis"]["clips"]
        return RUN_OVERHEAD_S + train["epochs"] * epoch + (train["epochs"] + 1) * plans  # epoch 0 is scored too
    clips = data["n_clips"] or sum(synthetic.PRESETS[data["preset"]]["splits"])
    width = train["model_options"]["d_model"] / 32
    return RUN_OVERHEAD_S + EPOCH_SECONDS_PER_1000[train["model"]] * clips / 1000 * width * train["epochs"]
