# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: language_info
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
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
# Four claims of the papers, each rerun as a sweep of `alignlib.experiments`:
#
# | sweep | reproduces | command |
# | --- | --- | --- |
# | `ablations` | AlignMamba-2 Table 3, AlignMamba-1 Table 3 (alignment rows) | `python -m alignlib.experiments ablations --profile full --out build/experiments` |
# | `missing` | AlignMamba-1 Table 1: modalities missing at test time, rates 0 to 0.7 | `... missing ...` |
# | `lambda` | AlignMamba-2 Fig. 6: λ_OT × λ_MMD | `... lambda ...` |
# | `efficiency` | AlignMamba-2 Fig. 4/5 (AlignMamba-1 Fig. 3/4): memory and latency against length | `... efficiency ...` |
#
# Every sweep is a declared grid of runs through `alignlib.train` (or, for efficiency, one process
# per point); it writes one JSON with each run's configuration, seed, software versions and metrics
# after every run, and `--resume` continues an interrupted sweep without repeating a finished run.
#
# **What you will learn**
# 1. how each experiment is declared and run, and what its JSON holds;
# 2. how to read several seeds: means with 95 % t-intervals, curves with bands, heatmaps, log-log slopes;
# 3. how to read a result beside **reference lines** (what a model ignoring alignment can reach,
#    `set_level`; what perfect alignment gives, `bound`: notebook 06) and **controls** (AlignMamba-1
#    given the true plan, and the plan it learns without the tables: notebook 10), and why a
#    comparison of variants that all sit on one reference line says nothing;
# 4. where this project's numbers agree with the papers' and where they do not, and why.
#
# Goal 3 rests on the **full-profile results committed in `benchmarks/results/`** (the next cell
# prints which are there): every sweep run once on this project's 2-core CPU, each section showing
# them after this run's small default profile and saying, below them, what they reproduce.
#
# This notebook runs the **default profile** of every sweep: 300 tiny synthetic clips (180 for
# training), one seed, up to ten epochs with early stopping; `efficiency` has no seeds: each point
# is the median of three timed passes. The sizes are printed in section 1. Those runs check the
# machinery and show the reference lines and the oracle control on small data; they are too small
# to compare the paper's variants with each other. The comparisons use the **full-profile results
# committed in `benchmarks/results/`**: every model trained until its validation MAE stopped
# improving (early stopping), on the `short` preset (MOSI's 2199 clips and feature widths, clips of
# 8-16 words), shown beside the default ones when present.

# %% tags=["parameters"]
profile: str = "default"  # sweep profile run here: default (CPU minutes) or full (several hours on 2 cores)
out_dir: str = ""  # folder for the sweeps' runs and JSON; empty: a temporary folder
results_dir: str = "../benchmarks/results"  # committed full-profile results, experiments_<sweep>.json
device: str = "cpu"  # cpu or cuda
metrics_path: str = ""  # where the runner records this notebook's key numbers
solutions: bool = False  # True: the Exercises section checks the reference solutions (the regression run sets it)

# %%
import json
import math
import tempfile
import time
from pathlib import Path

import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from alignlib.data import synthetic
from alignlib.experiments import ablations, stats, sweeps, training
from alignlib.experiments.sweep import load, tidy
from alignlib.models.sentiment import ModelConfig
from alignlib.notebooks import record_metrics

sns.set_theme(context="notebook", style="whitegrid")
pd.set_option("display.width", 160, "display.max_columns", 20)
out = Path(out_dir or tempfile.mkdtemp())
SWEEPS = {name: sweep for name, sweep in sweeps().items() if sweep.notebook == "08_paper_experiments"}
committed = {name: load(path) for name in SWEEPS if (path := Path(results_dir) / f"experiments_{name}.json").exists()}
print("committed full-profile results:", sorted(committed) or "none yet")

# %% [markdown]
# ## 1 · Running the four sweeps
#
# Each sweep is one `Sweep` of `alignlib.experiments` (`sweeps()` finds them all, each the `SWEEP`
# of its own module): its profiles, its grid of runs, the executor of a run, its time estimate,
# and the plots and tables the sections below show (`sweep.show`). `sweep.run` is what the command
# line runs. With `resume=True` a second execution of this cell reuses every finished run (the JSON
# is the record of what is done).

# %%
records, seconds = {}, {}
for name, sweep in SWEEPS.items():
    start = time.perf_counter()
    records[name] = sweep.run(profile, out, resume=True, device=device)
    seconds[name] = time.perf_counter() - start
    print(f"{name:>10}: {len(records[name]['runs'])} runs in {seconds[name]:.0f} s -> {sweep.results_path(out)}")
for name in ("ablations", "missing", "lambda"):
    print(f"{name:>10}: seeds {list(SWEEPS[name].profiles[profile]['seeds'])}")
p = SWEEPS["efficiency"].profiles[profile]
print(f"efficiency: no seeds; lengths {list(p['lengths'])} tokens per modality, median of {p['repeats']} passes per point")
train = training.SIZES[profile]
n_train_clips = synthetic.split_sizes(train["data"]["preset"], train["data"]["n_clips"])[0]
steps = training.trained_runs(records["ablations"])
steps = steps[steps.metric == "optimizer_steps"].value
print(f"each training run: {n_train_clips} training clips, batch {train['batch_size']}, at most {train['epochs']} "
      f"epochs (patience {train['patience']}): {int(steps.min())} to {int(steps.max())} optimiser steps in the ablations")
first = next(iter(records["ablations"]["runs"].values()))
print(json.dumps({k: first[k] for k in ("factors", "seed", "software")}, indent=1))

# %% [markdown]
# `software.git` is the commit the runs came from; `+dirty` means the working tree had uncommitted
# changes when they ran (as it has while a notebook is being edited). A committed result should
# come from a clean tree, so that the commit names exactly the code that produced it.
#
# ## 2 · Ablations (AlignMamba-2 Table 3, AlignMamba-1 Table 3)
#
# AlignMamba-2's rows, with the OT and MMD losses also removed one at a time, the vanilla-fusion
# row also at a **parameter-matched width** (the `d_model` at which AlignMamba-2 with vanilla Mamba
# fusion has as many parameters as with Modality-Aware Mamba; `d_model` is the only width option,
# so the whole model widens), and AlignMamba-1 without its local OT (proportional-time windows
# instead of the plan) or its global MMD. Our "w/o Modality-Aware Mamba" is the paper's
# **"w/o Mixture-of-Experts"** row (vanilla Mamba layers in place of the Modality-Aware ones).
# AlignMamba-1's Table 3 also has fusion rows, Single-stream (82.3 / 82.1) and Multi-stream
# (83.7 / 83.5); their peers here, `concat` and `multistream`, are trained in the missing-modality
# sweep and compared at *r* = 0 in section 3. The paper's columns are Acc-2 and F1 on the real
# CMU-MOSI; ours come from the synthetic benchmark, so only the **differences between rows** can
# compare, and only where their intervals do not overlap. Two rows go beyond the paper, as
# controls: AlignMamba-1 given the **true** plan (the most any plan can give this architecture) and
# with the plan it **learns** without the tables (notebook 10). Grey lines mark the reference lines
# of the same data (notebook 06).
#
# The t-interval of a bounded metric can reach past its range (Acc-2 and F1 in [0, 1], Corr in
# [-1, 1]) when the seeds disagree and there are few of them; the table and plots **clip the
# intervals to the metric's range for display**. A clipped interval is still only as narrow as its
# seeds allow.
#
# Acc-2 and F1 are MMSA's `Non0_acc_2` and `Non0_F1_score`: the sign of the prediction against the
# sign of the label, over the test clips whose label is not 0 (the convention of the papers' tables).

# %%
ablation_stats = SWEEPS["ablations"].show(records["ablations"], f"this run ({profile} profile)")
mae_by_variant = ablation_stats[ablation_stats.metric == "MAE"].set_index("variant")["mean"]
ot_gap = abs(mae_by_variant["w/o OT loss"] - mae_by_variant["AlignMamba-2"])
print(f"  |MAE(w/o OT loss) - MAE(AlignMamba-2)| = {ot_gap:.1e} (AlignMamba-2's OT weight is "
      f"λ_OT = {ModelConfig().lambda_ot:g})")

# %% [markdown]
# **Reading this run.** Start with the reference lines: a variant on the `set_level` line knows no
# more than a predictor given each clip's *bags* of cues, whatever its architecture; the oracle
# control asks how far below it the same architecture can go when it is handed the true plan (at
# this profile's budget of a few dozen optimiser steps, the line above says whether it gets there at
# all), and a comparison among variants on the line is a comparison of noise. When the line under the plots
# says that every model predicts one sign for every test clip, the classification columns say
# nothing about the variants. With one seed there are no intervals: the default profile shows the
# method and the controls, not verdicts.

# %% [markdown]
# Intervals that overlap can still hide a difference that every seed agrees on. The variants of one
# seed share that seed's data order, so the differences to the reference model can also be paired
# by seed: the mean difference with its own 95 % t-interval (negative MAE differences and positive
# Acc-2 differences are improvements over the reference model).

# %%
if "ablations" in committed:
    SWEEPS["ablations"].show(committed["ablations"], "committed full profile")
    variants = list(dict.fromkeys(tidy(committed["ablations"]).variant))
    for reference, group in ablations.paired_groups(variants).items():
        print(f"paired by seed, against {reference}:")
        display(ablations.paired_differences(committed["ablations"], reference, group))
else:
    print("No committed full-profile ablations yet: python -m alignlib.experiments ablations --profile full "
          "--out build/experiments, then copy build/experiments/experiments_ablations.json to benchmarks/results/")

# %% [markdown]
# **Reading the committed ablations.** The printed verdicts place every row against the reference
# lines and, paired by seed, against its reference model. Where the paper's rows and ours disagree,
# the reason to look for is the reference line: a loss or a layer can only change what a model
# learns about alignment if the model learns alignment at all. The cell below puts the committed
# record into words (`ablations.conclusion`: every figure in it comes from the JSON).

# %%
if "ablations" in committed:
    display(Markdown(ablations.conclusion(committed["ablations"])))

# %% [markdown]
# A row above the line whose paired interval excludes 0 differs from its reference model for some
# reason other than binding cues to words, since neither model has bound any. What a plan can
# recover at all: notebook 05, on its tiny sample, fits projections *given* the true tables, and the
# exact OT plan between them finds 0.41 of the audio frames' words and 0.73 of the video frames'
# words (the proportional guess there: 0.46 and 0.41); notebook 07 measures the plans between
# trained states.

# %% [markdown]
# ## 3 · Missing modalities at test time (AlignMamba-1 Table 1)
#
# Each model is trained on complete data, then tested with every modality of every test clip
# dropped with probability *r* (seeded, at least one modality kept per clip; a dropped modality's
# features are zeroed and flagged). The paper trains and tests on the real MOSI; its Table 1 reports
# AlignMamba-1 at 85.7 % Acc-2 at *r* = 0.1 falling to 73.8 % at 0.7, a drop of 11.9 points.

# %%
missing_stats = SWEEPS["missing"].show(records["missing"], f"this run ({profile} profile)")
same_run_gap = abs(stats.mean_of(missing_stats, "MAE", model="alignmamba2", test_missing_rate=0.0)
                   - stats.mean_of(ablation_stats, "MAE", variant="AlignMamba-2"))
print(f"  determinism check: AlignMamba-2 at r=0 here and in the ablations (same configuration and seeds, trained "
      f"twice) differ in MAE by {same_run_gap:.1e}")

# %%
if "missing" in committed:
    SWEEPS["missing"].show(committed["missing"], "committed full profile")
else:
    print("No committed full-profile missing-modality results yet (python -m alignlib.experiments missing --profile full ...)")

# %% [markdown]
# The drops compared paired by seed (the same seed gives every model the same data order and the
# same missing-modality masks):

# %%
if "missing" in committed:
    runs_missing = tidy(committed["missing"])
    by_seed = runs_missing[runs_missing.metric == "Non0_acc_2"].pivot_table(index=["model", "seed"],
                                                                           columns="test_missing_rate", values="value")
    drops = 100 * (by_seed[0.1] - by_seed[0.7])
    smaller = []  # peers whose drop AlignMamba-1's is smaller than, on the whole interval
    for model in [m for m in ("alignmamba2", "concat", "multistream") if m in drops.index]:
        paired = (drops.loc["alignmamba1"] - drops.loc[model]).dropna()
        mean, low, high = stats.mean_ci(paired.to_numpy())
        print(f"  AlignMamba-1's drop minus {model}'s: {mean:+.1f} points [{low:+.1f}, {high:+.1f}] over seeds "
              f"{[int(seed) for seed in paired.index]}")
        if high < 0:
            smaller.append(model)
    print("  verdict: " + (f"AlignMamba-1 loses less than {', '.join(smaller)} (the whole paired interval below 0)"
                           if smaller else "no paired interval lies below 0: AlignMamba-1 does not lose measurably "
                           "less than the models without alignment"))

# %% [markdown]
# **Reading the committed curves.** The drops and their paired differences are printed above; the
# paper's claim is that AlignMamba-1 loses less than models without alignment, which the paired
# differences test directly, and the verdict line says whether they support it. Read it beside
# the reference lines at *r* = 0: a model above `set_level` has not bound any cue to its word, so
# what it loses when a modality goes is that modality's bag of cues, and models that know the
# same bags should lose about the same.

# %%
if "missing" in committed:
    lines = training.reference_summary(committed["missing"])
    if lines is not None:
        mae = lines[lines.metric == "MAE"].set_index("reference")["mean"]
        print(f"  the text alone carries {(mae['constant'] - mae['text_only']) / (mae['constant'] - mae['bound']):.0%} "
              f"of the way from the constant line ({mae['constant']:.3f}) to the bound line ({mae['bound']:.3f}); the "
              f"clip's bags of audio and video cues another "
              f"{(mae['text_only'] - mae['set_level']) / (mae['constant'] - mae['bound']):.0%}")

# %% [markdown]
# Reading the curves: how much of the label the text alone carries is a reference line of its own,
# `text_only` against `constant` (printed above from the committed run), as the real MOSI's
# language carries much of its label (AlignMamba-1 w/o language: 65.3 % Acc-2). A model that has
# learned the text cues loses most when the text is dropped, while one that still predicts near
# the mean label barely moves with the rate: a flat curve is a model that has not learned the cues,
# not a robust one. The paper's peers in Table 1 (DCCA ... IMDer) are imputation methods not
# rebuilt here; ours are the concatenation and multi-stream Mambas, the peers of AlignMamba-1's
# Single-stream and Multi-stream rows printed above.

# %% [markdown]
# ## 4 · λ sensitivity (AlignMamba-2 Fig. 6)
#
# The paper varies one weight with the other at its optimum and finds the best MOSI accuracy at
# λ_MMD = 0.01 and λ_OT = 0.001, worse at 0 and slowly worse above. Here the whole grid is run
# (log-spaced, with 0; the default grid is coarser than the paper's), and the heatmaps show the
# test MAE and Corr averaged over the seeds (the default profile's are printed in section 1, the
# committed grid's with it).

# %%
lambda_stats = SWEEPS["lambda"].show(records["lambda"], f"this run ({profile} profile)")

# %% [markdown]
# **Reading the grid.** Compare the spread of the cell means with the interval half-width printed
# above. When the spread is the smaller, the heatmap's colours (scaled to the grid's own range)
# show noise, and the cell with the lowest MAE is an accident of the seeds, even when it is the
# paper's worst point (0, 0). With one seed of the default profile there is no interval at all;
# whether λ matters on the synthetic data is for the full profile's grid to show.

# %%
if "lambda" in committed:
    SWEEPS["lambda"].show(committed["lambda"], "committed full profile")
    print(f"  seeds: {sorted({run['seed'] for run in committed['lambda']['runs'].values() if run['seed'] is not None})}")
else:
    print("No committed full-profile λ grid yet (python -m alignlib.experiments lambda --profile full ...)")

# %% [markdown]
# **Reading the committed grid.** The lines above print the spread of the cell means against the
# interval half-widths, and where the cells lie against the reference lines. The weights span
# λ = 0 and two decades, 1e-3 to 1e-1 (the paper's optimum is λ_OT = 0.001, λ_MMD = 0.01); a grid
# whose spread is smaller than its half-widths is flat at this many seeds, and one with no cell
# below the `set_level` line cannot show an effect of alignment, whatever its colours.

# %%
if "lambda" in committed:
    grid_runs = training.trained_runs(committed["lambda"])
    cells = stats.summary(grid_runs, ["lambda_ot", "lambda_mmd"])
    cells = cells[cells.metric == "MAE"]
    paper_cell = stats.mean_of(cells, "MAE", lambda_ot=1e-3, lambda_mmd=1e-2)
    none_cell = stats.mean_of(cells, "MAE", lambda_ot=0.0, lambda_mmd=0.0)
    print(f"  the paper's optimum cell: MAE {paper_cell:.3f}; no alignment loss: {none_cell:.3f}; "
          f"difference {paper_cell - none_cell:+.3f} (median cell half-width "
          f"{((cells.ci_high - cells.ci_low) / 2).median():.3f})")

# %% [markdown]
# ## 5 · Memory and latency against length (AlignMamba-2 Fig. 4/5)
#
# The fusion module alone, batch 1, inference: AlignMamba-1 with its explicit OT plans (an
# *L* × *L* cost matrix per modality pair), AlignMamba-2's Modality-Aware Mamba blocks on the
# 3*L*-token concatenation, and the MulT-style cross-modal attention block. Each point runs in its
# own process with a time and a memory limit; running out is recorded, and a model stops at its
# first failure. A slope near 1 on the log-log plot is linear growth, near 2 quadratic. The paper
# (GPU, 10k to 100k tokens) reports MulT at about 10 GB and 100 ms at 10k and out of memory at 20k,
# AlignMamba-1 out of memory around 80k, and AlignMamba-2 linear up to 100k.
#
# The paper says "sequence length" without saying whether it counts one modality or all three;
# here the length is **tokens per modality** (AlignMamba-2's fusion reads 3*L* tokens).
#
# On CPU the memory is the rise of the process's peak resident set over one pass and the latency is
# the median of `repeats` passes (three at the default profile); both are disturbed by whatever else
# runs on the machine. There are two profiles: `default` (256 to 1024 tokens) and `full` (1024 up to
# 100000 tokens, each point stopped at 2 minutes or 8 GiB); either runs on the CPU or, with
# `--device cuda`, on a GPU. The committed full profile is the CPU's; the GPU curve to 100k tokens
# has not been run.

# %%
efficiency_table, efficiency_slopes = SWEEPS["efficiency"].show(records["efficiency"], f"this run ({profile} profile)")
lengths = sorted(efficiency_table.length.unique())
for metric, slopes in efficiency_slopes.items():
    for model, slope in slopes.items():
        note = (": falls with length, which no real cost does: noise" if slope < 0
                else ": steeper than quadratic, which no model here is: noise" if slope > 2.2 else "")
        print(f"  {metric:<10} {model:<12} slope {slope:5.2f}{note}")
print(f"  (fitted over {len(lengths)} lengths, {lengths[0]} to {lengths[-1]} tokens, "
      f"{SWEEPS['efficiency'].profiles[profile]['repeats']} passes per point on a shared CPU)")

# %%
if "efficiency" in committed:
    full_efficiency, full_slopes = SWEEPS["efficiency"].show(committed["efficiency"], "committed full profile")
    for metric, slopes in full_slopes.items():
        print(f"  {metric:<10} " + ", ".join(f"{model} slope {slope:.2f}" for model, slope in slopes.items()))
    measured = full_efficiency[full_efficiency.status == "ok"]
    for model, part in measured.groupby("model", sort=False):
        longest = part[part.length == part.length.max()].set_index("metric")["value"]
        failure = full_efficiency[(full_efficiency.model == model) & full_efficiency.status.isin(["oom", "timeout"])]
        print(f"  {model:<12} longest measured {part.length.max():>6} tokens: {longest['peak_mib'] / 1024:.2f} GiB, "
              f"{longest['latency_ms'] / 1e3:.1f} s"
              + (f"; {failure.status.iloc[0]} at {failure.length.min()}" if len(failure) else ""))
    common = max(set.intersection(*(set(part.length) for _, part in measured.groupby("model"))))
    at_common = measured[measured.length == common].pivot_table(index="model", columns="metric", values="value")
    print(f"  at {common} tokens, the longest all three ran: peak memory relative to AlignMamba-2 "
          + ", ".join(f"{m} {at_common.loc[m, 'peak_mib'] / at_common.loc['alignmamba2', 'peak_mib']:.1f}x" for m in at_common.index)
          + "; latency " + ", ".join(f"{m} {at_common.loc[m, 'latency_ms'] / at_common.loc['alignmamba2', 'latency_ms']:.1f}x"
                                     for m in at_common.index))
else:
    print("No committed full-profile efficiency results yet (python -m alignlib.experiments efficiency --profile full ...)")

# %% [markdown]
# At the default lengths (256 to 1024 tokens, three lengths, three passes each, on a shared CPU)
# fixed costs and other processes' load weigh as much as the growth itself. A negative latency
# slope (time falling as the input grows) can only be noise, and a slope near 2 for MulT at these
# lengths is as likely to come from the load as from its quadratic attention: none of the slopes
# printed above is evidence for linear or quadratic growth, in either direction. That needs the
# full profile's lengths (1k tokens up to the 2-minute or memory limit of each point).
#
# **The committed full profile** (this CPU, 2 threads, d_model 64, two layers; each point capped at
# 8 GiB of address space and 2 minutes; 12.7 minutes for all 24 points) reproduces the *shape* of the
# papers' Fig. 4/5, at CPU sizes: the MulT-style block fails first (out of memory at 16384 tokens
# per modality: the failed allocation is 4 GiB, the four heads' 16384 × 16384 attention weights of
# one cross-modal block),
# AlignMamba-1 next (its explicit 32768 × 32768 plan is 4 GiB, the allocation that failed), and
# AlignMamba-2 runs every length up to 100000 tokens, 1.6 GiB and about 21 s a pass. Its memory
# grows linearly (slope 0.91 over the whole range); its latency
# slope of 1.14 is a little above 1, most likely the cache: the working set leaves the CPU's caches
# as the sequence grows, a cost a GPU would show differently. The two explicit-interaction models
# grow close to quadratically (memory slopes 1.78 and 1.90, latency 1.76 and 1.99, the lower
# values at short lengths where fixed costs still count). At 8192 tokens, the longest all three
# ran, AlignMamba-1 needs about 6x AlignMamba-2's memory and 4x its time, MulT 12x and 13x.
#
# What does not carry over: the paper's points are GPU memory and GPU time at 10k to 100k tokens
# with a much larger memory, so its absolute figures (MulT about 10 GB and 100 ms at 10k, out of
# memory at 20k; AlignMamba-1 out of memory near 80k) are not comparable with a CPU capped at
# 8 GiB, where the failures come earlier. The GPU curve (`--device cuda`) has not been run: no GPU
# was available to this project.

# %% [markdown]
# ## Recorded metrics
#
# The regression suite compares these with `tests/baselines/08_paper_experiments.json`.

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
    efficiency_points_ok=int((efficiency_table.drop_duplicates("run").status == "ok").sum()),
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
# ### 3 · A small experiment: the λ grid under another seed (§4)
#
# The default profile's grid in section 4 has one seed, so it cannot say whether a difference between
# its cells is real.
# Run the `lambda` sweep of this notebook's profile again with `seeds` set to `(1,)` in a copy of
# its profile (`SWEEPS["lambda"].profiles`),
# into a new `out` folder, and use your `paired_interval` on the per-cell test MAE of the two seeds
# against the cell $\lambda_{OT} = \lambda_{MMD} = 0$. Before you run it, write down which cells you
# expect to beat the cell without alignment, and by how much; then compare.

# %%
# your experiment: a copy of the profile with seeds (1,), SWEEPS["lambda"].run(...), then paired_interval
