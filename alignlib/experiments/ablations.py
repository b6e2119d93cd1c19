"""The ablations sweep: AlignMamba-2's Table 3 (with the OT and MMD losses also removed one at a time
and a parameter-matched vanilla fusion) and AlignMamba-1's alignment ablations (its Table 3); and
notebook 08's view of them: a table beside the paper's rows, intervals, verdicts, paired differences."""
from __future__ import annotations

import math

import numpy as np

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


# -- notebook 08 --------------------------------------------------------------------------------------
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


def compare_to_reference(summary, reference: str, metric: str, lower_is_better: bool) -> None:
    """Print, for each variant, whether its interval of ``metric`` lies apart from the reference's."""
    rows = summary[summary.metric == metric].set_index("variant")
    ref = rows.loc[reference]
    for variant, row in rows.iterrows():
        if variant == reference:
            continue
        if not (math.isfinite(row.ci_low) and math.isfinite(ref.ci_low)):
            verdict = "no interval to compare with"
        elif row.ci_high < ref.ci_low or row.ci_low > ref.ci_high:
            better = (row["mean"] < ref["mean"]) == lower_is_better
            verdict = "better than" if better else "worse than"
        else:
            verdict = "not distinguishable from"
        spread = f"[{row.ci_low:.3f}, {row.ci_high:.3f}]" if math.isfinite(row.ci_low) else "(one seed)"
        print(f"  {variant:<58} {metric} {row['mean']:.3f} {spread}: {verdict} {reference}")


def one_sign_check(record: dict) -> None:
    """Print whether every run predicts one sign for every test clip (its Acc-2 is then one of the two
    signs' shares of the test clips, which sum to 1)."""
    results = training.trained_runs(record)
    acc = results[results.metric == "Non0_acc_2"].value.round(9)
    f1 = results[results.metric == "Non0_F1_score"].value.round(9)
    shares = sorted(acc.unique())
    if len(shares) == 1 or (len(shares) == 2 and abs(sum(shares) - 1) < 1e-6):
        print(f"  every run's Acc-2 is {' or '.join(f'{v:.3f}' for v in shares)} (the shares of the two signs among the "
              f"test clips) and its F1 {' or '.join(f'{v:.3f}' for v in sorted(f1.unique()))}: each model predicts one "
              "sign for every test clip, so Acc-2 and F1 cannot separate the variants here, and their wide "
              "intervals only say that the seeds picked different signs")
    else:
        print(f"  Acc-2 ranges over {acc.min():.3f} to {acc.max():.3f} across runs, F1 over {f1.min():.3f} to {f1.max():.3f}")


def show(record: dict, title: str):
    """The table, the MAE and Acc-2 intervals per variant, and the verdicts against AlignMamba-2 and
    AlignMamba-1; returns the summary table."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    summary, shown = table(record)
    print(f"{title}: {record['command']}")
    display(shown)
    references = training.reference_summary(record)
    fig, axes = plt.subplots(1, 2, figsize=(15, 5), sharey=True)
    plots.intervals(axes[0], summary, "variant", "MAE")
    plots.intervals(axes[1], summary, "variant", "Non0_acc_2")
    plots.reference_lines(axes[0], references, "MAE")
    plots.reference_lines(axes[1], references, "Non0_acc_2")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{title}: test metrics, mean and 95 % t-interval over {int(summary['n'].max())} seeds "
                 "(clipped to the metric's range)")
    plt.tight_layout()
    plt.show()
    one_sign_check(record)
    print("\n".join(training.reference_sentences(training.reference_rows(summary, references, "variant"), "variant")))
    compare_to_reference(summary, "AlignMamba-2", "MAE", lower_is_better=True)
    compare_to_reference(summary[summary.variant.str.startswith("AlignMamba-1")], "AlignMamba-1", "MAE",
                         lower_is_better=True)
    return summary


def paired_groups(variants) -> dict[str, list[str]]:
    """The rows compared with each reference model, paired by seed: AlignMamba-2's ablations with
    AlignMamba-2, AlignMamba-1's with AlignMamba-1 (the controls beyond the papers with neither)."""
    return {"AlignMamba-2": [v for v in variants if not v.startswith("AlignMamba")],
            "AlignMamba-1": [v for v in variants if v.startswith("AlignMamba-1 ")]}


def paired_rows(record: dict, reference: str, variants, metrics=("MAE", "Non0_acc_2")) -> list[dict]:
    """Per variant and metric, the mean over seeds of (variant - reference) and its paired 95 %
    t-interval: ``{"variant", "reference", "metric", "mean", "low", "high", "per seed"}``."""
    results = training.trained_runs(record)
    by_seed = results[results.metric.isin(metrics)].pivot_table(index=["variant", "seed"], columns="metric",
                                                                values="value")
    present = set(by_seed.index.get_level_values("variant"))
    rows = []
    for variant in [v for v in variants if v in present and v != reference] if reference in present else []:
        difference = (by_seed.loc[variant] - by_seed.loc[reference]).dropna()
        for metric in metrics:
            mean, low, high = stats.mean_ci(difference[metric].to_numpy())
            rows.append({"variant": variant, "reference": reference, "metric": metric, "mean": mean, "low": low, "high": high,
                         "per seed": np.round(difference[metric], 3).tolist()})
    return rows


def paired_differences(record: dict, reference: str, variants, metrics=("MAE", "Non0_acc_2")):
    """:func:`paired_rows` as notebook 08's table: the difference, its verdict and the per-seed values."""
    import pandas as pd

    rows = paired_rows(record, reference, variants, metrics)
    if not rows:
        return pd.DataFrame()
    for row in rows:
        row["difference"] = f"{row['mean']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]"
        row["seeds"] = len(row["per seed"])
        row["verdict"] = ("one seed: no interval" if not math.isfinite(row["low"]) else
                          "interval excludes 0" if row["low"] > 0 or row["high"] < 0 else "interval includes 0")
    order = list(dict.fromkeys(row["variant"] for row in rows))
    return pd.DataFrame(rows).pivot(index="variant", columns="metric",
                                    values=["difference", "verdict", "per seed"]).reindex(order)


def is_control(variant: str) -> bool:
    """Whether a row is one of the controls beyond the papers (AlignMamba-1 given the true or the learned plan)."""
    return variant.startswith("AlignMamba-1, ")


def conclusion(record: dict) -> str:
    """The committed ablations in words, every figure formatted from ``record`` (MAE; Acc-2 is
    ``Non0_acc_2``): where the rows of the papers lie against the reference lines, what the controls
    reach, and each paired difference to its reference model whose 95 % interval excludes 0."""
    references = training.reference_summary(record)
    if references is None:
        return "No reference lines were recorded with these runs: they cannot be placed."
    lines = references[references.metric == "MAE"].set_index("reference")["mean"]
    summary = stats.summary(training.trained_runs(record), ["variant"]).set_index(["variant", "metric"])
    if summary["n"].max() < 2:
        return "One seed: no intervals, so nothing here can be placed against the lines or compared."
    variants = list(dict.fromkeys(summary.index.get_level_values("variant")))
    rows = [v for v in variants if not is_control(v)]
    mae = summary.xs("MAE", level="metric")
    above = [v for v in rows if mae.loc[v, "ci_low"] > lines["set_level"]]
    on_line = [v for v in rows if v not in above and mae.loc[v, "ci_high"] >= lines["set_level"]]
    audio = summary.xs("correspondence_accuracy_audio", level="metric")["mean"]
    text = [f"**What the committed ablations say** ({int(summary['n'].max())} seeds). Of the {len(rows)} rows "
            f"without a control (the papers' rows and our extra ablations), {len(above)} sit above the `set_level` "
            f"line ({lines['set_level']:.3f}) and {len(on_line)} on it (its interval covers the line): MAE "
            f"{mae.loc[rows, 'mean'].min():.3f} to {mae.loc[rows, 'mean'].max():.3f}. Their plans (AlignMamba-1's "
            f"own, the exact plan between AlignMamba-2's states) put {audio[rows].min():.2f} to "
            f"{audio[rows].max():.2f} of the audio frames on their word."
            + (" None of them gets below the line: none has bound a cue to its word." if len(above) + len(on_line) == len(rows)
               else "")]
    for control in [v for v in variants if is_control(v)]:
        share = (lines["set_level"] - mae.loc[control, "mean"]) / (lines["set_level"] - lines["bound"])
        text.append(f"{control}: MAE {mae.loc[control, 'mean']:.3f} [{mae.loc[control, 'ci_low']:.3f}, "
                    f"{mae.loc[control, 'ci_high']:.3f}], {share:.0%} of the way from `set_level` to `bound` "
                    f"({lines['bound']:.3f}), audio frames on their word {audio[control]:.2f}.")
    paired = [row for reference, group in paired_groups(rows).items() for row in paired_rows(record, reference, group)]
    apart = [row for row in paired if row["low"] > 0 or row["high"] < 0]
    for row in apart:
        reference = row["reference"]
        better = (row["mean"] < 0) == (row["metric"] == "MAE")
        name = "MAE" if row["metric"] == "MAE" else "Acc-2"
        paper = PAPER_ABLATIONS.get(row["variant"])
        opposite = paper is not None and better != (paper[0] > PAPER_ABLATIONS[reference][0])
        text.append(f"Paired by seed, {row['variant']} against {reference}: {name} {row['mean']:+.3f} "
                    f"[{row['low']:+.3f}, {row['high']:+.3f}], {'better' if better else 'worse'} than {reference}"
                    + ("; the paper's row goes the other way." if opposite else "."))
    if not apart:
        text.append("No paired difference to its reference model has an interval that excludes 0.")
    if "AlignMamba-1 w/o local OT" in rows and "AlignMamba-1" in rows:
        text.append(f"AlignMamba-1's relaxed plan puts {audio['AlignMamba-1']:.2f} of the audio frames on their word, "
                    f"the proportional windows of the row without local OT {audio['AlignMamba-1 w/o local OT']:.2f}"
                    + (": removing the local OT gives this model more position, not less." if
                       audio["AlignMamba-1 w/o local OT"] > audio["AlignMamba-1"] else "."))
    return "\n\n".join(text)


SWEEP = Sweep(
    name="ablations",
    reproduces="AlignMamba-2 Table 3; AlignMamba-1 Table 3 (alignment rows)",
    profiles={"default": {**training.SIZES["default"], "seeds": (0,)},
              "full": {**training.SIZES["full"], "seeds": (0, 1, 2)}},
    grid=grid, execute=training.execute, estimate=training.estimate, show=show)
