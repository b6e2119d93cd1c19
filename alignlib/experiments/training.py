"""Training runs, as the training sweeps declare them: the synthetic data and sizes of each profile,
a run's entry in a grid, its executor (:func:`alignlib.train.train`, resuming an interrupted run
from its ``last.pt``; then, where the data has its frame-to-word tables, the correspondence the
model found) and its time estimate; and each sweep's reference lines (a ``references`` run:
:func:`alignlib.data.references.score_references` on the sweep's data), with :func:`reference_summary`."""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path

from alignlib.experiments.sweep import RUN_OVERHEAD_S, locked, run_id

# synthetic benchmark data with the tiny preset's shapes (16 words, 40 audio and 48 video frames per
# clip). The full profile trains to convergence (early stopping after `patience` epochs without a
# better validation MAE, within `max_steps` optimiser steps) on the short preset: MOSI's 2199 clips and
# feature widths; an epoch costs about a tenth of a MOSI-length one, so sweeps of a hundred converged
# runs fit on this 2-core CPU.
# The default profile (CI, the notebooks) is a few seconds a run: 300 tiny clips, a higher learning
# rate (a profile without "lr" trains at TrainConfig's).
SIZES = {"default": {"data": {"preset": "tiny", "n_clips": 300, "seed": 0},  # 180 / 60 / 60 clips
                     "epochs": 10, "patience": 3, "max_steps": 0, "batch_size": 32, "lr": 3e-3, "d_model": 16,
                     "n_layers": 1},
         "full": {"data": {"preset": "short", "n_clips": None, "seed": 0},  # 1284 / 229 / 686 clips
                  "epochs": 60, "patience": 8, "max_steps": 2400, "batch_size": 32, "d_model": 32, "n_layers": 2}}
# seconds per training epoch per 1000 clips of the tiny shapes at d_model 32 (this project's 2-core
# CPU, one epoch of alignlib.train on 1000 clips); used only for the printed estimate
EPOCH_SECONDS_PER_1000 = {"alignmamba1": 1.5, "alignmamba2": 4.7, "concat": 1.9, "multistream": 2.1,
                          "coupled": 4.0, "mult": 1.5}
EXPECTED_EPOCHS = 30  # a converged run's epochs, for the estimate when the profile allows more
CONVERGENCE = ("optimizer_steps", "epochs_run", "stopped_by", "valid_flat")  # how a run ended (alignlib.train.convergence)


def training_run(label: str, model: str, options: dict, seed: int, settings: dict, **factors) -> dict:
    """A grid's run: ``model`` with model ``options`` trained at the sizes of ``settings`` (as :data:`SIZES`)."""
    return {"id": run_id(label, seed), "kind": "train",
            "factors": {"variant": label, "model": model, **factors, "seed": seed},
            "data": settings["data"],
            "train": {"model": model, "epochs": settings["epochs"], "batch_size": settings["batch_size"],
                      "patience": settings["patience"], "max_steps": settings["max_steps"], "seed": seed,
                      **({"lr": settings["lr"]} if "lr" in settings else {}),  # else TrainConfig's
                      "model_options": {"d_model": settings["d_model"], "n_layers": settings["n_layers"], **options}}}


def ensure_data(spec: dict, root: Path) -> Path:
    """The synthetic data file a run asks for (``preset``, ``n_clips``, ``seed`` and any difficulty
    knobs, :class:`alignlib.data.synthetic.Difficulty`), generated once under ``root/data`` (under a
    lock: runs of one sweep may start together, as scheduler jobs)."""
    from alignlib.data import synthetic

    difficulty = synthetic.Difficulty(**{knob: spec[knob] for knob in synthetic.KNOB_LIMITS if knob in spec})
    name = f"synthetic_{spec['preset']}_{spec['n_clips'] or 'preset'}_seed{spec['seed']}{difficulty.suffix}.pkl"
    path = root / "data" / name
    with locked(path):
        if not path.exists():
            synthetic.write(path, *synthetic.generate(spec["preset"], spec["seed"], spec["n_clips"], **vars(difficulty)))
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


def references_run(settings: dict, data_seed: int | None = None) -> dict:
    """The grid's ``references`` run: the reference lines of the sweep's data (3 seeds); with
    ``data_seed``, of that data seed's file (id ``references-data-seed-<k>``, factor ``data_seed``)."""
    if data_seed is None:
        return {"id": "references", "kind": "references", "factors": {"variant": "references", "model": "references"},
                "data": settings["data"]}
    return {"id": f"references-data-seed-{data_seed}", "kind": "references",
            "factors": {"variant": "references", "model": "references", "data_seed": data_seed},
            "data": {**settings["data"], "seed": data_seed}}


def with_references(execute):
    """An executor that also runs a grid's :func:`references_run` (one row per reference and seed)."""
    def run_or_reference(run: dict, root: Path, device: str) -> tuple[dict, list[dict]]:
        if run["kind"] != "references":
            return execute(run, root, device)
        from alignlib.data.references import score_references

        path = ensure_data(run["data"], root)
        rows = [{"reference": name, "reference_seed": seed, "metrics": metrics}
                for name, per_seed in score_references(path).items() for seed, metrics in enumerate(per_seed)]
        return {"data": os.path.relpath(path, root)}, rows
    return run_or_reference


def split(record: dict):
    """``(references, runs)``: a sweep record's :func:`~alignlib.experiments.sweep.tidy` rows of its
    ``references`` run (the data's reference lines; empty for a sweep without one) and of its trained runs."""
    from alignlib.experiments.sweep import tidy

    table = tidy(record)
    is_reference = table.variant == "references" if "variant" in table else table.index < 0
    return table[is_reference], table[~is_reference]


def reference_summary(record: dict, data_seed: int = 0):
    """The reference lines of a sweep's record on its data seed ``data_seed`` (a references run
    without a ``data_seed`` factor is on seed 0): :func:`~alignlib.experiments.stats.summary` per
    reference (None for a record without them)."""
    from alignlib.experiments import stats

    references, _ = split(record)
    if "data_seed" in references:
        references = references[references.data_seed.fillna(0) == data_seed]
    return stats.summary(references, ["reference"]) if len(references) else None


def label_noise_floor(record: dict, data_seed: int = 0) -> float | None:
    """The analytic label-noise floor (test MAE, :func:`alignlib.data.references.label_noise_floor`)
    of the synthetic data that the record's references run on ``data_seed`` scored (regenerated from
    its seed: a second or two); None for a record without such a run."""
    runs = [run for run in record["grid"] if run["kind"] == "references"
            and run["factors"].get("data_seed", 0) == data_seed]
    return _floor(json.dumps(runs[0]["data"], sort_keys=True)) if runs else None


@functools.lru_cache(maxsize=8)
def _floor(spec: str) -> float:
    from alignlib.data import references, synthetic

    data = json.loads(spec)
    knobs = {knob: data[knob] for knob in synthetic.KNOB_LIMITS if knob in data}
    return references.label_noise_floor(synthetic.generate(data["preset"], data["seed"], data["n_clips"], **knobs)[1])


def trained_runs(record: dict):
    """The trained models' rows of a record (:func:`split` without its references)."""
    return split(record)[1]


def reference_rows(summary, references, group: str, metric: str = "MAE"):
    """Where each ``group`` of a :func:`~alignlib.experiments.stats.summary` table lies against its
    data's reference lines, one row per group (lower ``metric`` is better): ``mean, ci_low, ci_high``,
    ``position`` (``below`` the ``set_level`` line: it uses alignment; ``on`` it: its interval covers
    the line; ``above`` it), ``to_bound`` (the share of the way from ``set_level`` to ``bound``) and
    the lines themselves. Empty when ``references`` is None."""
    import pandas as pd

    columns = [group, "mean", "ci_low", "ci_high", "position", "to_bound", "set_level", "bound"]
    if references is None:
        return pd.DataFrame(columns=columns)
    lines = references[references.metric == metric].set_index("reference")["mean"]
    set_level, bound = lines["set_level"], lines["bound"]
    rows = []
    for _, row in summary[summary.metric == metric].iterrows():
        high = row.ci_high if row.ci_high == row.ci_high else row["mean"]
        low = row.ci_low if row.ci_low == row.ci_low else row["mean"]
        position = "below" if high < set_level else "above" if low > set_level else "on"
        rows.append({group: row[group], "mean": row["mean"], "ci_low": row.ci_low, "ci_high": row.ci_high,
                     "position": position, "to_bound": (set_level - row["mean"]) / (set_level - bound),
                     "set_level": set_level, "bound": bound})
    return pd.DataFrame(rows, columns=columns)


def reference_sentences(rows, group: str, metric: str = "MAE") -> list[str]:
    """:func:`reference_rows` in words, a sentence per group."""
    words = {"below": lambda r: (f"below set_level by {r.set_level - r['mean']:.3f}, {r.to_bound:.0%} of the way "
                                 "to bound: it uses alignment"),
             "above": lambda r: f"above set_level by {r['mean'] - r.set_level:.3f}",
             "on": lambda r: "on the set_level line (its interval covers it)"}
    return [f"{r[group]}: {metric} {r['mean']:.3f}, {words[r.position](r)}" for _, r in rows.iterrows()]


def correspondence_metrics(config) -> dict:
    """The correspondence that the run's best model found on every test clip: the share of frames
    whose heaviest plan entry is their true word (``correspondence_accuracy_{audio,vision}``;
    AlignMamba-1's own plan, the exact OT plan between AlignMamba-2's unimodal states), the mean of
    the per-clip shares with its 95 % t-interval over the clips (``..._clip_mean|low|high``), the
    spread of its states (``state_spread_{modality}``, :func:`alignlib.analysis.state_spread`) and,
    on data with pauses, how well it finds them (``pause_{precision,recall,f1}_{modality}``,
    :func:`alignlib.analysis.pause_detection`). Only the frames that have a word count for accuracy.
    Empty for data without tables or for models with no per-modality tokens."""
    from alignlib import analysis
    from alignlib.data import NO_WORD, load_mmsa
    from alignlib.experiments.stats import mean_ci
    from alignlib.models.checkpoint import load_model
    from alignlib.models.sentiment import AlignMamba1, AlignMamba2

    model = load_model(Path(config.out) / "best.pt")[0]
    test = load_mmsa(config.data).splits["test"]
    if test.alignment is None or not isinstance(model, (AlignMamba1, AlignMamba2)):
        return {}
    method = "model" if isinstance(model, AlignMamba1) else "exact"
    found = analysis.correspondences(model, test, test.alignment, range(len(test)),
                                     methods=() if method == "model" else ("exact",))
    per_clip = {m: mean_ci(found.clip_accuracy[m][method]) for m in analysis.SOURCES}
    return {**{f"correspondence_accuracy_{m}": found.accuracy[m][method] for m in analysis.SOURCES},
            **{f"correspondence_accuracy_{m}_clip_{k}": per_clip[m][i]
               for m in analysis.SOURCES for i, k in enumerate(("mean", "low", "high"))},
            **{f"state_spread_{m}": analysis.state_spread(state, found.masks[m]) for m, state in found.states.items()},
            **{f"pause_{k}_{m}": v for m in analysis.SOURCES if (test.alignment[m] == NO_WORD).any()
               for k, v in found.pauses[m][method].items()}}


@with_references
def execute(run: dict, root: Path, device: str) -> tuple[dict, list[dict]]:
    """Train (resuming an interrupted run from its ``last.pt``); one row, the test metrics, how the
    run ended and :func:`correspondence_metrics`."""
    from alignlib.train import train

    config = train_config(run, root, device, resume=True)
    metrics = train(config, progress=False)
    return recorded(config, root), [{"metrics": {**metrics, **correspondence_metrics(config)}}]


def estimate(run: dict) -> float:
    """Seconds of a training run on this project's 2-core CPU, from :data:`EPOCH_SECONDS_PER_1000`
    (at most :data:`EXPECTED_EPOCHS` epochs: early stopping ends most runs before the cap)."""
    from alignlib.data import synthetic

    if run["kind"] == "references":
        return 10.0
    data, train = run["data"], run["train"]
    clips = data["n_clips"] or sum(synthetic.PRESETS[data["preset"]]["splits"])
    width = train["model_options"]["d_model"] / 32
    epochs = min(train["epochs"], EXPECTED_EPOCHS)
    return RUN_OVERHEAD_S + EPOCH_SECONDS_PER_1000[train["model"]] * clips / 1000 * width * epochs
