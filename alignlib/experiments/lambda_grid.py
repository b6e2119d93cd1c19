"""The lambda sweep: AlignMamba-2's sensitivity to its loss weights (its Fig. 6), as the whole grid
lambda_OT x lambda_MMD (log-spaced, with 0 on both axes); and notebook 08's heatmaps and verdict."""
from __future__ import annotations

from alignlib.experiments import plots, stats, training
from alignlib.experiments.sweep import Sweep


def grid(settings: dict) -> list[dict]:
    values = settings["lambdas"]
    return [training.references_run(settings)] + [training.training_run(f"ot {ot:g} mmd {mmd:g}", "alignmamba2", {"lambda_ot": ot, "lambda_mmd": mmd}, seed,
                                  settings, lambda_ot=ot, lambda_mmd=mmd)
            for ot in values for mmd in values for seed in settings["seeds"]]


def show(record: dict, title: str):
    """Heatmaps of the test MAE and Corr, the lowest and highest cell, and whether any cell can be
    told apart from the lowest; returns the summary table."""
    import matplotlib.pyplot as plt

    summary = stats.summary(training.trained_runs(record), ["lambda_ot", "lambda_mmd"])
    n_seeds = int(summary["n"].max())
    print(f"{title}: {record['command']}")
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    plots.heatmap(axes[0], summary, "MAE")
    plots.heatmap(axes[1], summary, "Corr")
    fig.suptitle(f"{title}: AlignMamba-2 test metrics over λ_OT × λ_MMD (mean over {n_seeds} seed(s))")
    plt.tight_layout()
    plt.show()
    mae = summary[summary.metric == "MAE"].sort_values("mean")
    best, worst = mae.iloc[0], mae.iloc[-1]
    references = training.reference_summary(record)
    if references is not None:
        lines = references[references.metric == "MAE"].set_index("reference")["mean"]
        below = mae[mae.ci_high < lines["set_level"]] if n_seeds > 1 else mae[mae["mean"] < lines["set_level"]]
        print(f"  reference lines (MAE): " + ", ".join(f"{k} {v:.3f}" for k, v in lines.items())
              + f"; cells below set_level: {len(below)} of {len(mae)}")
    print(f"  lowest MAE {best['mean']:.3f} at λ_OT {best.lambda_ot:g}, λ_MMD {best.lambda_mmd:g}; "
          f"highest {worst['mean']:.3f} at λ_OT {worst.lambda_ot:g}, λ_MMD {worst.lambda_mmd:g} "
          f"(paper's best: λ_OT 0.001, λ_MMD 0.01); spread of the cell means {worst['mean'] - best['mean']:.4f}")
    if n_seeds < 2:
        print("  no interval (1 seed): nothing here can be told apart from seed noise")
        return summary
    half = ((mae.ci_high - mae.ci_low) / 2).median()
    apart = mae[mae.ci_low > best.ci_high]
    print(f"  median half-width of a cell's 95 % interval: {half:.4f}; "
          f"cells whose interval lies entirely above the lowest cell's: {len(apart)} of {len(mae) - 1}")
    if apart.empty:
        print(f"  no cell is distinguishable from the lowest: the grid is flat at this budget "
              f"(spread {worst['mean'] - best['mean']:.4f} against half-widths of {half:.4f}), and the 'lowest' cell "
              "is chosen by noise")
    return summary


SWEEP = Sweep(
    name="lambda",
    reproduces="AlignMamba-2 Fig. 6 (lambda_OT x lambda_MMD sensitivity)",
    profiles={"default": {**training.SIZES["default"], "seeds": (0,), "lambdas": (0.0, 1e-2, 1.0)},
              "full": {**training.SIZES["full"], "seeds": (0, 1), "lambdas": (0.0, 1e-3, 1e-2, 1e-1)}},
    grid=grid, execute=training.execute, estimate=training.estimate, show=show)
