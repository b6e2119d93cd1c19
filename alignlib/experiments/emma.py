"""The emma sweep (notebook 09): EMMA's pixel-wise alignment and multi-scale feature fusion at
teaching scale, the four variants (baseline, +pixel, +MFF, +both) trained once per seed through
:func:`alignlib.models.emma.train_and_score`, as notebook 09 runs them. The default profile is
notebook 09's parameters cell, the full one its ``notebooks/params/09_emma.full.yaml`` (test scenes
use ``data_seed + 1``, as in the notebook).

Notebook 09's view of the results: a tidy table of the runs (:func:`long_table`, with derived
metrics), per variant means and intervals over seeds (:func:`variant_summary`, :func:`accuracy_table`,
:func:`probe_table`), the image-blind answers they are measured against (:func:`image_blind`), whether
each variant learned to look (:func:`plateau`), each variant against the baseline paired over seeds
(:func:`paired`), the answer in words (:func:`summary`) and the figures; :func:`show` only displays."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignlib.experiments import stats
from alignlib.experiments.sweep import RUN_OVERHEAD_S, Sweep, SweepError, run_id

PIXEL_WEIGHT = 1.0  # lambda of the pixel-wise alignment loss


def variants(pixel_weight: float = PIXEL_WEIGHT) -> dict[str, dict]:
    """The four variants as :class:`~alignlib.models.emma.EmmaConfig` options, baseline first."""
    return {"baseline": {}, "+pixel": {"pixel_weight": pixel_weight}, "+MFF": {"mff": True},
            "+both (EMMA)": {"pixel_weight": pixel_weight, "mff": True}}


VARIANTS = variants()
# seconds per EMMA training step per scene of the batch at d_model 64 and 4 layers (one thread, two runs
# side by side: 4000 steps of 128 scenes with validation, evaluation and probes took 314-395 s); for the estimate only
SECONDS_PER_SCENE_STEP = 0.8e-3
# the metrics compared with the baseline, paired over seeds (each one a Holm family; see long_table)
COMPARED = ("accuracy", "false_yes_rate", "present_minus_false_yes", "probe_r2_layer0", "probe_r2_last", "probe_r2_change")
CHANCE_DIGIT_AT = 0.1  # a guess among the ten digits
# validation scenes of a run: new scenes from the training images (seed data_seed + 2), never the test images
VALID_SCENES = 1000
# how a run ended (alignlib.models.emma.convergence): recorded with its metrics, not compared as metrics
RUN_FIELDS = ("optimizer_steps", "stopped_by", "valid_flat")


def grid(settings: dict) -> list[dict]:
    """The four variants, each trained once per seed; a run carries every setting but the seeds."""
    sizes = {k: v for k, v in settings.items() if k != "seeds"}
    return [{"id": run_id(label, seed), "kind": "emma", "factors": {"variant": label, "seed": seed},
             "emma": {**sizes, "options": options, "seed": seed}}
            for label, options in VARIANTS.items() for seed in settings["seeds"]]


def run_metrics(result) -> dict[str, float]:
    """A trained variant's numbers (:class:`~alignlib.models.emma.VariantResult`): its test scores
    and the probe R² per layer (``probe_r2_layer0`` is the LM's input)."""
    return {**result.scores, **{f"probe_r2_layer{k}": float(v) for k, v in enumerate(result.r2)}}


@functools.lru_cache(maxsize=4)
def scenes(n: int, split: str, seed: int):
    """:func:`alignlib.data.digit_scenes.make_digit_scenes`, kept: a view builds each set once."""
    from alignlib.data.digit_scenes import make_digit_scenes

    return make_digit_scenes(n, split, seed=seed)


def data_of(spec: dict) -> dict:
    """A run's scenes from its sizes: ``train`` (seed ``data_seed``), ``test`` (the test images,
    ``data_seed + 1``) and ``valid`` (:data:`VALID_SCENES` new scenes from the training images,
    ``data_seed + 2``)."""
    seed = spec["data_seed"]
    return {"train": scenes(spec["n_train"], "train", seed), "test": scenes(spec["n_test"], "test", seed + 1),
            "valid": scenes(VALID_SCENES, "train", seed + 2)}


def execute(run: dict, root: Path, device: str) -> tuple[dict, list[dict]]:
    """One variant and seed: :func:`run_metrics`, the mean loss parts of the last 5 % of the steps,
    how the run ended (:func:`alignlib.models.emma.convergence`: ``optimizer_steps``, ``stopped_by``,
    ``valid_flat`` on :data:`VALID_SCENES` validation scenes) and the validation curve."""
    from alignlib.models.emma import EmmaConfig, convergence, train_and_score

    if device != "cpu":
        raise SweepError(f"the emma sweep runs on the CPU only, got --device {device}")
    s = run["emma"]
    data = data_of(s)
    train_data, test_data = data["train"], data["test"]
    config = EmmaConfig(patch_size=s["patch_size"], d_model=s["d_model"], n_layers=s["n_layers"], **s["options"])
    result = train_and_score(config, train_data, test_data, train_data.subset(slice(0, s["probe_scenes"])),
                             s["train_steps"], s["batch_size"], s["learning_rate"], seed=s["seed"], progress=False,
                             valid_data=data["valid"])
    tail = result.history[-max(1, len(result.history) // 20):]  # the last 5 % of the steps
    metrics = {**run_metrics(result), **{f"final_{part}_loss": float(np.mean([h[part] for h in tail])) for part in tail[0]},
               **convergence(result.history, result.valid_curve)}
    return s, [{"metrics": metrics, "valid_curve": result.valid_curve}]


def estimate(run: dict) -> float:
    e = run["emma"]
    size = e["d_model"] / 64 * e["n_layers"] / 4
    return RUN_OVERHEAD_S + SECONDS_PER_SCENE_STEP * e["train_steps"] * e["batch_size"] * size


# -- the image-blind answers ----------------------------------------------------------------------------
@dataclass
class ImageBlind:
    """The training set's most frequent answer per question template (``answers``: template index ->
    answer index; "present" and "absent" share one template), its test ``scores``
    (:func:`alignlib.models.emma.evaluate` plus ``present_minus_false_yes``) and the test questions
    per type (``counts``)."""

    answers: dict[int, int]
    scores: dict[str, float]
    counts: dict[str, int]


def templates(question_type):
    """Each question's template: its type, with "absent" counted as "present" (``(N,)`` -> ``(N,)``)."""
    from alignlib.data.digit_scenes import QUESTION_TYPES

    kind = question_type.clone()
    kind[kind == QUESTION_TYPES.index("absent")] = QUESTION_TYPES.index("present")
    return kind


def image_blind(train_data, test_data) -> ImageBlind:
    """The answers of a model that never looks at the image, and how they score on ``test_data``.
    A tie goes to the answer first in :data:`~alignlib.data.digit_scenes.ANSWERS` ("is there" is
    answered "yes" and "no" equally often in training: its image-blind answer is "yes")."""
    import torch

    from alignlib.data.digit_scenes import QUESTION_TYPES
    from alignlib.models.emma import evaluate

    train_template = templates(train_data.question_type)
    answers = {int(k): int(torch.bincount(train_data.answers[train_template == k]).argmax())
               for k in train_template.unique()}
    scores = evaluate(torch.tensor([answers[int(k)] for k in templates(test_data.question_type)]), test_data)
    scores["present_minus_false_yes"] = scores["accuracy_present"] - scores["false_yes_rate"]
    counts = torch.bincount(test_data.question_type, minlength=len(QUESTION_TYPES)).tolist()
    return ImageBlind(answers, scores, dict(zip(QUESTION_TYPES, counts)))


def record_blind(record: dict, scored_on: str = "test") -> ImageBlind:
    """:func:`image_blind` on a record's data, rebuilt from its recorded sizes (deterministic),
    scored on its ``test`` or ``valid`` scenes (:func:`data_of`)."""
    data = data_of(record["grid"][0]["emma"])
    return image_blind(data["train"], data[scored_on])


def scene_counts(datasets: dict):
    """Per named set of scenes: the questions of each type, and the share of "is there" answered "yes"."""
    import pandas as pd
    from alignlib.data.digit_scenes import ANSWER_INDEX, QUESTION_TYPES

    rows = {}
    for name, data in datasets.items():
        is_there = templates(data.question_type) == QUESTION_TYPES.index("present")
        counts = np.bincount(data.question_type.numpy(), minlength=len(QUESTION_TYPES))
        rows[name] = {**dict(zip(QUESTION_TYPES, counts.tolist())),
                      '"is there" answered "yes"': (data.answers[is_there] == ANSWER_INDEX["yes"]).float().mean().item()}
    return pd.DataFrame.from_dict(rows, orient="index")


# -- the results, per variant -------------------------------------------------------------------------
def run_ends(record: dict) -> dict | None:
    """How a record's runs ended (:data:`RUN_FIELDS`): ``steps`` (the distinct optimiser steps),
    ``flat`` (how many runs ended on a flat validation curve), ``runs`` and ``still_improving``
    (``variant (seed s)`` of the others); None for a record made before the runs recorded it."""
    runs = runs_of(record)
    if not all("valid_flat" in metrics for metrics in runs.values()):
        return None
    return {"steps": sorted({metrics["optimizer_steps"] for metrics in runs.values()}), "runs": len(runs),
            "flat": sum(bool(metrics["valid_flat"]) for metrics in runs.values()),
            "still_improving": [f"{variant} (seed {seed})" for (variant, seed), metrics in runs.items()
                                if not metrics["valid_flat"]]}


def runs_of(record: dict) -> dict[tuple[str, int], dict]:
    """A record's finished runs as ``{(variant, seed): metrics}``, in the grid's order."""
    if record.get("sweep") != "emma":
        raise ValueError(f"not a record of the emma sweep: its sweep is {record.get('sweep')!r}")
    runs = {(run["factors"]["variant"], run["factors"]["seed"]): record["runs"][run["id"]]["rows"][0]["metrics"]
            for run in record["grid"] if run["id"] in record["runs"]}
    if not runs:
        raise ValueError("the emma record has no finished runs yet")
    return runs


def long_table(runs: dict[tuple[str, int], dict]):
    """``{(variant, seed): metrics}`` -> one row per run and metric (``variant, seed, metric, value``;
    the :data:`RUN_FIELDS` of how a run ended are left out),
    variants in :data:`VARIANTS`' order, with three derived metrics per run: ``present_minus_false_yes``
    (``accuracy_present - false_yes_rate``: 0 for any answer that ignores the image), ``probe_r2_last``
    (the last layer's probe R²) and ``probe_r2_change`` (last minus layer 0)."""
    import pandas as pd

    rows = []
    for (variant, seed), metrics in runs.items():
        last = max(int(m.removeprefix("probe_r2_layer")) for m in metrics if m.startswith("probe_r2_layer"))
        derived = {"present_minus_false_yes": metrics["accuracy_present"] - metrics["false_yes_rate"],
                   "probe_r2_last": metrics[f"probe_r2_layer{last}"],
                   "probe_r2_change": metrics[f"probe_r2_layer{last}"] - metrics["probe_r2_layer0"]}
        rows += [{"variant": variant, "seed": seed, "metric": m, "value": float(v)}
                 for m, v in {**metrics, **derived}.items() if m not in RUN_FIELDS]
    table = pd.DataFrame(rows)
    order = {name: i for i, name in enumerate(VARIANTS)}
    return table.sort_values("variant", key=lambda v: v.map(order), kind="stable").reset_index(drop=True)


def variant_summary(table):
    """Per variant and metric: ``n``, ``mean``, ``ci_low``, ``ci_high`` (95 % t-interval over seeds)."""
    return stats.summary(table, ["variant"])


def _cell(mean: float, low: float, high: float, bounds=(-math.inf, math.inf)) -> str:
    """``mean [low, high]``, the interval clipped to ``bounds`` (for display); the mean alone without one."""
    if not math.isfinite(low):
        return f"{mean:.3f}"
    return f"{mean:.3f} [{max(low, bounds[0]):.3f}, {min(high, bounds[1]):.3f}]"


def _bounds(metric: str) -> tuple[float, float]:
    """The range of a metric of this sweep: accuracies and rates in [0, 1], R² at most 1."""
    if metric.startswith("probe_r2_layer") or metric == "probe_r2_last":
        return -math.inf, 1.0
    return {"present_minus_false_yes": (-1.0, 1.0), "probe_r2_change": (-math.inf, math.inf)}.get(metric, (0.0, 1.0))


def accuracy_table(summary, blind: ImageBlind):
    """Per variant, then the image-blind answers: accuracy overall and per question type, present −
    false yes and the last-layer probe R², each ``mean [low, high]`` (the interval clipped to the
    metric's range; the mean alone for one seed). The false-"yes" rate is 1 − the ``absent`` column."""
    import pandas as pd
    from alignlib.data.digit_scenes import QUESTION_TYPES

    columns = {"accuracy": "all", **{f"accuracy_{t}": t for t in QUESTION_TYPES},
               "present_minus_false_yes": "present − false yes", "probe_r2_last": "probe R² (last)"}
    rows = summary[summary.metric.isin(list(columns))]
    cells = rows.assign(cell=[_cell(*v, _bounds(m)) for *v, m in zip(rows["mean"], rows.ci_low, rows.ci_high, rows.metric)])
    shown = cells.pivot(index="variant", columns="metric", values="cell").reindex(rows.variant.unique())
    blind_row = pd.DataFrame({m: [f"{blind.scores[m]:.3f}" if m in blind.scores else ""] for m in columns},
                             index=["image-blind"])
    return pd.concat([shown[list(columns)], blind_row]).rename(columns=columns).rename_axis(index="variant")


def probe_table(summary):
    """Probe R² per variant (rows) and layer (columns, 0 = the LM's input), ``mean [low, high]``."""
    rows = summary[summary.metric.str.fullmatch(r"probe_r2_layer\d+")]
    cells = rows.assign(layer=rows.metric.str.removeprefix("probe_r2_layer").astype(int),
                        cell=[_cell(*v, _bounds(m)) for *v, m in zip(rows["mean"], rows.ci_low, rows.ci_high, rows.metric)])
    return cells.pivot(index="variant", columns="layer", values="cell").reindex(rows.variant.unique())


def plateau(summary, blind: ImageBlind):
    """Did each variant learn to look? Per variant: its accuracy and the gain over the image-blind
    accuracy against twice the binomial standard error of that accuracy on the test scenes
    (``left_plateau``: the gain is larger); ``digit_at`` against chance (one in ten, ``2 s.e.`` on its
    questions); ``present − false yes`` above 0 (``looks_for_yes_no``)."""
    import pandas as pd

    means = summary.set_index(["variant", "metric"])["mean"]
    n_test, n_digit = sum(blind.counts.values()), blind.counts["digit_at"]
    two_se = 2 * math.sqrt(blind.scores["accuracy"] * (1 - blind.scores["accuracy"]) / n_test)
    chance_se = 2 * math.sqrt(CHANCE_DIGIT_AT * (1 - CHANCE_DIGIT_AT) / n_digit)
    rows = []
    for variant in summary.variant.unique():
        accuracy, digit = means[variant, "accuracy"], means[variant, "accuracy_digit_at"]
        rows.append({"variant": variant, "accuracy": accuracy, "over_image_blind": accuracy - blind.scores["accuracy"],
                     "two_se": two_se, "left_plateau": accuracy - blind.scores["accuracy"] > two_se,
                     "digit_at": digit, "digit_at_above_chance": digit > CHANCE_DIGIT_AT + chance_se,
                     "present_minus_false_yes": means[variant, "present_minus_false_yes"],
                     "looks_for_yes_no": means[variant, "present_minus_false_yes"] > 0})
    return pd.DataFrame(rows)


def paired(table):
    """+pixel, +MFF and +both (EMMA) against the baseline, paired over seeds, one row per variant and
    metric of :data:`COMPARED` (:func:`alignlib.experiments.stats.paired_differences`: Holm-adjusted
    over the three variants per metric, minimal detectable effect, verdict)."""
    result = stats.paired_differences(table, "baseline", variants=list(VARIANTS), metrics=list(COMPARED))
    ranks = {"variant": {v: i for i, v in enumerate(VARIANTS)}, "metric": {m: i for i, m in enumerate(COMPARED)}}
    return result.sort_values(["variant", "metric"], key=lambda column: column.map(ranks[column.name])).reset_index(drop=True)


# -- the answer in words --------------------------------------------------------------------------------
def _interval(row) -> str:
    return f"{row['mean']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]" if math.isfinite(row["low"]) else \
        f"{row['mean']:+.3f} (one seed, no interval)"


def _level(summary, variant: str, metric: str) -> str:
    row = summary[(summary.variant == variant) & (summary.metric == metric)].iloc[0]
    return _cell(row["mean"], row.ci_low, row.ci_high, _bounds(metric))


def summary(record: dict) -> str:
    """The answer of notebook 09, in markdown: EMMA's claim, the committed numbers with their
    intervals and paired verdicts, and why they differ from the paper's (sentences from the record)."""
    table = long_table(runs_of(record))
    missing = [variant for variant in VARIANTS if variant not in set(table.variant)]
    if missing:
        raise ValueError(f"the emma record has no finished run of {missing}: the answer compares all four variants")
    per_variant = variant_summary(table)
    comparisons = paired(table).set_index(["variant", "metric"])
    spec, seeds = record["grid"][0]["emma"], int(per_variant["n"].min())
    means = per_variant.set_index(["variant", "metric"])["mean"]

    def found(variant, metric):
        row = comparisons.loc[variant, metric]
        return f"{_interval(row)}; {row.verdict}"

    def differs(variant, metric):
        return comparisons.loc[variant, metric].verdict.startswith("differs")

    change = per_variant.set_index(["variant", "metric"]).loc[("baseline", "probe_r2_change")]
    fades = (change.ci_high if math.isfinite(change.ci_high) else change["mean"]) < 0  # the interval below 0
    kept = differs("+pixel", "probe_r2_change") and means["+pixel", "probe_r2_change"] > means["baseline", "probe_r2_change"]
    by_seed = table[(table.variant == "baseline") & (table.metric == "accuracy")].value
    claim = ("**EMMA's claim** (Xing et al., arXiv 2410.05938): in a Mamba multimodal LLM the fine visual detail "
             "fades as the model aligns image and text; a pixel-wise alignment loss (structural) and multi-scale "
             "feature fusion, MFF (hierarchical), keep it, and the pretrained model answers visual questions better "
             "(VQA v2, GQA, VizWiz) and hallucinates less.")
    ends = run_ends(record)
    training = (f"{spec['train_steps']} optimiser steps a run, the validation error flat at the end in {ends['flat']} of "
                f"{ends['runs']} runs; " if ends else "")
    ours = (f"**Our committed numbers** ({record['profile']} profile, {training}{seeds} seed{'s' if seeds > 1 else ''} per "
            "variant; means with 95 % t-intervals; each variant minus the baseline paired by seed, Holm-adjusted over "
            "the three variants). A linear probe reads the pixels from the baseline's visual tokens with R² "
            f"{_level(per_variant, 'baseline', 'probe_r2_layer0')} at the LM's input and "
            f"{_level(per_variant, 'baseline', 'probe_r2_last')} after the last of its {spec['n_layers']} layers"
            + (": the image fades." if fades else ": it does not fade.")
            + f" The pixel-wise loss changes the last-layer R² by {found('+pixel', 'probe_r2_last')}, part of it "
            f"a higher start at the input ({found('+pixel', 'probe_r2_layer0')}); the change over the layers (last "
            f"minus input) by {found('+pixel', 'probe_r2_change')}"
            + (": it keeps more of the image." if kept else ".")
            + f" Answers: the baseline's accuracy is {_level(per_variant, 'baseline', 'accuracy')}, EMMA's (+both) "
            f"{_level(per_variant, '+both (EMMA)', 'accuracy')}; paired, {found('+both (EMMA)', 'accuracy')}. "
            f"EMMA's false-\"yes\" rate on absent digits changes by {found('+both (EMMA)', 'false_yes_rate')}. "
            f"MFF alone changes the accuracy by {found('+MFF', 'accuracy')}, and the last-layer R² by "
            f"{found('+MFF', 'probe_r2_last')}.")
    why = [f"**Why they differ.** A {spec['n_layers']}-layer Mamba of width {spec['d_model']} trained from scratch "
           "on digit scenes is not a pretrained multimodal LLM on VQA benchmarks; the paper's decoder and its MFF "
           "module are not reproduced (our MFF feeds the LM, so that it acts without the pixel loss too)."]
    if seeds < 2:
        why.append("With one seed there is no interval and no test: every difference above is a single run's.")
    elif not differs("+both (EMMA)", "accuracy"):
        why.append(f"The baseline's accuracy ranges from {by_seed.min():.3f} to {by_seed.max():.3f} over its "
                   f"{seeds} seeds, so this design cannot "
                   "exclude an accuracy gain below the minimal detectable effect quoted above"
                   + (": the fading and its repair are measured, better answers are not established." if fades and kept
                      else "."))
    if ends and ends["still_improving"]:
        why.append(f"Still improving at the end of the budget: {', '.join(ends['still_improving'])}; their differences "
                   "are measured at a fixed budget, not at convergence.")
    if seeds >= 2 and not (differs("+MFF", "probe_r2_last") or differs("+MFF", "accuracy")):
        why.append(f"MFF is not distinguishable from the baseline: with {spec['n_layers']} layers there is little "
                   "hierarchy to recover, and the paper's claim for it, about a much deeper model, is not tested here.")
    return "\n\n".join([claim, ours, " ".join(why)])


# -- provenance and figures -----------------------------------------------------------------------------
def provenance(record: dict) -> str:
    """The command, runs, run time, sizes and commits of a record, and how its runs ended (optimiser
    steps, validation curves flat) where they record it."""
    import pandas as pd

    spec = record["grid"][0]["emma"]
    commits = pd.Series([run["software"]["git"][:7] for run in record["runs"].values()]).value_counts()
    text = (f"{record['command']}\n{len(record['runs'])} of {len(record['grid'])} runs, "
            f"{sum(r['seconds'] for r in record['runs'].values()) / 60:.0f} min of run time; "
            + ", ".join(f"{k} {v}" for k, v in spec.items() if k not in ("options", "seed"))
            + f"\nruns per commit: {commits.to_dict()}")
    if len(commits) > 1:
        text += " (more than one commit: weaker evidence than runs from a single commit)"
    if ends := run_ends(record):
        from alignlib.models.emma import FLAT_WINDOW

        text += (f"\noptimiser steps per run: {', '.join(map(str, ends['steps']))}; validation error flat (its last "
                 f"{FLAT_WINDOW} passes improve on the best before by less than one standard error) in "
                 f"{ends['flat']} of {ends['runs']} runs")
    return text


def _grid_lines(ax) -> None:
    ax.axhline(7.5, color="C0", lw=0.6)  # the 2x2 grid of digit cells
    ax.axvline(7.5, color="C0", lw=0.6)
    ax.axis("off")


def plot_scenes(data):
    """One scene of each question type with its question and answer."""
    import matplotlib.pyplot as plt
    from alignlib.data.digit_scenes import ANSWERS, QUESTION_TYPES

    fig, axes = plt.subplots(1, len(QUESTION_TYPES), figsize=(16, 3.4))
    questions = data.questions()
    for kind, ax in enumerate(axes):
        i = int((data.question_type == kind).nonzero()[0, 0])
        ax.imshow(data.images[i], cmap="gray_r")
        _grid_lines(ax)
        ax.set_title(f"{QUESTION_TYPES[kind]}\n{questions[i]}\n-> {ANSWERS[data.answers[i]]}", fontsize=8)
    fig.tight_layout()
    return fig


def plot_curves(histories: dict, window: int):
    """Answer and pixel losses against the step (moving average over ``window`` steps), per variant;
    ``histories``: ``{(variant, seed): [{"answer": ..., "pixel": ...} per step]}``."""
    import matplotlib.pyplot as plt
    import pandas as pd

    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    labelled = set()
    for (name, _), history in histories.items():
        style = {"color": f"C{list(VARIANTS).index(name)}", "alpha": 0.8,
                 "label": None if name in labelled else name}
        labelled.add(name)
        for ax, part in zip(axes, ("answer", "pixel")):
            if part in history[0]:
                ax.plot(pd.Series([h[part] for h in history]).rolling(window).mean(), **style)
    axes[0].set(xlabel="step", ylabel="cross-entropy", title=f"answer loss (moving average over {window} steps)")
    axes[1].set(xlabel="step", ylabel="mean squared error", title="pixel-wise alignment loss")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    return fig


def validation_curves(record: dict) -> dict[tuple[str, int], list[dict]]:
    """A record's validation curves ``{(variant, seed): [{"step", "error", "answer_loss"}, ...]}``,
    for the runs that recorded one (runs made before validation was added have none)."""
    rows = {(run["factors"]["variant"], run["factors"]["seed"]): record["runs"][run["id"]]["rows"][0]
            for run in record["grid"] if run["id"] in record["runs"]}
    return {key: row["valid_curve"] for key, row in rows.items() if "valid_curve" in row}


def plot_validation(curves: dict[tuple[str, int], list[dict]], blind_error: float):
    """Validation error against the optimiser step, one line per run coloured by variant, beside the
    image-blind answers' error on the same scenes (``blind_error``)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    labelled = set()
    for (name, _), curve in curves.items():
        ax.plot([p["step"] for p in curve], [p["error"] for p in curve], color=f"C{list(VARIANTS).index(name)}",
                alpha=0.8, marker=".", label=None if name in labelled else name)
        labelled.add(name)
    ax.axhline(blind_error, color="grey", ls="--", label="image-blind answers")
    ax.set(xlabel="optimiser step", ylabel="validation error", ylim=(0, None),
           title="validation error on held-out scenes (training images, new scenes)")
    ax.legend()
    fig.tight_layout()
    return fig



def _error_bars(rows, bounds) -> np.ndarray:
    """``(2, n)`` distances from each mean to its interval's ends, clipped to ``bounds`` (zero without one)."""
    low, high = rows.ci_low.clip(lower=bounds[0]), rows.ci_high.clip(upper=bounds[1])
    return np.nan_to_num(np.array([rows["mean"] - low, high - rows["mean"]]))


def plot_results(summary, blind: ImageBlind, title: str):
    """Left: test accuracy per question type and variant (95 % intervals over seeds when there are
    several, clipped to [0, 1]), the image-blind answers' as black ticks. Right: the probe R² per
    layer and variant."""
    import matplotlib.pyplot as plt
    from alignlib.data.digit_scenes import QUESTION_TYPES

    names = list(summary.variant.unique())
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.4))
    width, x = 0.8 / len(names), np.arange(len(QUESTION_TYPES))
    layers = sorted(int(m.removeprefix("probe_r2_layer")) for m in summary.metric.unique() if m.startswith("probe_r2_layer"))
    for k, name in enumerate(names):
        rows = summary[summary.variant == name].set_index("metric")
        accuracy = rows.loc[[f"accuracy_{t}" for t in QUESTION_TYPES]]
        probe = rows.loc[[f"probe_r2_layer{layer}" for layer in layers]]
        axes[0].bar(x + k * width, accuracy["mean"], width, yerr=_error_bars(accuracy, (0, 1)), capsize=3, label=name)
        axes[1].errorbar(np.array(layers) + 0.03 * k, probe["mean"], yerr=_error_bars(probe, (-np.inf, 1)), marker="o",
                         capsize=3, label=name)
    middle = x + width * (len(names) - 1) / 2
    axes[0].scatter(middle, [blind.scores[f"accuracy_{t}"] for t in QUESTION_TYPES], marker="_", s=900, color="k",
                    zorder=3, label="image-blind")
    axes[0].set_xticks(middle, QUESTION_TYPES)
    axes[0].set(ylabel="test accuracy (absent: 1 - false-yes rate)", ylim=(0, 1.2), yticks=np.linspace(0, 1, 6))
    axes[0].legend(fontsize=8, ncol=len(names) + 1, loc="upper center")
    axes[1].set(xlabel="layer (0 = visual tokens entering the LM)", ylabel="probe R² on held-out scenes",
                xticks=layers)
    axes[1].legend(fontsize=8)
    seeds = int(summary["n"].max())
    fig.suptitle(f"{title}: " + (f"mean and 95 % interval over {seeds} seeds" if seeds > 1 else "one seed, no intervals"))
    fig.tight_layout()
    return fig


def plot_reconstructions(test_data, shown: list[int], runs: dict):
    """The scenes ``shown``, the linear probe's reconstructions at layer 0 and the last layer for each
    named run (``{label: VariantResult}``; R² over all test scenes in the titles), and the pixel
    decoder's reconstruction of each run that has one."""
    import matplotlib.pyplot as plt
    import torch
    from alignlib.models.emma import unpatchify

    size = test_data.images.shape[-1]
    panels = [("scene", test_data.images[shown])]
    for label, run in runs.items():
        patch = run.model.config.patch_size
        for layer in (0, len(run.r2) - 1):
            image = unpatchify(run.reconstructions[layer][shown], patch, size, size)
            panels.append((f"{label} probe, layer {layer}\nR² {run.r2[layer]:.2f} (all test scenes)", image))
    for label, run in runs.items():
        if run.model.decoder is not None:
            with torch.no_grad():
                decoded = run.model(test_data.images[shown], test_data.tokens[shown], test_data.mask[shown]).reconstruction
            panels.append((f"{label} decoder", unpatchify(decoded, run.model.config.patch_size, size, size)))
    fig, axes = plt.subplots(len(shown), len(panels), figsize=(2.1 * len(panels), 2.1 * len(shown)), squeeze=False)
    for column, (title, images) in enumerate(panels):
        for row in range(len(shown)):
            axes[row, column].imshow(images[row].clamp(0, 1), cmap="gray_r", vmin=0, vmax=1)
            _grid_lines(axes[row, column])
        axes[0, column].set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


# -- display ---------------------------------------------------------------------------------------------
PAIRED_COLUMNS = ["variant", "metric", "n", "mean", "low", "high", "mde", "p_adjusted", "verdict", "per_seed"]


def show_runs(table, blind: ImageBlind, title: str) -> None:
    """Display the view of a :func:`long_table`: the accuracy table, the figure, whether each variant
    left the image-blind plateau, the probe per layer and the paired comparisons."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    per_variant = variant_summary(table)
    display(accuracy_table(per_variant, blind))
    plot_results(per_variant, blind, title)
    plt.show()
    display(plateau(per_variant, blind).round(3))
    display(probe_table(per_variant))
    display(paired(table)[PAIRED_COLUMNS].round(4))


def show(record: dict, title: str = "committed full profile") -> None:
    """Display a record: its provenance, the validation curves (where recorded) and :func:`show_runs`."""
    import matplotlib.pyplot as plt

    print(provenance(record))
    if curves := validation_curves(record):
        plot_validation(curves, 1 - record_blind(record, "valid").scores["accuracy"])
        plt.show()
    show_runs(long_table(runs_of(record)), record_blind(record), title)


SWEEP = Sweep(
    name="emma",
    reproduces="EMMA: pixel-wise alignment and multi-scale fusion (baseline, +pixel, +MFF, +both)",
    profiles={"default": {"n_train": 4000, "n_test": 900, "probe_scenes": 1000, "data_seed": 0, "patch_size": 8,
                          "d_model": 32, "n_layers": 3, "train_steps": 400, "batch_size": 64, "learning_rate": 3e-3,
                          "seeds": (0,)},
              "full": {"n_train": 20000, "n_test": 3000, "probe_scenes": 2000, "data_seed": 0, "patch_size": 8,
                       "d_model": 64, "n_layers": 4, "train_steps": 8000, "batch_size": 128, "learning_rate": 3e-3,
                       "seeds": (0, 1, 2)}},
    grid=grid, execute=execute, estimate=estimate, show=show, notebook="09_emma")
