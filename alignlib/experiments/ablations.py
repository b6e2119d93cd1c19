"""The ablations sweep: AlignMamba-2's Table 3 (with the OT and MMD losses also removed one at a time
and a parameter-matched vanilla fusion) and AlignMamba-1's alignment ablations (its Table 3); and
its results view (notebook 08): a table beside the paper's rows, each row against the reference lines,
the paired differences (Holm-adjusted) and the answer in words."""
from __future__ import annotations

from alignlib.experiments import plots, stats, training
from alignlib.experiments.sweep import Sweep

PAPER_ABLATIONS = {  # MOSI Acc-2 / F1 (%): AlignMamba-2 Table 3, AlignMamba-1 Table 3
    "AlignMamba-2": (87.0, 87.0), "w/o dual alignment loss": (84.5, 84.4), "w/o Modality-Aware Mamba": (85.8, 85.7),
    "w/o both": (82.3, 82.1), "w/ learnable routing": (86.6, 86.4),
    "AlignMamba-1": (86.9, 86.9), "AlignMamba-1 w/o local OT": (84.6, 84.4), "AlignMamba-1 w/o global MMD": (85.8, 85.7),
}
PAPER_NAMES = {"w/o Modality-Aware Mamba": "w/o Mixture-of-Experts", "AlignMamba-1 w/o local OT": "w/o Local",
               "AlignMamba-1 w/o global MMD": "w/o Global"}
METRICS = ("Non0_acc_2", "Non0_F1_score", "MAE", "Corr")


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


def variants(settings: dict) -> list[tuple[str, str, dict]]:
    """``(label, model, model options)`` of every row, at the sizes of ``settings``."""
    from alignlib.data import synthetic

    base = {"d_model": settings["d_model"], "n_layers": settings["n_layers"]}
    matched = matched_width(synthetic.PRESETS[settings["data"]["preset"]]["dims"], base)
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
        ("AlignMamba-1 w/o local OT", "alignmamba1", {"plan": "proportional"}),
        ("AlignMamba-1 w/o global MMD", "alignmamba1", {"lambda_mmd": 0.0}),
        ("AlignMamba-1, learned plan (beyond the paper)", "alignmamba1", {"plan": "learned"}),
        ("AlignMamba-1, oracle plan (control)", "alignmamba1", {"plan": "oracle"}),
    ]


def grid(settings: dict) -> list[dict]:
    return [training.references_run(settings)] + [training.training_run(label, model, options, seed, settings)
                                                  for label, model, options in variants(settings) for seed in settings["seeds"]]


# -- results view (notebook 08) -----------------------------------------------------------------------
SINGLE_STREAM = {  # the single-stream Mamba in the papers, MOSI Acc-2 / F1 %
    "Cobra (AlignMamba-2 Table 1)": (82.3, 82.1), "Single-stream (AlignMamba-1 Table 3)": (82.3, 82.1),
    "w/o both (AlignMamba-2 Table 3)": PAPER_ABLATIONS["w/o both"]}
PAIRED_METRICS = ("MAE", "Non0_acc_2")


def table(record: dict):
    """``(stats, table)``: :func:`~alignlib.experiments.stats.clipped_summary` per variant, and the
    mean [95 % interval] per variant and metric beside the paper's MOSI row."""
    summary = stats.clipped_summary(training.trained_runs(record), ["variant"])
    summary = summary[summary.metric.isin(METRICS)]
    cells = summary.assign(cell=[f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
                                 for m, lo, hi in zip(summary["mean"], summary.ci_low, summary.ci_high)])
    shown = cells.pivot(index="variant", columns="metric", values="cell").reindex(summary.variant.unique())[list(METRICS)]
    shown["paper row"] = [PAPER_NAMES.get(v, v if v in PAPER_ABLATIONS else "-") for v in shown.index]
    shown["paper MOSI Acc / F1"] = [" / ".join(map(str, PAPER_ABLATIONS.get(v, ("-", "-")))) for v in shown.index]
    return summary, shown


def is_control(variant: str) -> bool:
    """Whether a row is one of the controls beyond the papers (AlignMamba-1 given the true or the learned plan)."""
    return variant.startswith("AlignMamba-1, ")


def paired_groups(variants) -> dict[str, list[str]]:
    """The rows compared with each reference model, paired by seed: AlignMamba-2's ablations with
    AlignMamba-2, AlignMamba-1's with AlignMamba-1 (the controls beyond the papers with neither)."""
    return {"AlignMamba-2": [v for v in variants if not v.startswith("AlignMamba")],
            "AlignMamba-1": [v for v in variants if v.startswith("AlignMamba-1 ")]}


def paired_rows(record: dict, metrics=PAIRED_METRICS):
    """Every ablation minus its reference model, paired by seed: :func:`~alignlib.experiments.stats.paired_families`
    over :func:`paired_groups` (the whole table one Holm family per metric), one row per (variant, metric)."""
    runs = training.trained_runs(record)
    variants = [v for v in dict.fromkeys(runs.variant) if not is_control(v)]
    return stats.paired_families(runs, paired_groups(variants), metrics)


def compare_to_reference(record: dict, reference: str, metric: str = "MAE"):
    """The rows of :func:`paired_rows` against ``reference`` for ``metric``: ``variant, mean, low,
    high, p_adjusted, mde, verdict`` (negative MAE differences are improvements)."""
    rows = paired_rows(record, [metric])
    return rows[rows.reference == reference][["variant", "mean", "low", "high", "p_adjusted", "mde", "verdict"]]


def paired_differences(record: dict, metrics=PAIRED_METRICS):
    """:func:`paired_rows` as notebook 08's table: per variant and metric the difference with its
    95 % interval, its verdict and the per-seed values."""
    rows = paired_rows(record, metrics)
    rows = rows.assign(difference=[f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]" for m, lo, hi in zip(rows["mean"], rows.low, rows.high)])
    order = list(dict.fromkeys(zip(rows.reference, rows.variant)))
    return rows.pivot(index=["reference", "variant"], columns="metric", values=["difference", "verdict", "per_seed"]) \
        .reindex(order)


def one_sign_check(record: dict):
    """Per metric (Acc-2, F1), the values the runs reached: ``distinct, low, high`` and ``one_sign``
    (every run's Acc-2 is one of two shares that sum to 1: each model predicts one sign for every
    test clip, and Acc-2 and F1 cannot separate the variants)."""
    import pandas as pd

    results = training.trained_runs(record)
    acc = results[results.metric == "Non0_acc_2"].value.round(9).unique()
    one_sign = len(acc) == 1 or (len(acc) == 2 and abs(acc.sum() - 1) < 1e-6)
    rows = [{"metric": metric, "distinct": values.round(9).nunique(), "low": values.min(), "high": values.max(),
             "one_sign": one_sign}
            for metric in ("Non0_acc_2", "Non0_F1_score") for values in [results[results.metric == metric].value]]
    return pd.DataFrame(rows)


def placement(record: dict):
    """:func:`~alignlib.experiments.training.reference_rows` of every variant (MAE against its
    data's lines) with ``audio_on_word``, the share of audio frames its plan puts on their word."""
    summary = stats.summary(training.trained_runs(record), ["variant"])
    rows = training.reference_rows(summary, training.reference_summary(record), "variant")
    audio = summary[summary.metric == "correspondence_accuracy_audio"].set_index("variant")["mean"]
    return rows.assign(audio_on_word=rows.variant.map(audio))


def paper_drop(variant: str, reference: str) -> float:
    """The paper's MOSI Acc-2 of ``variant`` minus that of ``reference`` (percentage points)."""
    return PAPER_ABLATIONS[variant][0] - PAPER_ABLATIONS[reference][0]


def differing(paired) -> list[str]:
    """The rows of a :func:`paired_rows` table whose Holm-adjusted p is below ALPHA, in words."""
    return [f"{r.variant} against {r.reference}: {r.metric} {r['mean']:+.3f} [{r.low:+.3f}, {r.high:+.3f}], "
            f"adjusted p = {r.p_adjusted:.2g}" for _, r in paired.iterrows() if r.p_adjusted < stats.ALPHA]


def summary(record: dict) -> str:
    """The answer: the papers' ablation claims, where our rows lie against the reference lines, the
    paired differences after Holm's adjustment (or the smallest effect they could detect), the three
    paper rows that agree, and the true-plan control."""
    rows = placement(record).set_index("variant")
    paired = paired_rows(record)
    papers = [v for v in rows.index if not is_control(v)]
    windows = [v for v in papers if v == "AlignMamba-1 w/o local OT"]  # proportional windows: no plan of its own
    own = [v for v in papers if v not in windows]
    n_seeds = int(stats.summary(training.trained_runs(record), ["variant"])["n"].max())
    mae = paired[paired.metric == "MAE"]
    single = SINGLE_STREAM["w/o both (AlignMamba-2 Table 3)"]
    text = [f"**Ablations.** The papers (MOSI Acc-2): without the dual alignment loss AlignMamba-2 loses "
            f"{-paper_drop('w/o dual alignment loss', 'AlignMamba-2'):.1f} points, without the experts "
            f"{-paper_drop('w/o Modality-Aware Mamba', 'AlignMamba-2'):.1f}, without both "
            f"{-paper_drop('w/o both', 'AlignMamba-2'):.1f}; AlignMamba-1 loses "
            f"{-paper_drop('AlignMamba-1 w/o local OT', 'AlignMamba-1'):.1f} without its local OT and "
            f"{-paper_drop('AlignMamba-1 w/o global MMD', 'AlignMamba-1'):.1f} without its global MMD.",
            f"Here ({n_seeds} seeds, the synthetic benchmark) all {len(papers)} rows of the papers and our extra "
            f"ablations lie at or above the `set_level` line ({rows.set_level.iloc[0]:.3f}; MAE "
            f"{rows.loc[papers, 'mean'].min():.3f} to {rows.loc[papers, 'mean'].max():.3f})"
            if (rows.loc[papers, "position"] != "below").all() else
            f"Here ({n_seeds} seeds) {int((rows.loc[papers, 'position'] == 'below').sum())} of {len(papers)} rows lie "
            f"below the `set_level` line ({rows.set_level.iloc[0]:.3f})",
            f"and the models' own plans put {rows.loc[own, 'audio_on_word'].min():.2f} to "
            f"{rows.loc[own, 'audio_on_word'].max():.2f} of the audio frames on their word (the row without local OT "
            f"uses proportional windows, which read no feature: {rows.loc[windows, 'audio_on_word'].max():.2f}): no model "
            "binds a cue to its word, so removing a loss or a layer has no alignment to take away."
            if (rows.loc[papers, "position"] != "below").all() else ".",
            f"Paired by seed and Holm-adjusted over the table's {len(mae)} comparisons per metric, "
            + (f"{len(differing(paired))} differ ({'; '.join(differing(paired))})." if differing(paired) else
               f"none differs: every MAE difference is not distinguishable (adjusted p ≥ {mae.p_adjusted.min():.2g}), "
               f"with minimal detectable effects of {mae.mde.min():.3f} to {mae.mde.max():.3f} MAE."),
            (f"The papers report the same MOSI Acc-2 / F1, {' / '.join(map(str, single))}, for "
             f"{', '.join(SINGLE_STREAM)}: three rows agree because without its alignment losses and its experts "
             "AlignMamba-2 is that single-stream Mamba baseline, as its paper says."
             if len(set(SINGLE_STREAM.values())) == 1 else "")]
    for control in [v for v in rows.index if is_control(v)]:
        row = rows.loc[control]
        text.append(f"{control}: MAE {row['mean']:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}], {row.to_bound:.0%} of "
                    f"the way from `set_level` to `bound`" + (" (the true-plan control at this budget)." if "oracle" in
                                                                  control else "."))
    return " ".join(text)


def conclusion(record: dict) -> str:
    """The committed ablations in detail, every figure formatted from ``record``: each row against the
    reference lines, each paired difference whose interval excludes 0 only before Holm's adjustment,
    AlignMamba-1's plan against the proportional windows of its row without local OT, and whether
    Acc-2 can separate the rows."""
    rows = placement(record)
    if rows.empty:
        return "No reference lines were recorded with these runs: they cannot be placed."
    paired = paired_rows(record)
    text = ["**Each row against the reference lines** (test MAE): "
            + "; ".join(training.reference_sentences(rows, "variant")) + "."]
    unadjusted = paired[(paired.p < stats.ALPHA) & (paired.p_adjusted >= stats.ALPHA)]
    for _, r in unadjusted.iterrows():
        text.append(f"{r.variant} against {r.reference}: paired {r.metric} {r['mean']:+.3f} [{r.low:+.3f}, {r.high:+.3f}] "
                    f"excludes 0 on its own (p = {r.p:.2g}), but not after Holm's adjustment over the table's "
                    f"{int((paired.metric == r.metric).sum())} {r.metric} comparisons: {r.verdict}.")
    audio = rows.set_index("variant").audio_on_word
    if {"AlignMamba-1", "AlignMamba-1 w/o local OT"} <= set(audio.index):
        text.append(f"AlignMamba-1's relaxed plan puts {audio['AlignMamba-1']:.2f} of the audio frames on their word, "
                    f"the proportional windows of its row without local OT {audio['AlignMamba-1 w/o local OT']:.2f}.")
    signs = one_sign_check(record)
    if signs.one_sign.all():
        text.append("Every run's Acc-2 is one of the two signs' shares of the test clips: each model predicts one sign "
                    "for every clip, so Acc-2 and F1 cannot separate the rows.")
    return "\n\n".join(text)


def show(record: dict, title: str):
    """The table, the MAE and Acc-2 intervals per variant beside the reference lines, and the paired
    differences; returns the summary table."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    summary, shown = table(record)
    print(f"{title}: {record['command']}")
    display(shown)
    references = training.reference_summary(record)
    fig, axes = plt.subplots(1, 2, figsize=(15, 5), sharey=True)
    for ax, metric in zip(axes, ("MAE", "Non0_acc_2")):
        plots.intervals(ax, summary, "variant", metric)
        plots.reference_lines(ax, references, metric)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{title}: test metrics, mean and 95 % t-interval over {int(summary['n'].max())} seeds "
                 "(clipped to the metric's range)")
    plt.tight_layout()
    plt.show()
    display(one_sign_check(record))
    if summary["n"].max() > 1:
        display(paired_differences(record))
    return summary


SWEEP = Sweep(
    name="ablations",
    reproduces="AlignMamba-2 Table 3; AlignMamba-1 Table 3 (alignment rows)",
    profiles={"default": {**training.SIZES["default"], "seeds": (0,)},
              "full": {**training.SIZES["full"], "seeds": (0, 1, 2)}},
    grid=grid, execute=training.execute, estimate=training.estimate, show=show,
    statistics=lambda record: stats.records(paired_rows(record)))
