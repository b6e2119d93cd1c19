# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: language_info
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   language_info:
#     name: python
# ---

# %% [markdown]
# # 08 · The papers' experiments, by one command
#
# Four claims of the papers, each rerun as a sweep of `alignlib.experiments`
# (`python -m alignlib.experiments NAME --profile full --out build/experiments`):
#
# | sweep | reproduces |
# | --- | --- |
# | `ablations` | AlignMamba-2 Table 3, AlignMamba-1 Table 3 (alignment rows) |
# | `missing` | AlignMamba-1 Table 1: modalities missing at test time |
# | `lambda` | AlignMamba-2 Fig. 6: λ_OT × λ_MMD |
# | `efficiency` | AlignMamba-2 Fig. 4/5 (AlignMamba-1 Fig. 3/4): memory and latency against length |
#
# **What you will learn**
# 1. what the papers' experiments give on the synthetic benchmark, and why (the answer, next);
# 2. how an experiment is declared and run as a resumable sweep, and what its JSON holds;
# 3. how to read several seeds: means with 95 % t-intervals, differences paired by seed, Holm's
#    adjustment when a table makes many comparisons, the smallest effect a design can detect, and one
#    least-squares trend over a whole grid;
# 4. how to read a result beside **reference lines** (`set_level`: the best without knowing which
#    frame belongs to which word; `bound`: with it; notebook 06) and **controls** (AlignMamba-1 given
#    the true plan, and the plan it learns without the tables: notebook 10).

# %% tags=["parameters"]
profile: str = "default"  # sweep profile rerun in "Reproduce it": default (CPU minutes) or full (hours)
out_dir: str = ""  # folder for the rerun's runs and JSON; empty: a temporary folder
results_dir: str = "../benchmarks/results"  # committed full-profile results, experiments_<sweep>.json
device: str = "cpu"  # cpu or cuda
metrics_path: str = ""  # where the runner records this notebook's key numbers
solutions: bool = False  # True: the Exercises section checks the reference solutions (the regression run sets it)

# %% tags=["setup"]
import tempfile
from pathlib import Path

import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from alignlib.experiments import ablations, efficiency, lambda_grid, missing, model_table, stats, sweeps
from alignlib.experiments.sweep import load
from alignlib.notebooks import record_metrics

sns.set_theme(context="notebook", style="whitegrid")
pd.set_option("display.width", 160, "display.max_columns", 20, "display.max_colwidth", 90)
SWEEPS = {name: sweep for name, sweep in sweeps().items() if sweep.notebook == "08_paper_experiments"}
committed = {name: load(path) for name in [*SWEEPS, "learned"]
             if (path := Path(results_dir) / f"experiments_{name}.json").exists()}

# %% [markdown]
# ## The answer
#
# Generated from the committed full-profile results (`benchmarks/results/experiments_*.json`: every
# model trained to convergence on the `short` preset, MOSI's 2199 clips and feature widths), beside
# the papers' claims. Every comparison is paired by seed, Holm-adjusted over its table, and a
# difference that is not distinguishable comes with the smallest effect the design could detect.

# %%
views = {"ablations": ablations, "missing": missing, "lambda": lambda_grid, "efficiency": efficiency}
display(Markdown("\n\n".join(view.summary(committed[name]) for name, view in views.items() if name in committed)))
if "learned" in committed:
    display(Markdown(model_table.oracle_sentence(committed["learned"])))

# %% [markdown]
# ## 1 · An experiment as a sweep
#
# Each sweep is one `Sweep` of `alignlib.experiments` (`sweeps()` finds them all, each the `SWEEP`
# of its own module): its profiles (`default`: CPU minutes; `full`: the committed results), its grid
# of runs, the executor of a run, its time estimate and its results view (`show`, and the pure
# functions behind it). `sweep.run` is what the command line runs: it writes one JSON with each
# run's configuration, seed, software versions and metrics after every run, and `resume=True`
# continues an interrupted sweep without repeating a finished run. One declared run of the ablations:

# %%
grid = SWEEPS["ablations"].runs("full")
print(f"ablations, full profile: {len(grid)} runs; the first trained one:")
print(grid[1])
for name, record in committed.items():
    first = next(run for run in record["runs"].values() if run.get("software"))
    print(f"{name:>10}: {len(record['runs'])} runs, commit {first['software']['git']}")

# %% [markdown]
# `software.git` is the commit the runs came from; `+dirty` means the working tree had uncommitted
# changes when they ran. A committed result should come from a clean tree, so that the commit names
# exactly the code that produced it.
#
# ## 2 · Ablations (AlignMamba-2 Table 3, AlignMamba-1 Table 3)
#
# AlignMamba-2's rows, with the OT and MMD losses also removed one at a time, the vanilla-fusion
# row also at a **parameter-matched width** (the `d_model` at which AlignMamba-2 with vanilla Mamba
# fusion has as many parameters as with Modality-Aware Mamba; `d_model` is the only width option, so
# the whole model widens), and AlignMamba-1 without its local OT (proportional-time windows instead
# of the plan) or its global MMD. Our "w/o Modality-Aware Mamba" is the paper's
# **"w/o Mixture-of-Experts"** row. The paper's columns are Acc-2 and F1 on the real CMU-MOSI; ours
# come from the synthetic benchmark, so only the **differences between rows** can compare. Two rows
# go beyond the paper, as controls: AlignMamba-1 given the **true** plan (a true-plan control at
# this training budget, not a ceiling: see the answer) and with the plan it **learns** without the
# tables (notebook 10). Grey lines mark the reference lines of the same data (notebook 06).
#
# The t-interval of a bounded metric can reach past its range (Acc-2 and F1 in [0, 1], Corr in
# [-1, 1]) when there are few seeds; the table and plots **clip the intervals to the range for
# display**. Acc-2 and F1 are MMSA's `Non0_acc_2` and `Non0_F1_score` (the sign of the prediction
# against the sign of the label, over the clips whose label is not 0).
#
# **Paired by seed, adjusted for multiplicity.** The variants of one seed share that seed's data
# order and initial draw, so each variant is compared with its reference model through the per-seed
# differences (`stats.paired_differences`): their mean, 95 % interval and paired t-test. The table
# makes many such comparisons; at level 0.05 one in twenty excludes 0 by chance, so the p-values are
# **Holm-adjusted** over the table's comparisons of each metric. A difference that stays
# indistinguishable comes with its **minimal detectable effect**: the true difference this design
# (these seeds, this spread) would detect with 80 % power at level 0.05 before the adjustment. It is
# not a bound: any effect inside the difference's 95 % interval cannot be excluded.

# %%
if "ablations" in committed:
    ablation_summary = SWEEPS["ablations"].show(committed["ablations"], "committed full profile")
    display(Markdown(ablations.conclusion(committed["ablations"])))

# %% [markdown]
# **Reading the ablations.** A loss or a layer can change what a model learns about alignment only
# if the model learns alignment at all: every row of the papers sits at or above the `set_level`
# line, so their differences are not differences in alignment, and after Holm's adjustment none of
# them can be told from its reference model. Why the proportional windows of "w/o local OT" put more
# frames on their word than the relaxed plan: notebook 05 compares the plans on the true tables,
# notebook 07 the plans between trained states.

# %% [markdown]
# ## 3 · Missing modalities at test time (AlignMamba-1 Table 1)
#
# Each model is trained on complete data, then tested with every modality of every test clip
# dropped with probability *r* (seeded, at least one modality kept per clip; a dropped modality's
# features are zeroed and flagged). The paper's claim is that AlignMamba-1 loses less Acc-2 from
# *r* = 0.1 to 0.7 than the methods it is compared with. Its peers in Table 1 (DCCA ... IMDer) are
# imputation methods not rebuilt here; ours are the concatenation and multi-stream Mambas, the peers
# of AlignMamba-1's Single-stream and Multi-stream rows (its Table 3, printed below beside ours at
# *r* = 0). The drops are compared paired by seed: the same seed gives every model the same data
# order and the same missing-modality masks.

# %%
if "missing" in committed:
    SWEEPS["missing"].show(committed["missing"], "committed full profile")
    shares = missing.reference_shares(committed["missing"])
    print(f"of the way from the constant line to the bound line (test MAE), the text alone carries "
          f"{shares['text_only']:.0%}, the clip's bags of audio and video cues another {shares['set_level']:.0%}")

# %% [markdown]
# **Reading the curves.** How much of the label the text alone carries is a reference line of its
# own, `text_only` against `constant` (printed above), as the real MOSI's language carries much of
# its label (AlignMamba-1 without language falls furthest in its Table 3). A model that has learned
# the text cues loses most when the text is dropped, while one that still predicts near the mean
# label barely moves with the rate: a curve that does not move is a model that has not learned the
# cues, not a robust one.

# %% [markdown]
# ## 4 · λ sensitivity (AlignMamba-2 Fig. 6)
#
# The paper varies one weight with the other at its optimum and finds the best MOSI accuracy at
# λ_MMD = 0.01 and λ_OT = 0.001, worse at 0, with a gentle degradation (λ_OT) and a slight but
# consistent decline (λ_MMD) above. Here the whole grid is run
# (log-spaced, with 0). The heatmaps show the test MAE and Corr per cell, averaged over the seeds.
#
# A cell has only a few seeds, so cell intervals overlap whatever the trend: comparing cells one by
# one cannot see a small, steady effect. One **least-squares model over every run** can
# (`stats.trend`, statsmodels' OLS): the MAE on log10 λ_OT and log10 λ_MMD (a slope per decade), an
# indicator for each λ = 0 (where the logarithm has no value; the indicator compares switching the
# loss off with its smallest weight) and the seed as a category. Its table gives each term's
# coefficient with its interval, Holm-adjusted p and minimal detectable effect.

# %%
if "lambda" in committed:
    SWEEPS["lambda"].show(committed["lambda"], "committed full profile")
    display(lambda_grid.runs_table(committed["lambda"]).head())

# %% [markdown]
# **Reading the grid.** The verdict on each weight comes from the pooled model (in the answer
# above), not from the heatmap's colours: they are scaled to the grid's own range and show noise as
# readily as a trend. And a grid with no cell below the `set_level` line cannot show an effect of
# alignment, whatever its colours: the weights only change how far above the line the model sits.

# %% [markdown]
# ## 5 · Memory and latency against length (AlignMamba-2 Fig. 4/5)
#
# The fusion module alone, batch 1, inference: AlignMamba-1 with its explicit OT plans (an
# *L* × *L* cost matrix and plan per modality pair), AlignMamba-2's Modality-Aware Mamba blocks on
# the 3*L*-token concatenation, and the MulT-style cross-modal attention block (its attention
# weights, *L* × *L* per head). The length is **tokens per modality** (the paper does not say whether
# it counts one modality or all three). Each point runs in its own process with a time and a memory
# limit; running out is recorded, and a model stops at its first failure. A slope near 1 on the
# log-log plot is linear growth, near 2 quadratic. On CPU the memory is the rise of the process's
# peak resident set over one pass and the latency the median of `repeats` passes; both are
# disturbed by whatever else runs on the machine. `--device cuda` runs the same points on a GPU.

# %%
if "efficiency" in committed:
    efficiency_points, _ = SWEEPS["efficiency"].show(committed["efficiency"], "committed full profile")
    display(efficiency.limits(committed["efficiency"]))
    display(efficiency.ratios(committed["efficiency"]))

# %% [markdown]
# **Reading the curves.** The out-of-memory points of MulT and AlignMamba-1 are where one
# *L* × *L* matrix no longer fits (the table above compares the allocation that failed with those
# matrices at that length): they measure an implementation that materialises the matrices.
# Memory-efficient attention (computed block by block, never storing the weights) would not fail
# there, and neither would a plan computed and applied in blocks. The growth of time is what these
# models share with any exact attention or OT.

# %% [markdown]
# ## Reproduce it
#
# The same four sweeps at this notebook's `profile` (`default`: 300 tiny synthetic clips, one seed,
# up to ten epochs with early stopping; `efficiency` at short lengths). These runs check the
# machinery, the reference lines and the controls on small data; with one seed they have no
# intervals and no verdicts. Each finished run is reused when this cell runs again.

# %%
out = Path(out_dir or tempfile.mkdtemp())
records = {name: sweep.run(profile, out, resume=True, device=device, progress=False) for name, sweep in SWEEPS.items()}
for name, record in records.items():
    print(f"{name:>10}: {len(record['runs'])} runs -> {SWEEPS[name].results_path(out)}")
ablation_stats = SWEEPS["ablations"].show(records["ablations"], f"this run ({profile} profile)")
display(Markdown(ablations.conclusion(records["ablations"])))

# %%
missing_stats = SWEEPS["missing"].show(records["missing"], f"this run ({profile} profile)")
same_run_gap = abs(stats.mean_of(missing_stats, "MAE", model="alignmamba2", test_missing_rate=0.0)
                   - stats.mean_of(ablation_stats, "MAE", variant="AlignMamba-2"))
print(f"determinism check: AlignMamba-2 at r=0 here and in the ablations (same configuration and seeds, trained "
      f"twice) differ in MAE by {same_run_gap:.1e}")

# %%
lambda_trend = SWEEPS["lambda"].show(records["lambda"], f"this run ({profile} profile)")
lambda_stats = lambda_grid.cells(records["lambda"])
efficiency_table, efficiency_slopes = SWEEPS["efficiency"].show(records["efficiency"], f"this run ({profile} profile)")

# %% [markdown]
# At the default lengths (three lengths, three passes each, on a shared CPU) fixed costs and other
# processes' load weigh as much as the growth itself: a negative latency slope can only be noise,
# and none of these slopes is evidence for linear or quadratic growth. That needs the full
# profile's lengths (section 5).
#
# The regression suite compares these numbers with `tests/baselines/08_paper_experiments.json`.

# %%
record_metrics(
    metrics_path,
    ablation_runs=len(records["ablations"]["runs"]),
    ablation_alignmamba2_mae=stats.mean_of(ablation_stats, "MAE", variant="AlignMamba-2"),
    ablation_without_both_mae=stats.mean_of(ablation_stats, "MAE", variant="w/o both"),
    ablation_alignmamba1_mae=stats.mean_of(ablation_stats, "MAE", variant="AlignMamba-1"),
    missing_alignmamba2_mae_r0=stats.mean_of(missing_stats, "MAE", model="alignmamba2", test_missing_rate=0.0),
    missing_alignmamba2_mae_r07=stats.mean_of(missing_stats, "MAE", model="alignmamba2", test_missing_rate=0.7),
    lambda_mae_without_alignment=stats.mean_of(lambda_stats, "MAE", lambda_ot=0.0, lambda_mmd=0.0),
    efficiency_points_ok=int((efficiency_table.status == "ok").sum()),
)

# %% [markdown]
# ## Exercises
#
# Three exercises on how the sweeps are read. Write each answer where its cell says `# your code`
# and run the cell: the check under it runs your answer on cases of its own, compares the result
# with an independent reference and, if they differ, names what differs, never the expected
# values. With the parameter `solutions=True` (the regression run sets it) every check runs the
# reference solution from `alignlib/notebooks/solutions.py` instead and folds it under its verdict.

# %%
import torch  # noqa: E402

from alignlib.notebooks.exercises import Exercises  # noqa: E402

exercise = Exercises(solutions)

# %% [markdown]
# ### 1 · The interval of a mean over seeds (§2)
#
# Every table above gives a mean over seeds with its 95 % interval, $\bar x \pm t_{n-1}\, s / \sqrt n$,
# where $s$ is the sample standard deviation (divided by $n - 1$) and $t_{n-1}$ the 97.5 % quantile
# of Student's t with $n - 1$ degrees of freedom (`scipy.stats.t.ppf`). With three seeds
# $t_2 \approx 4.30$, not 1.96: why few seeds give wide intervals.
#
# *The check*: your interval against `stats.mean_ci` and SciPy's `t.interval` for three and five seeds.

# %%
def mean_interval(values):
    """values (n,) one metric over n seeds -> (mean, low, high) of the 95 % t-interval."""
    ...  # your code


exercise.check("mean_interval", mean_interval)

# %% [markdown]
# ### 2 · A paired interval (§2)
#
# Two variants trained on the same seeds share each seed's data order and initial draws, so their
# differences vary less than the variants do. Write the paired interval of the mean difference
# $a - b$: the interval of exercise 1 applied to the per-seed differences.
#
# *The check*: your interval against SciPy's `ttest_rel(a, b).confidence_interval()` on four seeds
# where the unpaired interval includes 0 and the paired one does not.

# %%
def paired_interval(a, b):
    """a (n,), b (n,) one metric of two variants over the same n seeds -> (mean, low, high) of a - b."""
    ...  # your code


exercise.check("paired_interval", paired_interval)

# %% [markdown]
# ### 3 · The λ grid's trend by hand (§4)
#
# Section 4 reads the λ grid through one least-squares model over every run. Fit it yourself: the
# design matrix has a column of ones, $\log_{10}\lambda_{OT}$ and $\log_{10}\lambda_{MMD}$ (a
# weight of 0 placed at the smallest nonzero weight of its axis), an indicator of $\lambda_{OT} = 0$
# and one of $\lambda_{MMD} = 0$, and one indicator per seed but the first. Solve least squares and
# return the $\log_{10}\lambda_{OT}$ coefficient (the MAE change per decade) with its 95 % interval
# $\hat\beta \pm t_{n-p}\, \mathrm{se}$, where $\mathrm{se}^2 = \hat\sigma^2 [(X^\top X)^{-1}]_{11}$ and
# $\hat\sigma^2$ is the residual sum of squares over $n - p$ ($p$ columns).
#
# *The check*: your slope and interval against `stats.trend` (statsmodels' OLS) on two grids of its
# own, one with runs missing. Then try it on `lambda_grid.runs_table(committed["lambda"])` and
# compare with section 4's table.

# %%
def lambda_ot_slope(lambda_ot, lambda_mmd, seed, mae):
    """lambda_ot (n,), lambda_mmd (n,), seed (n,), mae (n,) one row per run -> (coef, low, high)."""
    ...  # your code


exercise.check("lambda_ot_slope", lambda_ot_slope)
