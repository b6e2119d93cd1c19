"""The stress sweep: where AlignMamba-1's plans break as the synthetic benchmark moves away from the
monotone, every-frame-on-a-word model (the generator's difficulty knobs,
:class:`alignlib.data.synthetic.Difficulty`).

Each knob alone at several levels (``pause``, ``skip``, ``faint``, ``nonlinear``; level 0 is the
``clean`` setting, shared by the four) and two combined settings (``moderate``, ``hard``); on each
setting's own data its reference lines (a ``references`` run) and AlignMamba-1 with each plan:
the paper's relaxed plan, the learned monotone plan with and without its "no word" state, the
time-prior OT plan, and the oracle and shuffled controls. A run's row carries its test metrics
(``test_MAE``, ``test_Corr``, ...), how it ended (``optimizer_steps``, ``stopped_by``,
``valid_flat``), the correspondence its plan found on every test frame that has a word
(``correspondence_accuracy_{audio,vision}``), the floors of the data (``{m}_chance``,
``{m}_proportional``) and, on data with pauses, pause detection (``pause_{precision,recall,f1}_{m}``);
its factors carry the setting and the knob values.

The views (:func:`table`, :func:`reference_table`, :func:`breaking_points`, :func:`combined_table`,
:func:`summary`, :func:`plot_knob`) are pure functions of the results record."""
from __future__ import annotations

from pathlib import Path

from alignlib.data.mmsa import SPOKEN_NAMES
from alignlib.data.synthetic import KNOB_LIMITS
from alignlib.experiments import stats, training
from alignlib.experiments.sweep import Sweep, run_id

KNOBS = tuple(KNOB_LIMITS)
PLANS = {"relaxed plan (paper)": {"plan": "relaxed"},
         "learned plan": {"plan": "learned"},
         "learned plan, no-word state": {"plan": "learned", "no_word": True},
         "time-prior plan": {"plan": "time_prior", "blur": 0.3, "time_weight": 1.0},
         "oracle plan": {"plan": "oracle"},
         "shuffled plan": {"plan": "shuffled"}}
LEVELS = {"pause": (0.2, 0.4, 0.6), "skip": (0.1, 0.2, 0.4), "faint": (0.5, 0.75, 0.9), "nonlinear": (0.25, 0.5, 1.0)}
COMBINED = {"moderate": {"pause": 0.2, "skip": 0.1, "faint": 0.5, "nonlinear": 0.5},
            "hard": {"pause": 0.4, "skip": 0.2, "faint": 0.75, "nonlinear": 1.0}}
SETTINGS = {"clean": {}, **{f"{knob} {level:g}": {knob: level} for knob, levels in LEVELS.items() for level in levels},
            **COMBINED}
METRICS = ("correspondence_accuracy_audio", "correspondence_accuracy_vision", "test_MAE", "test_Corr",
           "pause_f1_audio", "pause_f1_vision", "audio_chance", "vision_chance", "audio_proportional",
           "vision_proportional")
BROKEN_ACCURACY = 0.5  # a plan that finds fewer word frames than this has broken
# seconds of an epoch with its evaluations on this project's 2-core CPU (one thread) at the profile's
# d_model (the learned sweep's), and how many times that a plan costs where it costs more: the
# time-prior plan's Sinkhorn iterations (1.9 s per batch of 32 MOSI-length clips and modality at
# d_model 64, one thread) and the no-word state's 2W + 1 states
EPOCH_SECONDS = {"default": 0.5, "full": 15.0}
PLAN_COST = {"default": {"time-prior plan": 3.0, "learned plan, no-word state": 1.5},
             "full": {"time-prior plan": 13.0, "learned plan, no-word state": 2.0}}


def grid(settings: dict) -> list[dict]:
    """Per setting of ``settings["settings"]`` (``{name: knobs}``): its references run, then each plan of
    :data:`PLANS` at each seed, on the profile's data with the setting's knobs."""
    runs = []
    for name, knobs in settings["settings"].items():
        data = {**settings["data"], **knobs}
        where = {"setting": name, **{knob: float(knobs.get(knob, 0.0)) for knob in KNOBS}}
        references = training.references_run({"data": data})
        runs.append({**references, "id": run_id(f"references {name}", 0),
                     "factors": {**references["factors"], **where}})
        for label, options in PLANS.items():
            for seed in settings["seeds"]:
                run = training.training_run(label, "alignmamba1", options, seed, {**settings, "data": data}, **where)
                runs.append({**run, "id": run_id(f"{name} {label}", seed)})
    return runs


@training.with_references
def execute(run: dict, root: Path, device: str) -> tuple[dict, list[dict]]:
    """Train (resuming an interrupted run); one row: the test metrics (``test_*``) of the best epoch
    (``best_epoch``), how the run ended, :func:`training.correspondence_metrics` and the data's
    correspondence floors (:func:`alignlib.analysis.correspondence_floors`)."""
    from alignlib.analysis import correspondence_floors
    from alignlib.data import load_mmsa
    from alignlib.train import train

    config = training.train_config(run, root, device, resume=True)
    tested = train(config, progress=False)
    metrics = {("best_epoch" if k == "epoch" else k if k in training.CONVERGENCE else f"test_{k}"): v
               for k, v in tested.items() if k != "test_missing_rate"}
    metrics.update(**training.correspondence_metrics(config), **correspondence_floors(load_mmsa(config.data).splits["test"]))
    return training.recorded(config, root), [{"metrics": metrics}]


def estimate(run: dict) -> float:
    """Seconds of a run on this project's 2-core CPU: :data:`EPOCH_SECONDS` scaled by width and
    :data:`PLAN_COST`, at most :data:`~alignlib.experiments.training.EXPECTED_EPOCHS` epochs."""
    if run["kind"] == "references":
        return training.estimate(run)
    profile = "full" if run["data"]["preset"] == "mosi" else "default"
    width = run["train"]["model_options"]["d_model"] / SWEEP.profiles[profile]["d_model"]
    return (EPOCH_SECONDS[profile] * width * PLAN_COST[profile].get(run["factors"]["variant"], 1.0)
            * min(run["train"]["epochs"], training.EXPECTED_EPOCHS))


# -- views ------------------------------------------------------------------------------------------
def table(record: dict, metrics=METRICS):
    """Per setting and plan, each of ``metrics``: ``n`` seeds, ``mean`` and its 95 % interval; columns
    ``setting``, the knobs, ``variant``, ``metric``, ``n``, ``mean``, ``ci_low``, ``ci_high``."""
    runs = training.trained_runs(record)
    runs = runs[runs.metric.isin(metrics)]
    return stats.summary(runs, ["setting", *KNOBS, "variant"])


def reference_table(record: dict):
    """Each setting's reference lines: ``setting``, the knobs, ``reference``, ``metric``, ``mean`` and interval over seeds."""
    references, _ = training.split(record)
    return stats.summary(references, ["setting", *KNOBS, "reference"])


def along(frame, knob: str):
    """The rows of a table with the knobs' columns (:func:`table`, :func:`reference_table`, a
    :func:`reading_map`) on ``knob``'s axis: the settings where every other knob is 0 (the clean
    setting and ``knob`` alone), with ``level`` its value."""
    others = [k for k in KNOBS if k != knob]
    rows = frame[(frame[others] == 0).all(axis=1)]
    return rows.assign(level=rows[knob])


def combined(frame):
    """The rows of a :func:`table` or :func:`reference_table` whose setting turns several knobs up."""
    return frame[(frame[list(KNOBS)] > 0).sum(axis=1) > 1]


def _worse_accuracy(means):
    return means[["correspondence_accuracy_audio", "correspondence_accuracy_vision"]].min(axis=1)


def breaking_points(record: dict):
    """Per knob run at two levels or more and per plan, the lowest level at which the plan breaks:
    its audio or video word-frame accuracy falls below :data:`BROKEN_ACCURACY`, or its test MAE
    reaches the data's ``set_level`` line (NaN: it holds at every level run). Columns ``knob``,
    ``variant``, ``broken_at``, ``top`` (the knob's highest level run), ``accuracy_at_top`` (the
    worse modality's), ``MAE_at_top`` and ``set_level_at_top``."""
    import pandas as pd

    found, lines = table(record), reference_table(record)
    rows = []
    for knob in KNOBS:
        runs, references = along(found, knob), along(lines, knob)
        if runs.level.nunique() < 2:
            continue
        set_level = references[(references.reference == "set_level") & (references.metric == "MAE")]
        set_level = set_level.set_index("level")["mean"]
        top = runs.level.max()
        for variant, part in runs.groupby("variant", sort=False):
            means = part.pivot_table(index="level", columns="metric", values="mean")
            accuracy = _worse_accuracy(means)
            broken = (accuracy < BROKEN_ACCURACY) | (means["test_MAE"] >= set_level.reindex(means.index))
            rows.append({"knob": knob, "variant": variant, "top": top,
                         "broken_at": means.index[broken.to_numpy()].min() if broken.any() else float("nan"),
                         "accuracy_at_top": accuracy[top], "MAE_at_top": means["test_MAE"][top],
                         "set_level_at_top": set_level.get(top, float("nan"))})
    return pd.DataFrame(rows)


def combined_table(record: dict):
    """Per combined setting and plan: the worse modality's word-frame accuracy, test MAE with its 95 %
    interval, the data's ``set_level`` and ``bound`` MAE and how far the plan got from the one to the
    other (``share_of_the_way``: 0 at ``set_level``, 1 at ``bound``)."""
    found, lines = combined(table(record)), combined(reference_table(record))
    mae = found[found.metric == "test_MAE"].set_index(["setting", "variant"])
    accuracy = _worse_accuracy(found.pivot_table(index=["setting", "variant"], columns="metric", values="mean"))
    line = lines[lines.metric == "MAE"].pivot_table(index="setting", columns="reference", values="mean")
    out = mae[["mean", "ci_low", "ci_high"]].rename(columns=lambda c: f"MAE_{c}").assign(accuracy=accuracy)
    out = out.join(line[["set_level", "bound"]], on="setting")
    return out.assign(share_of_the_way=(out.set_level - out.MAE_mean) / (out.set_level - out.bound)).reset_index()


def summary(record: dict) -> list[str]:
    """Sentences from :func:`breaking_points` (per knob and plan: where it breaks, or that it holds)
    and :func:`combined_table` (per combined setting and plan)."""
    sentences = []
    for _, row in breaking_points(record).iterrows():
        at_top = (f"at {row.knob} {row.top:g} it finds {row.accuracy_at_top:.2f} of the word frames (the worse "
                  f"modality), test MAE {row.MAE_at_top:.3f} (set_level {row.set_level_at_top:.3f})")
        if row.broken_at != row.broken_at:
            sentences.append(f"{row.variant} holds up to {row.knob} {row.top:g}: {at_top}.")
        elif row.broken_at == 0:
            sentences.append(f"{row.variant} fails already on the clean data; {at_top}.")
        else:
            sentences.append(f"{row.variant} breaks at {row.knob} {row.broken_at:g}; {at_top}.")
    for _, row in combined_table(record).iterrows():
        sentences.append(f"On the {row.setting} setting, {row.variant} finds {row.accuracy:.2f} of the word frames "
                         f"(the worse modality), test MAE {row.MAE_mean:.3f}, {row.share_of_the_way:.0%} of the way "
                         f"from set_level ({row.set_level:.3f}) to bound ({row.bound:.3f}).")
    return sentences


def plot_knob(ax, record: dict, knob: str, metric: str = "correspondence_accuracy_audio") -> None:
    """``metric`` against ``knob``'s level: one line per plan with its 95 % band; for ``test_MAE``
    also the data's ``set_level`` and ``bound`` lines as grey bands."""
    from alignlib.experiments import plots

    plots.curves_with_bands(ax, along(table(record), knob), "level", "variant", metric)
    if metric == "test_MAE":
        lines = along(reference_table(record), knob)
        for reference in ("set_level", "bound"):
            part = lines[(lines.reference == reference) & (lines.metric == "MAE")].sort_values("level")
            ax.plot(part.level, part["mean"], color="grey", linestyle=plots.REFERENCE_STYLES[reference], label=reference)
            ax.fill_between(part.level, part.ci_low, part.ci_high, color="grey", alpha=0.15)
    ax.set(xlabel=knob, ylabel=metric)


def show(record: dict, title: str):
    """Accuracy and test MAE against each knob, the sentences, and the combined settings' table."""
    import matplotlib.pyplot as plt

    print(f"{title}: {record['command']}")
    fig, axes = plt.subplots(2, len(KNOBS), figsize=(4 * len(KNOBS), 7), squeeze=False)
    for k, knob in enumerate(KNOBS):
        plot_knob(axes[0, k], record, knob, "correspondence_accuracy_audio")
        plot_knob(axes[1, k], record, knob, "test_MAE")
    axes[1, -1].legend(fontsize=7)
    plt.tight_layout()
    plt.show()
    print("\n".join(summary(record)))
    return combined_table(record)


# -- before any training: the table-given linear reading ---------------------------------------------
READING = {"temperature": 0.1, "blank": -1.5}  # notebook 10's pause study: emissions' temperature, no-word score
PATHS = {"forced": "the path forced onto words", "no_word": "the path with a no-word state"}


def reading_map(settings: dict, data: dict, root: Path, seeds=(0,), temperature: float = READING["temperature"],
                blank: float = READING["blank"]):
    """Where monotone alignment breaks before any model is trained: per setting ``{name: knobs}``, data
    seed and modality, the share of the test split's word frames that the best monotone path finds over
    :func:`alignlib.analysis.supervised_emissions` (the reading given the tables: the most a linear
    map of the raw frames tells), forced onto words (``forced``) and with a no-word state of constant
    score ``blank`` (``no_word``); beside them the data's floors (``proportional``, ``chance``) and the
    no-word path's ``pause_f1``. ``data``: the files' ``preset`` and ``n_clips`` (generated under
    ``root/data``). A tidy table: ``setting``, the knobs, ``modality``, ``seed``, ``metric``, ``value``."""
    import pandas as pd
    import torch

    from alignlib import analysis
    from alignlib.align import monotone
    from alignlib.data import load_mmsa

    rows = []
    for name, knobs in settings.items():
        for seed in seeds:
            splits = load_mmsa(training.ensure_data({**data, "seed": seed, **knobs}, root)).splits
            floors = analysis.correspondence_floors(splits["test"])
            for m in analysis.SOURCES:
                scores, frames, words, truth = analysis.supervised_emissions(splits["train"], splits["test"], m, temperature)
                with_blank = monotone.best_path(scores, frames, words, torch.full(frames.shape, blank, dtype=scores.dtype))
                values = {"forced": analysis.frame_accuracy(monotone.best_path(scores, frames, words), truth, frames),
                          "no_word": analysis.frame_accuracy(with_blank, truth, frames),
                          "proportional": floors[f"{m}_proportional"], "chance": floors[f"{m}_chance"],
                          "pause_f1": analysis.pause_detection(with_blank, truth, frames)["f1"]}
                where = {"setting": name, **{knob: float(knobs.get(knob, 0.0)) for knob in KNOBS}, "modality": m, "seed": seed}
                rows += [{**where, "metric": metric, "value": value} for metric, value in values.items()]
    return pd.DataFrame(rows)


def reading_summary(frame):
    """A :func:`reading_map` per setting, modality and metric: ``n`` seeds, ``mean``, 95 % interval."""
    return stats.summary(frame, ["setting", *KNOBS, "modality"])


def reading_breaks(frame):
    """Per knob and modality of a :func:`reading_map`, the lowest level at which neither path finds more
    word frames than the proportional guess (NaN: the reading beats it at every level), and at the
    knob's top level the better path's share and the guess's. Columns ``knob``, ``modality``,
    ``broken_at``, ``top``, ``best_at_top``, ``proportional_at_top``."""
    import pandas as pd

    means = reading_summary(frame).pivot_table(index=["setting", *KNOBS, "modality"], columns="metric", values="mean")
    means = means.reset_index().assign(best=lambda t: t[list(PATHS)].max(axis=1))
    rows = []
    for knob in KNOBS:
        for m, part in along(means, knob).groupby("modality", sort=False):
            part = part.sort_values("level")
            broken, top = part[part.best <= part.proportional], part.iloc[-1]
            rows.append({"knob": knob, "modality": m, "broken_at": broken.level.min() if len(broken) else float("nan"),
                         "top": top.level, "best_at_top": top.best, "proportional_at_top": top.proportional})
    return pd.DataFrame(rows)


def reading_sentences(frame) -> list[str]:
    """One sentence per knob and modality from :func:`reading_breaks`."""
    sentences = []
    for _, row in reading_breaks(frame).iterrows():
        fate = (f"holds up to {row.knob} {row.top:g}" if row.broken_at != row.broken_at
                else f"falls to the proportional guess at {row.knob} {row.broken_at:g}")
        sentences.append(f"{SPOKEN_NAMES[row.modality]}: the reading {fate} (at {row.top:g}, {row.best_at_top:.2f} of the word frames "
                         f"against the guess's {row.proportional_at_top:.2f}).")
    return sentences


def plot_reading_map(frame):
    """One panel per knob: each path's share of the word frames per modality against the knob's level
    (bands: 95 % intervals over data seeds) and the proportional guess dotted."""
    import matplotlib.pyplot as plt

    from alignlib.experiments import plots

    table = reading_summary(frame)
    table = table.assign(line=table.modality.map(SPOKEN_NAMES) + ", " + table.metric.map(PATHS))
    fig, axes = plt.subplots(1, len(KNOBS), figsize=(4 * len(KNOBS), 3.6), sharey=True)
    for ax, knob in zip(axes, KNOBS):
        rows = along(table, knob)
        plots.curves_with_bands(ax, rows[rows.metric.isin(list(PATHS))].assign(metric="found"), "level", "line", "found")
        for m, part in rows[rows.metric == "proportional"].groupby("modality"):
            part = part.sort_values("level")
            ax.plot(part.level, part["mean"], ":", color="grey", label="proportional guess" if m == "audio" else None)
        ax.set(xlabel=knob, ylabel="word frames found", ylim=(0, 1))
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


SWEEP = Sweep(
    name="stress",
    reproduces="beyond the papers: where AlignMamba-1's plans (relaxed, learned, learned with a no-word state, "
               "time-prior OT, oracle, shuffled) break as pauses, skipped words, faint and non-linear frames are added",
    profiles={"default": {**training.SIZES["default"], "data": {"preset": "tiny", "n_clips": 150, "seed": 0},
                          "epochs": 2, "d_model": 16, "seeds": (0,),
                          "settings": {"clean": {}, "pause 0.4": {"pause": 0.4}, "hard": COMBINED["hard"]}},
              "full": {"data": {"preset": "mosi", "n_clips": None, "seed": 0}, "epochs": 60, "patience": 8,
                       "max_steps": 2400, "batch_size": 32, "d_model": 64, "n_layers": 2, "seeds": (0, 1, 2),
                       "settings": SETTINGS}},
    grid=grid, execute=execute, estimate=estimate, notebook="10_learned_alignment", show=show)
