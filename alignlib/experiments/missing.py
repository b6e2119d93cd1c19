"""The missing sweep: AlignMamba-1's Table 1 protocol. Each model is trained on complete data, then
its best checkpoint is tested with every modality of every test clip dropped with probability
``r`` (at inference only; seeded by the run's seed, at least one modality kept per clip), at rates
0 to 0.7; and notebook 08's view: curves with bands beside the paper's, drops from 0.1 to 0.7."""
from __future__ import annotations

import math
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
    """Train (resumable), then one row per rate: the best checkpoint's test metrics at that rate."""
    from alignlib.train import train

    config = training.train_config(run, root, device, resume=True)
    train(config, progress=False)
    return training.recorded(config, root), [{"test_missing_rate": rate, "metrics": metrics}
                                             for rate, metrics in missing_metrics(config, run["test_missing_rates"])]


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


def show(record: dict, title: str):
    """Acc-2 and MAE against the rate with bands (and the paper's curve), each model's drop from 0.1
    to 0.7 with its interval, and what the numbers rule out; returns the summary table."""
    import matplotlib.pyplot as plt

    summary = stats.clipped_summary(training.trained_runs(record), ["model", "test_missing_rate"])
    references = training.reference_summary(record)
    print(f"{title}: {record['command']}")
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
    plots.curves_with_bands(axes[0], summary, "test_missing_rate", "model", "Non0_acc_2", scale=100)
    axes[0].plot(list(PAPER_MISSING), list(PAPER_MISSING.values()), "k--", label="paper: AlignMamba-1, real MOSI")
    axes[0].set(ylabel="Acc-2 (Non0, %)")
    plots.curves_with_bands(axes[1], summary, "test_missing_rate", "model", "MAE")
    plots.reference_lines(axes[1], references, "MAE", vertical=False)
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(f"{title}: test metrics against the missing rate (bands: 95 % t-interval over "
                 f"{int(summary['n'].max())} seeds, clipped)")
    plt.tight_layout()
    plt.show()
    acc = summary[summary.metric == "Non0_acc_2"].pivot(index="model", columns="test_missing_rate", values="mean")
    mae = summary[summary.metric == "MAE"].pivot(index="model", columns="test_missing_rate", values="mean")
    runs = training.trained_runs(record)
    by_seed = runs[runs.metric == "Non0_acc_2"].pivot_table(index=["model", "seed"], columns="test_missing_rate",
                                                             values="value")
    for model in acc.index:
        drop = 100 * (by_seed.loc[model][0.1] - by_seed.loc[model][0.7])
        mean, low, high = stats.mean_ci(drop.to_numpy())
        interval = f" [{low:.1f}, {high:.1f}]" if math.isfinite(low) else ""
        print(f"  {model:<12} Acc-2 drop from r=0.1 to r=0.7: {mean:5.1f}{interval} points (paper, AlignMamba-1 on "
              f"MOSI: 11.9); MAE {mae.loc[model, 0.0]:.3f} at r=0, {mae.loc[model, 0.7]:.3f} at r=0.7")
    per_run = runs[runs.metric == "Non0_acc_2"].groupby(["model", "seed"]).value.agg(lambda v: v.round(9).nunique())
    if (per_run == 1).all():
        print("  every run's Acc-2 is the same at every rate: the models predict one sign whatever they are "
              "given, so a 0.0-point drop is not robustness")
    lower = [m for m in mae.index if mae.loc[m, 0.7] < mae.loc[m, 0.0]]
    if lower:
        print(f"  MAE lower with 70 % of the modalities dropped than with none: {', '.join(lower)}: "
              "differences of this size are noise at this training budget")
    for model, (row, paper) in PAPER_FUSION.items():
        if model in acc.index:
            print(f"  {model:<12} Acc-2 at r=0: {100 * acc.loc[model, 0.0]:.1f} % "
                  f"(paper, AlignMamba-1 Table 3 '{row}' on MOSI: {paper} %)")
    print("  with every modality present (r = 0):")
    print("\n".join(training.reference_sentences(
        training.reference_rows(summary[summary.test_missing_rate == 0.0], references, "model"), "model")))
    return summary


SWEEP = Sweep(
    name="missing",
    reproduces="AlignMamba-1 Table 1 (missing modalities at test time)",
    profiles={"default": {**training.SIZES["default"], "seeds": (0,)},
              "full": {**training.SIZES["full"], "seeds": (0, 1, 2, 3, 4)}},
    grid=grid, execute=execute, estimate=training.estimate, show=show)
