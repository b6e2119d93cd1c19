"""The missing sweep: AlignMamba-1's Table 1 protocol. Each model is trained on complete data, then
its best checkpoint is tested with every modality of every test clip dropped with probability
``r`` (at inference only; seeded by the run's seed, at least one modality kept per clip), at rates
0 to 0.7; and its results view (notebook 08): curves with bands beside the paper's, each model's drop
from 0.1 to 0.7 and the drops paired by seed (Holm-adjusted)."""
from __future__ import annotations

from pathlib import Path

from alignlib.experiments import plots, stats, training
from alignlib.experiments.sweep import Sweep

RATES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # AlignMamba-1 Table 1 (0 added as the reference)
MODELS = ("alignmamba1", "alignmamba2", "concat", "multistream")
PAPER_MISSING = {0.1: 85.7, 0.2: 84.3, 0.3: 82.2, 0.4: 80.0, 0.5: 77.6, 0.6: 75.8, 0.7: 73.8}  # AlignMamba-1, MOSI Acc-2 %
PAPER_FUSION = {"concat": ("Single-stream", 82.3), "multistream": ("Multi-stream", 83.7)}  # AlignMamba-1 Table 3, MOSI Acc-2 %


def grid(settings: dict) -> list[dict]:
    """Each model trained on complete data, then tested at every rate (one run per seed)."""
    return [training.references_run(settings)] + [
        {**training.training_run(model, model, {}, seed, settings), "test_missing_rates": list(RATES)}
        for model in MODELS for seed in settings["seeds"]]


@training.with_references
def execute(run: dict, root: Path, device: str) -> tuple[dict, list[dict]]:
    """Train (resumable), then one row per rate: the best checkpoint's test metrics at that rate (the
    first row also how the run ended, :data:`training.CONVERGENCE`)."""
    from alignlib.train import train

    config = training.train_config(run, root, device, resume=True)
    ended = {k: v for k, v in train(config, progress=False).items() if k in training.CONVERGENCE}
    rows = [{"test_missing_rate": rate, "metrics": metrics}
            for rate, metrics in missing_metrics(config, run["test_missing_rates"])]
    rows[0]["metrics"].update(ended)
    return training.recorded(config, root), rows


def missing_metrics(config, rates) -> list[tuple[float, dict]]:
    """Test metrics of the run's best checkpoint with modalities dropped at each rate (at inference
    only; seeded by the run's seed, at least one modality kept per clip)."""
    from alignlib.data import load_mmsa, missing_modality_mask
    from alignlib.models.checkpoint import load_model
    from alignlib.train import choose_device, evaluate

    device = choose_device(config.device)
    model = load_model(Path(config.out) / "best.pt")[0].to(device)
    test = load_mmsa(config.data).splits["test"]
    results = []
    for rate in rates:
        present = missing_modality_mask(len(test), rate, seed=config.seed) if rate > 0 else None
        results.append((rate, evaluate(model, test, config.batch_size, device, present=present)[0]))
    return results


# -- results view (notebook 08) -----------------------------------------------------------------------
DROP_FROM, DROP_TO = 0.1, 0.7  # the paper's Δ: Acc-2 at r = 0.1 minus Acc-2 at r = 0.7


def curves(record: dict):
    """Per model, rate and metric: ``n, mean, ci_low, ci_high`` over seeds (clipped to the metric's range)."""
    return stats.clipped_summary(training.trained_runs(record), ["model", "test_missing_rate"])


def drops(record: dict):
    """One row per model and seed: ``drop``, its Acc-2 (Non0, in points) at r = 0.1 minus at r = 0.7,
    as the long table :func:`~alignlib.experiments.stats.paired_differences` reads (``metric`` "Acc-2 drop")."""
    runs = training.trained_runs(record)
    by_seed = runs[runs.metric == "Non0_acc_2"].pivot_table(index=["model", "seed"], columns="test_missing_rate",
                                                             values="value")
    drop = (100 * (by_seed[DROP_FROM] - by_seed[DROP_TO])).rename("value").reset_index()
    return drop.assign(metric="Acc-2 drop")


def drop_summary(record: dict):
    """Per model: ``n, mean, ci_low, ci_high`` of its Acc-2 drop (points) from r = 0.1 to 0.7."""
    return stats.summary(drops(record), ["model"])


def paired_drops(record: dict, reference: str = "alignmamba1"):
    """Each peer's drop minus ``reference``'s, paired by seed (the same seed gives every model the same
    data order and the same missing-modality masks), Holm over the peers: a positive difference is
    a peer that loses more than ``reference``."""
    return stats.paired_differences(drops(record), reference, by="model")


def rate_invariant(record: dict) -> bool:
    """Whether every run's Acc-2 is the same at every rate (the models predict one sign whatever they get)."""
    runs = training.trained_runs(record)
    per_run = runs[runs.metric == "Non0_acc_2"].groupby(["model", "seed"]).value.agg(lambda v: v.round(9).nunique())
    return bool((per_run == 1).all())


def summary(record: dict) -> str:
    """The answer: the paper's drop, each model's drop with its interval, AlignMamba-1's drop against
    its peers (paired, Holm-adjusted, with the smallest detectable difference),
    and where the models lie against the reference lines with every modality present."""
    dropped = drop_summary(record).set_index("model")
    paired = paired_drops(record)
    at_zero = curves(record)
    rows = training.reference_rows(at_zero[at_zero.test_missing_rate == 0.0], training.reference_summary(record), "model")
    paper = PAPER_MISSING[DROP_FROM] - PAPER_MISSING[DROP_TO]
    text = [f"**Missing modalities** (AlignMamba-1 Table 1: on MOSI its Acc-2 falls from {PAPER_MISSING[DROP_FROM]} % at "
            f"r = {DROP_FROM} to {PAPER_MISSING[DROP_TO]} % at r = {DROP_TO}, a drop of {paper:.1f} points, less than the "
            f"methods it is compared with). Here ({int(dropped['n'].max())} seeds) the drops are "
            + ", ".join(f"{m} {r['mean']:.1f} [{r.ci_low:.1f}, {r.ci_high:.1f}]" for m, r in dropped.iterrows())
            + " points."]
    apart = paired[paired.p_adjusted < stats.ALPHA]
    text.append("Paired by seed against AlignMamba-1 (peer minus AlignMamba-1, Holm over the peers): "
                + "; ".join(f"{r.model} {r['mean']:+.1f} [{r.low:+.1f}, {r.high:+.1f}], {r.verdict}"
                            for _, r in paired.iterrows())
                + (". AlignMamba-1 does not lose measurably less than its peers (AlignMamba-2 among them)." if apart.empty
                   else "."))
    if not rows.empty:
        text.append(f"With every modality present, {', '.join(rows.model)} lie "
                    + ("at or above" if (rows.position != "below").all() else "partly below")
                    + f" the `set_level` line ({rows.set_level.iloc[0]:.3f}): a model that has bound no cue to its word "
                    "loses a modality's bag of cues when it goes, so models that know the same bags lose about the same.")
    if rate_invariant(record):
        text.append("Every run's Acc-2 is the same at every rate: the models predict one sign whatever they are given, "
                    "so a drop of 0 is not robustness.")
    return " ".join(text)


def reference_shares(record: dict):
    """What each reference line adds, as a share of the way from ``constant`` to ``bound`` (test MAE):
    ``text_only`` (the words alone), ``set_level`` (the bags of audio and video cues on top), ``bound``."""
    lines = training.reference_summary(record)
    mae = lines[lines.metric == "MAE"].set_index("reference")["mean"]
    order = ["constant", "text_only", "set_level", "bound"]
    return (-mae[order].diff().iloc[1:]) / (mae["constant"] - mae["bound"])


def fusion_rows(record: dict):
    """The peers of AlignMamba-1 Table 3's fusion rows at r = 0: ``model, paper row, paper Acc-2, Acc-2`` (%)."""
    import pandas as pd

    at_zero = curves(record)
    acc = at_zero[(at_zero.metric == "Non0_acc_2") & (at_zero.test_missing_rate == 0.0)].set_index("model")
    return pd.DataFrame([{"model": model, "paper row": row, "paper Acc-2": paper, "Acc-2": 100 * acc.loc[model, "mean"],
                          "ci_low": 100 * acc.loc[model, "ci_low"], "ci_high": 100 * acc.loc[model, "ci_high"]}
                         for model, (row, paper) in PAPER_FUSION.items() if model in acc.index])


def show(record: dict, title: str):
    """Acc-2 and MAE against the rate with bands (and the paper's curve), the drops and their paired
    differences, the fusion rows at r = 0; returns the summary table."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    summary = curves(record)
    print(f"{title}: {record['command']}")
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
    plots.curves_with_bands(axes[0], summary, "test_missing_rate", "model", "Non0_acc_2", scale=100)
    axes[0].plot(list(PAPER_MISSING), list(PAPER_MISSING.values()), "k--", label="paper: AlignMamba-1, real MOSI")
    axes[0].set(ylabel="Acc-2 (Non0, %)")
    plots.curves_with_bands(axes[1], summary, "test_missing_rate", "model", "MAE")
    plots.reference_lines(axes[1], training.reference_summary(record), "MAE", vertical=False)
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(f"{title}: test metrics against the missing rate (bands: 95 % t-interval over "
                 f"{int(summary['n'].max())} seeds, clipped)")
    plt.tight_layout()
    plt.show()
    display(drop_summary(record))
    if summary["n"].max() > 1:
        display(paired_drops(record)[["model", "mean", "low", "high", "p_adjusted", "mde", "verdict"]])
    display(fusion_rows(record))
    return summary


SWEEP = Sweep(
    name="missing",
    reproduces="AlignMamba-1 Table 1 (missing modalities at test time)",
    profiles={"default": {**training.SIZES["default"], "seeds": (0,)},
              "full": {**training.SIZES["full"], "seeds": (0, 1, 2, 3, 4)}},
    grid=grid, execute=execute, estimate=training.estimate, show=show,
    statistics=lambda record: stats.records(paired_drops(record)))
