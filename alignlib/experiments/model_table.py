"""The models sweep: every model trained to convergence beside the reference lines (README's model
table, notebook 06), with AlignMamba-1's controls: the true plan (``oracle``, the architecture's
ceiling), the true segments on the wrong words (``shuffled``, the negative) and the plan it learns
without the tables (``learned``, notebook 10)."""
from __future__ import annotations

from alignlib.experiments import plots, stats, training
from alignlib.experiments.sweep import Sweep, tidy

VARIANTS = {  # label: (model, options)
    "AlignMamba-1": ("alignmamba1", {}),
    "AlignMamba-2": ("alignmamba2", {}),
    "Coupled Mamba": ("coupled", {}),
    "concat (single-stream)": ("concat", {}),
    "multistream (late fusion)": ("multistream", {}),
    "MulT-style": ("mult", {}),
    "AlignMamba-1, shuffled plan": ("alignmamba1", {"plan": "shuffled"}),
    "AlignMamba-1, learned plan": ("alignmamba1", {"plan": "learned"}),
    "AlignMamba-1, oracle plan": ("alignmamba1", {"plan": "oracle"}),
}
METRICS = ("MAE", "Corr", "Non0_acc_2", "correspondence_accuracy_audio", "correspondence_accuracy_vision")


def grid(settings: dict) -> list[dict]:
    return [training.references_run(settings)] + [training.training_run(label, model, options, seed, settings)
                                                  for label, (model, options) in VARIANTS.items()
                                                  for seed in settings["seeds"]]


def table(record: dict):
    """One row per model and reference: mean [95 % interval] over seeds of :data:`METRICS`, the
    optimiser steps and how many runs' validation curves had flattened."""
    import pandas as pd

    runs = tidy(record)
    trained = runs[runs.variant != "references"]
    summary = stats.summary(trained, ["variant"])
    rows = []
    for variant in [v for v in VARIANTS if v in set(trained.variant)]:
        row = {"model": variant}
        for metric in METRICS:
            found = summary[(summary.variant == variant) & (summary.metric == metric)]
            if len(found):
                r = found.iloc[0]
                row[metric] = f"{r['mean']:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]" if r.n > 1 else f"{r['mean']:.3f}"
        steps = trained[(trained.variant == variant) & (trained.metric == "optimizer_steps")].value
        flat = [done["rows"][-1]["metrics"]["valid_flat"] for done in record["runs"].values()
                if done["factors"].get("variant") == variant]
        row["steps"] = f"{int(steps.min())}-{int(steps.max())}" if len(steps) else "-"
        row["flat"] = f"{sum(flat)}/{len(flat)}"
        rows.append(row)
    references = training.reference_summary(record)
    for name in (references.reference.unique() if references is not None else []):
        row = {"model": f"reference: {name}"}
        for metric in ("MAE", "Corr", "Non0_acc_2"):  # a constant has no Corr
            found = references[(references.reference == name) & (references.metric == metric)]
            if len(found):
                row[metric] = f"{found['mean'].item():.3f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("model").fillna("-")


def show(record: dict, title: str):
    """The table, and test MAE per model with its interval beside the four reference lines."""
    import matplotlib.pyplot as plt

    print(f"{title}: {record['command']}")
    shown = table(record)
    runs = tidy(record)
    summary = stats.clipped_summary(runs[runs.variant != "references"], ["variant"])
    fig, ax = plt.subplots(figsize=(11, 4))
    plots.intervals(ax, summary, "variant", "MAE")
    plots.reference_lines(ax, training.reference_summary(record), "MAE")
    ax.set(xlabel="test MAE (lower is better)", title=f"{title}: trained models beside the reference lines")
    ax.legend(fontsize=8, loc="upper right")
    plt.tight_layout()
    plt.show()
    return shown


SWEEP = Sweep(
    name="models",
    reproduces="the models' test metrics (AlignMamba-1 / -2 Table 1 rows, on the synthetic benchmark) beside "
               "reference lines and alignment controls",
    profiles={"default": {**training.SIZES["default"], "seeds": (0,)},
              "full": {**training.SIZES["full"], "seeds": (0, 1, 2)}},
    grid=grid, execute=training.execute, estimate=training.estimate, notebook="06_training", show=show)
