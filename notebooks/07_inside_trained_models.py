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
# # 07 · Inside trained models: token correspondences and expert activations
#
# AlignMamba-2 presents its OT and MMD losses as *regularisation* ("a dual alignment strategy that
# regularizes the model"), the OT term "to capture fine-grained, token-level correspondences"; the
# paper measures their effect on the task metrics only, never whether a frame ends up near the word
# it belongs to. Real datasets cannot test that: nobody knows which frames belong to which word. The
# suite's synthetic benchmark does (notebook 05): it stores the true word of every frame. So we ask
# the question the paper leaves open, and read the answer against reference lines and controls.
#
# **What you will learn**
# 1. how to train AlignMamba-2 with and without its alignment losses, AlignMamba-1 with the paper's
#    plan and with a plan it learns (notebook 10), and keep a checkpoint per epoch
#    (`alignlib.analysis.train_keeping_epochs`), with learning curves and optimiser steps;
# 2. how well OT plans between the learned states $H_A, H_V$ and $H_L$ recover the true
#    frame-to-word correspondence, at initialisation, across epochs and at the end, against the
#    proportional-time guess, chance and the learned plan; and how to tell alignment from collapse
#    (the spread of the states);
# 3. what each expert of the Modality-Aware Mamba layers contributes per modality and position (and
#    why half of it is the initialisation's doing), and how much a learned router's choice says about
#    the modality (mutual information in bits);
# 4. how to browse both interactively, and what the converged full profile says beside the reference
#    lines (`constant`, `text_only`, `set_level`, `bound`).

# %% tags=["parameters"]
data_path: str = "../data_samples/synthetic_tiny.pkl"  # a synthetic MMSA pickle; empty: generate synth_preset
synth_preset: str = "mosi"  # preset generated when data_path is empty
synth_clips: int = 0  # clips generated when data_path is empty (0: the preset's own count)
epochs: int = 12  # training epochs per model
batch_size: int = 16  # clips per step
d_model: int = 16  # model width
n_layers: int = 2  # fusion layers
n_seeds: int = 1  # seeds per model (spread over seeds when > 1)
n_clips: int = 32  # test clips whose plans are scored
blur: float = 0.05  # entropic plans' blur (the OT loss's)
run_dir: str = ""  # where the runs are written; empty: a temporary folder
results_dir: str = "../benchmarks/results"  # the committed full-profile sweep, experiments_inside.json
metrics_path: str = ""  # where the runner records this notebook's key numbers
solutions: bool = False  # True: the Exercises section checks the reference solutions (the regression run sets it)

# %%
import json
import math
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from alignlib import analysis
from alignlib.data import load_mmsa, synthetic
from alignlib.data.mmsa import MODALITIES
from alignlib.experiments import inside
from alignlib.experiments.stats import mean_ci as stats_mean_ci
from alignlib.experiments.stats import summary as interval_summary
from alignlib.experiments.sweep import load, tidy
from alignlib.models.checkpoint import load_model
from alignlib.notebooks import record_metrics
from alignlib.train import TrainConfig
from alignlib.widgets.plans import TransportPlanExplorer
from alignlib.widgets.trained import ExpertActivationBrowser, TrainedModelSource

sns.set_theme(context="notebook", style="whitegrid")
torch.set_num_threads(1)  # small models: one thread is fastest, and several contend on a shared CPU
run_root = Path(run_dir or tempfile.mkdtemp())
if not data_path:
    data_path = str(run_root / f"synthetic_{synth_preset}.pkl")
    synthetic.write(data_path, *synthetic.generate(synth_preset, 0, synth_clips or None))
data = load_mmsa(data_path)
test = data.splits["test"]
truth = analysis.truth_tables(data_path, "test")
clips = np.arange(min(n_clips, len(test)))
print(f"{Path(data_path).name}: " + ", ".join(f"{k} {len(v)}" for k, v in data.splits.items()),
      f"| scoring {len(clips)} test clips")

# %% [markdown]
# ## 1 · Train and keep a checkpoint per epoch
#
# Six models through `alignlib.train`, one epoch at a time (`resume=True`), `last.pt` copied to
# `epoch_K.pt` after each epoch: AlignMamba-2 with its alignment losses (the paper's weights
# $\lambda_{OT} = 0.001$, $\lambda_{MMD} = 0.01$), the same without them (`align_loss=False`),
# the same with the OT loss weighted a thousand times more ($\lambda_{OT} = 1$: can the loss align
# frames at all when it dominates?), AlignMamba-1 with the paper's relaxed plan, AlignMamba-2 with a
# learned router (section 4), and AlignMamba-1 with the monotone plan it learns without the tables
# (`plan="learned"`, notebook 10): the control that shows what finding the words looks like. The
# untrained model is the one `train` starts from (`analysis.initial_model`), so "epoch 0" is
# initialisation.

# %%
VARIANTS = inside.VARIANTS  # name: (model, model options), the same as the full-profile sweep's
print("\n".join(f"{name:>20}: {model} {options or ''}" for name, (model, options) in VARIANTS.items()))
configs, checkpoints = {}, {}
start = time.perf_counter()
for name, (model_name, options) in VARIANTS.items():
    for seed in range(n_seeds):
        out = run_root / f"{model_name}_{'_'.join(f'{k}-{v}' for k, v in options.items()) or 'default'}_seed{seed}"
        configs[name, seed] = TrainConfig(model=model_name, data=data_path, out=str(out), epochs=epochs,
                                          batch_size=batch_size, seed=seed,
                                          model_options={"d_model": d_model, "n_layers": n_layers, **options})
        checkpoints[name, seed] = analysis.train_keeping_epochs(configs[name, seed])
print(f"trained {len(configs)} runs in {time.perf_counter() - start:.0f} s;",
      f"checkpoints per run: {[len(v) for v in checkpoints.values()]}")
curves = pd.DataFrame([dict(model=name, seed=seed, **json.loads(line))
                       for (name, seed), config in configs.items()
                       for line in (Path(config.out) / "metrics.jsonl").read_text().splitlines()])
fig, axes = plt.subplots(1, 2, figsize=(13, 3.6), sharey=True)
for ax, column in zip(axes, ("train_task", "valid_MAE")):
    sns.lineplot(data=curves, x="epoch", y=column, hue="model", marker="o", ax=ax, legend=ax is axes[1])
    ax.set(title={"train_task": "training L1 (MAE, with dropout)", "valid_MAE": "validation MAE"}[column])
axes[1].legend(fontsize=7)
plt.tight_layout()
plt.show()
steps = curves.groupby("model").steps.max()
print("optimiser steps per run:", ", ".join(f"{m} {s}" for m, s in steps.items()))

# %% [markdown]
# ## 2 · Token correspondences, from initialisation to the end
#
# For every checkpoint, the plans from each test clip's audio and video states onto its word states
# (cosine cost, as the OT loss), all from `alignlib.align.ot.plan`: exact OT (POT), entropic OT
# (blur as the loss) and AlignMamba-1's relaxed plan. A frame counts as recovered when its heaviest
# plan entry is its true word. The proportional guess is the `proportional` plan, which reads no state: frame $t$
# of $n$ goes to word $\lfloor t W / n \rfloor$. Beside the accuracy, the unweighted OT and MMD
# losses of the same test clips.
#
# `analysis.checkpoint_summary` computes all of it for one checkpoint (`analysis.correspondences`
# for the plans and their accuracy, `analysis.alignment_losses` for the losses), and
# `analysis.epoch_summaries` for the initial model and every checkpoint of a run; the full-profile
# sweep of section 7 calls the same function.

# %%
rows, losses = [], []
batch = analysis.clip_batch(test, clips)
for (name, seed), kept in checkpoints.items():
    if name == "AM2 learned routing":
        continue
    for epoch, numbers in enumerate(analysis.epoch_summaries(configs[name, seed], kept, test, truth, clips, blur)):
        rows += [dict(model=name, seed=seed, epoch=epoch, modality=modality, method=method,
                      accuracy=numbers[f"{modality}_{method}"])
                 for modality in analysis.SOURCES for method in analysis.METHODS]
        losses.append(dict(model=name, seed=seed, epoch=epoch, ot=numbers["ot"], mmd=numbers["mmd"]))
accuracy = pd.DataFrame(rows)
losses = pd.DataFrame(losses)
floor = accuracy[accuracy.method == "proportional"].groupby("modality").accuracy.first()
print("proportional guess:", ", ".join(f"{m} {v:.3f}" for m, v in floor.items()))
learned = {}  # the learned plan's own accuracy per epoch (AlignMamba-1, plan="learned")
for seed in range(n_seeds):
    config = configs["AlignMamba-1 learned plan", seed]
    models = [analysis.initial_model(config)] + [load_model(p)[0] for p in checkpoints["AlignMamba-1 learned plan", seed]]
    for epoch, model in enumerate(models):
        found_learned = analysis.correspondences(model, test, truth, clips, methods=())
        for modality in analysis.SOURCES:
            learned.setdefault(modality, []).append(dict(seed=seed, epoch=epoch, accuracy=found_learned.accuracy[modality]["model"]))
learned = {m: pd.DataFrame(rows) for m, rows in learned.items()}

# %%
ends = accuracy[accuracy.epoch.isin([0, accuracy.epoch.max()]) & (accuracy.method != "proportional")]
table = ends.groupby(["model", "modality", "method", "epoch"]).accuracy.agg(["mean", "std"]).unstack("epoch")
table.columns = [f"{stat} epoch {epoch}" for stat, epoch in table.columns]
table = table[[c for c in table.columns if not (n_seeds == 1 and c.startswith("std"))]]
table["proportional guess"] = [floor[m] for m in table.index.get_level_values("modality")]
print(table.round(3).to_string())

# %%
fig, axes = plt.subplots(1, 4, figsize=(18, 4))
exact = accuracy[accuracy.method == "exact"]
for ax, modality in zip(axes[:2], ("audio", "vision")):
    sns.lineplot(data=exact[exact.modality == modality], x="epoch", y="accuracy", hue="model", marker="o", ax=ax)
    ax.axhline(floor[modality], color="black", linestyle="--", label="proportional guess")
    ax.plot(learned[modality].groupby("epoch").accuracy.mean(), "k^-", label="AM1 learned plan (its own plan)")
    ax.set_title(f"{modality} -> text: exact-plan accuracy")
    ax.legend(fontsize=8)
for ax, loss in zip(axes[2:], ("ot", "mmd")):
    sns.lineplot(data=losses, x="epoch", y=loss, hue="model", marker="o", ax=ax)
    ax.set_title(f"{loss.upper()} loss, test clips (unweighted)")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Per-clip plans with the truth overlaid
#
# The exact plans of one test clip at the end of training (seed 0), with and without the losses
# (exact-plan accuracy of the AlignMamba-1 variants is that of their projected features; the black
# triangles above are the learned variant's *own* plan, which is what its model uses);
# magenta circles mark each frame's true word, and the staircase of the proportional guess is drawn
# in white. Below, the same clip's frames joined to their chosen word (green: right, red: wrong).

# %%
clip = int(clips[0])
final = {name: load_model(checkpoints[name, 0][-1])[0] for name in ("AM2 with losses", "AM2 without losses")}
fig, axes = plt.subplots(2, 4, figsize=(18, 8), gridspec_kw=dict(height_ratios=[3, 1]))
for col, ((name, model), modality) in enumerate([(item, m) for item in final.items() for m in ("audio", "vision")]):
    found = analysis.correspondences(model, test, truth, [clip], methods=("exact", "proportional"))
    frames, words = found.masks[modality][0], found.masks["text"][0]
    plan = found.plans[modality, "exact"][0][frames][:, words].numpy()
    true_word = found.truth[modality][0][frames].numpy()
    ax = axes[0, col]
    ax.imshow(plan, aspect="auto", cmap="viridis")
    ax.scatter(true_word, np.arange(len(true_word)), s=12, facecolors="none", edgecolors="magenta")
    ax.plot(found.plans[modality, "proportional"][0][frames].argmax(1).numpy(), np.arange(len(true_word)), color="white", lw=1)
    ax.set(title=f"{name}\n{modality}: {found.accuracy[modality]['exact']:.0%} recovered",
           xlabel="word", ylabel="frame")
    chosen = plan.argmax(1)
    ax = axes[1, col]
    for i, j in enumerate(chosen):
        ax.plot([i / max(len(chosen) - 1, 1), j / max(int(words.sum()) - 1, 1)], [1, 0], lw=0.7,
                color="seagreen" if j == true_word[i] else "crimson")
    ax.set(yticks=[0, 1], yticklabels=["words", "frames"], xticks=[])
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3 · Expert activations of the trained AlignMamba-2
#
# Each Modality-Aware Mamba projection gives a token $E_m(h) + E_\text{shared}(h)$. The share of an
# expert in a token's update is the norm of its contribution over the sum of the norms. With the
# paper's deterministic routing a token only reaches its own modality's expert and the shared one,
# so the table says how much of each modality's update the shared expert carries, per layer.
#
# Read it against the initialisation before reading anything into it: both experts of a projection
# start as independent draws of the same distribution, so at epoch 0 each carries about half of the
# update (notebook 04's fold test: the specific and shared weights can be folded into one matrix,
# and nothing in training pushes them apart unless the modalities need different projections). A
# share near 0.5 after training is therefore what the initialisation gives, not a finding.

# %%
am2 = load_model(checkpoints["AM2 with losses", 0][-1])[0]
activity = analysis.record_expert_activity(am2, batch)
initial_activity = analysis.record_expert_activity(analysis.initial_model(configs["AM2 with losses", 0]), batch)
share_rows = []
for layer in sorted(activity.shares):
    table_layer, table_init = analysis.share_table(activity, layer), analysis.share_table(initial_activity, layer)
    for m, modality in enumerate(MODALITIES):
        share_rows.append({"layer": layer.replace(".mixer", ""), "modality": modality, "own": table_layer[m, m],
                           "shared": table_layer[m, -1], "shared at init": table_init[m, -1]})
shares = pd.DataFrame(share_rows)
print(shares.pivot(index="layer", columns="modality", values=["shared", "shared at init"]).round(3).to_string())

# %%
bins = 5
fig, axes = plt.subplots(1, len(activity.shares), figsize=(4.5 * len(activity.shares), 3.6), sharey=True)
for ax, layer in zip(axes, sorted(activity.shares)):
    by_position = analysis.shares_by_position(activity, layer, bins)
    for m, modality in enumerate(MODALITIES):
        ax.plot((np.arange(bins) + 0.5) / bins, by_position[m, :, -1], marker="o", label=modality)
    ax.set(title=layer.replace(".mixer", ""), xlabel="relative position in the modality", ylim=(0, 1))
axes[0].set_ylabel("shared expert's share")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4 · Learned routing: does the router find the modality?
#
# With `routing="learned"` a softmax router per projection picks one expert per token. The mutual
# information between the token's modality and the chosen expert is 0 bits when the choice ignores
# the modality and $\log_2 3 \approx 1.58$ bits when it recovers it exactly (balanced modalities;
# here the modalities have different lengths, so the ceiling is their entropy, printed below).

# %%
mi_rows = []
for seed in range(n_seeds):
    config = configs["AM2 learned routing", seed]
    models = [(0, analysis.initial_model(config))]
    models += [(k + 1, load_model(p)[0]) for k, p in enumerate(checkpoints["AM2 learned routing", seed])]
    for epoch, model in models:
        found_mi = analysis.routing_mutual_information(analysis.record_expert_activity(model, batch))
        mi_rows += [dict(seed=seed, epoch=epoch, router=r.replace(".mixer", ""), bits=b) for r, b in found_mi.items()]
mi = pd.DataFrame(mi_rows)
real_ids = activity.modality[activity.mask]
counts = torch.bincount(real_ids).double()
ceiling = -(counts / counts.sum() * (counts / counts.sum()).log2()).sum().item()
mi_table = mi.groupby(["router", "epoch"]).bits.mean().unstack("epoch")
print(f"modality entropy of these tokens (the ceiling): {ceiling:.3f} bits")
print(mi_table.round(3).to_string())
sns.lineplot(data=mi, x="epoch", y="bits", hue="router", marker="o")
plt.axhline(ceiling, color="black", linestyle="--", label="H(modality)")
plt.title("routing mutual information I(modality; chosen expert)")
plt.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 5 · Explorers on trained models
#
# The plan explorer with a `TrainedModelSource`: choose the clip, the modality pair, the method,
# the blur and the model; the figure shows the plan, the true words (circles) and the share of
# frames recovered. Below it, the expert browser: each expert's share along one clip's packed
# sequence $[H_A; H_V; H_L]$, per layer.

# %%
trained_models = {name: load_model(checkpoints[name, 0][-1])[0]
                  for name in ("AM2 with losses", "AM2 without losses", "AM2 OT weight 1", "AlignMamba-1")}
explorer = TransportPlanExplorer(method="exact", source=TrainedModelSource(trained_models, test, truth), blur=blur)
explorer

# %%
browser = ExpertActivationBrowser(load_model(checkpoints["AM2 learned routing", 0][-1])[0], test)
browser

# %% [markdown]
# ## 6 · What the numbers say
#
# The exact-plan accuracy at the end against initialisation, against the proportional guess and against chance
# (a word drawn uniformly: the mean of $1/W$ over the scored clips), per model and modality.

# %%
end = accuracy.epoch.max()
final_exact = exact[exact.epoch == end].groupby(["model", "modality"]).accuracy.mean()
initial_exact = exact[exact.epoch == 0].groupby(["model", "modality"]).accuracy.mean()
chance = {m: (1 / batch.masks["text"].sum(1).double())[:, None].expand_as(batch.masks[m])[batch.masks[m]].mean().item()
          for m in ("audio", "vision")}
summary = pd.DataFrame({"init": initial_exact, "end": final_exact})
summary["end - init"] = summary.end - summary.init
summary["proportional guess"] = [floor[m] for _, m in summary.index]
summary["chance"] = [chance[m] for _, m in summary.index]
gain = (final_exact["AM2 with losses"] - final_exact["AM2 without losses"])
print(summary.round(3).to_string())
print("end accuracy with losses minus without:", ", ".join(f"{m} {v:+.3f}" for m, v in gain.items()))
print(losses[losses.epoch.isin([0, end])].groupby(["model", "epoch"])[["ot", "mmd"]].mean().round(4).to_string())

# %% [markdown]
# What these numbers say, sentence by sentence (each formatted from the numbers above; the default
# profile is one seed of a small model on the 96-clip sample, so it shows the method, not a verdict):

# %%
spread = {}
for name in VARIANTS:
    if name == "AM2 learned routing":
        continue
    states = analysis.token_states(load_model(checkpoints[name, 0][-1])[0], batch)
    spread[name] = {m: analysis.state_spread(states[m], batch.masks[m]) for m in ("audio", "vision", "text")}
spread = pd.DataFrame(spread).T
print("spread of the states at the end (mean cosine distance to the clip's mean token; 0 = collapsed):")
print(spread.round(3).to_string())
for modality in analysis.SOURCES:
    with_l, without_l = final_exact["AM2 with losses", modality], final_exact["AM2 without losses", modality]
    ot1 = final_exact["AM2 OT weight 1", modality]
    learned_end = learned[modality][learned[modality].epoch == end].accuracy.mean()
    print(f"{modality}: AlignMamba-2's exact plan finds {with_l:.3f} of the frames' words with its losses and "
          f"{without_l:.3f} without ({with_l - without_l:+.3f}); with OT weight 1 {ot1:.3f}; the proportional guess "
          f"{floor[modality]:.3f}, chance {chance[modality]:.3f}; AlignMamba-1's learned plan {learned_end:.3f}.")
ot_at = losses.groupby(["model", "epoch"]).ot.mean()
print(f"OT loss of the test clips (unweighted): {ot_at['AM2 OT weight 1', 0]:.2f} at initialisation, "
      f"{ot_at['AM2 OT weight 1', end]:.2f} at the end with OT weight 1, {ot_at['AM2 with losses', end]:.2f} "
      f"with the paper's weight, {ot_at['AM2 without losses', end]:.2f} without the losses; the states' spread "
      "with OT weight 1 against without the losses: " + ", ".join(
          f"{m} {spread.loc['AM2 OT weight 1', m]:.3f} / {spread.loc['AM2 without losses', m]:.3f}" for m in spread.columns)
      + ".")

# %% [markdown]
# A small transport cost is not a correct transport: the OT loss is lowest when every frame state
# lies close to *some* word state, and nothing in it says which word; if the states also lose their
# spread, a low loss can even mean collapse rather than alignment: compare the spread of each
# modality with OT weight 1 and without the losses, printed above. The learned plan is the control
# that shows what finding the words looks like on the same clips.

# %% [markdown]
# ## 7 · The full profile: converged models, three seeds
#
# The same study as a resumable sweep of `alignlib.experiments` (every model of section 1, three
# seeds, a checkpoint per epoch, `analysis.checkpoint_summary` on each, 200 scored test clips),
# run on this project's 2-core CPU and committed as `benchmarks/results/experiments_inside.json` (the cell
# below says how to make it where it is not committed yet).
# Its data is the `short` preset: MOSI's 2199 clips and feature widths, clips of 8-16 words with
# about three frames a word (MOSI-length clips cost ten times more per epoch on this CPU). Every
# model trains until its validation MAE stops improving for 8 epochs (or 2400 optimiser steps);
# each model's steps and how many of its runs ended with a flat validation curve are printed.
# "End" is each run's last checkpoint (8 epochs after its best one when patience stopped it); the
# test MAE is that of the best checkpoint. Every trained model's number below is a mean over the
# seeds with a 95 % Student-t interval; the proportional guess, chance and the reference lines are
# means. The grid's one extra run, `references`, computes the four reference lines of notebook 06
# on the same data: `constant` (the training mean), `text_only`, `set_level` (the text and each
# clip's bags of audio and video cues) and `bound` (the cues bound to their words).

# %%
inside_path = Path(results_dir) / "experiments_inside.json"
full = load(inside_path) if inside_path.exists() else None
if full is None:
    print(f"no committed full profile at {inside_path}: python -m alignlib.experiments inside --profile full --out build/experiments")
else:
    run_minutes = sum(r["seconds"] for r in full["runs"].values()) / 60
    first_run = next(run for run in full["grid"] if run["kind"] == "inside")
    print(f"{full['command']}\n{len(full['runs'])} of {len(full['grid'])} runs, {run_minutes:.0f} min of run time; "
          f"at most {first_run['train']['epochs']} epochs (patience {first_run['train']['patience']}), d_model "
          f"{first_run['train']['model_options']['d_model']}, {first_run['analysis']['clips']} scored test clips per checkpoint; "
          f"git {sorted({r['software']['git'] for r in full['runs'].values()})}")
    full_table = tidy(full)
    full_references = full_table[full_table.variant == "references"]
    full_table = full_table[full_table.variant != "references"]
    full_stats = interval_summary(full_table, ["variant", "epoch"])
    # early stopping ends each run at its own epoch: "end" is each run's last checkpoint
    full_ends = full_table[full_table.groupby(["variant", "seed"]).epoch.transform("max") == full_table.epoch]
    end_stats = interval_summary(full_ends, ["variant"]).assign(epoch="end")
    print("epochs run: " + ", ".join(f"{v} {int(e.min())}-{int(e.max())}" for v, e in
                                     full_ends.groupby("variant", sort=False).epoch.agg(["min", "max"]).iterrows()))
    full_variants = [v for v in VARIANTS if v in set(full_table.variant)]
    plan_variants = [v for v in full_variants if v != "AM2 learned routing"]

    def full_cell(variant, metric, epoch):
        """The summary row of ``metric`` at ``epoch`` (a number, or "end": each run's last checkpoint)."""
        table = end_stats if epoch == "end" else full_stats
        return table[(table.variant == variant) & (table.metric == metric) & (table.epoch == epoch)].iloc[0]

    def interval(row):
        if not np.isfinite(row.ci_low):
            return f"{row['mean']:.3f} (one seed)"
        return f"{row['mean']:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]"

    cells = []
    for variant in plan_variants:
        for modality in analysis.SOURCES:
            cells.append({"model": variant, "modality": modality,
                          **{f"exact, epoch {e}": interval(full_cell(variant, f"{modality}_exact", e)) for e in (0, "end")},
                          **{f"{m}, end": interval(full_cell(variant, f"{modality}_{m}", "end")) for m in ("entropic", "relaxed")},
                          "proportional guess": f"{full_cell(variant, f'{modality}_proportional', 0)['mean']:.3f}",
                          "chance": f"{full_cell(variant, f'{modality}_chance', 0)['mean']:.3f}"})
    display(pd.DataFrame(cells).set_index(["model", "modality"]))

# %%
if full is not None:
    fig, axes = plt.subplots(1, 4, figsize=(19, 4))
    shown = plan_variants
    for ax, metric in zip(axes, ("audio_exact", "vision_exact", "ot", "mmd")):
        for k, variant in enumerate(shown):
            part = full_stats[(full_stats.variant == variant) & (full_stats.metric == metric)].sort_values("epoch")
            ax.plot(part.epoch, part["mean"], "o-", color=f"C{k}", label=variant)
            ax.fill_between(part.epoch, part.ci_low, part.ci_high, color=f"C{k}", alpha=0.2)
        if metric.endswith("exact"):
            modality = metric.split("_")[0]
            ax.axhline(full_cell(shown[0], f"{modality}_proportional", 0)["mean"], color="black", ls="--", label="proportional guess")
            ax.axhline(full_cell(shown[0], f"{modality}_chance", 0)["mean"], color="grey", ls=":", label="chance")
            ax.set(title=f"{modality} -> text: exact-plan accuracy", ylabel="accuracy")
        else:
            ax.set(title=f"{metric.upper()} loss, test clips (unweighted)", ylabel=metric)
        ax.set(xlabel="epoch")
        ax.legend(fontsize=7)
    fig.suptitle(f"full profile: mean and 95 % interval over {int(full_stats['n'].max())} seeds")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# Do the losses make correspondences emerge? Each seed trains the models from the same initial
# weights and batches, so the differences at the end are paired by seed: the mean difference with a
# 95 % interval, against the model trained without the losses.

# %%
if full is not None:
    finals = full_ends.pivot_table(index=["variant", "seed"], columns="metric", values="value")
    for variant in [v for v in ("AM2 with losses", "AM2 OT weight 1") if v in plan_variants]:
        if "AM2 without losses" not in plan_variants:
            break
        for modality in analysis.SOURCES:
            metric = f"{modality}_exact"
            paired = (finals.loc[variant][metric] - finals.loc["AM2 without losses"][metric]).dropna()
            if paired.empty:
                continue
            mean, low, high = stats_mean_ci(paired.to_numpy())
            verdict = ("higher" if low > 0 else "lower" if high < 0 else "not distinguishable") if np.isfinite(low) else "one seed"
            print(f"{variant:>16} - AM2 without losses, {modality:>6} exact-plan accuracy at the end: "
                  f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] ({verdict}; seeds {paired.index.astype(int).tolist()})")
    own_plans = [v for v in plan_variants if ((end_stats.variant == v) & (end_stats.metric == "audio_model")).any()
                 and v.startswith("AlignMamba-1")]  # AlignMamba-1's own plan: relaxed, or the learned one
    placements, test_mae = {}, {}  # for the summary below
    for variant, method in [(v, "exact") for v in plan_variants] + [(v, "model") for v in own_plans]:
        for modality in analysis.SOURCES:
            end_row, guess_row = full_cell(variant, f"{modality}_{method}", "end"), full_cell(variant, f"{modality}_proportional", 0)
            chance_row = full_cell(variant, f"{modality}_chance", 0)
            place = ("one seed: no interval to place" if not np.isfinite(end_row.ci_low) else
                     "above the proportional guess" if end_row.ci_low > guess_row["mean"] else
                     "below the proportional guess, above chance" if end_row.ci_low > chance_row["mean"] else
                     "not above chance")
            placements[variant, method, modality] = (end_row["mean"], guess_row["mean"], place)
            print(f"{variant:>25} {modality:>6} {'own plan' if method == 'model' else 'exact plan'}: end "
                  f"{interval(end_row)}: {place} (proportional guess {guess_row['mean']:.3f}, chance {chance_row['mean']:.3f})")
    references_mae = (full_references[full_references.metric == "MAE"].groupby("reference").value.mean()
                      if len(full_references) else pd.Series(dtype=float))
    print("references (test MAE): " + ", ".join(f"{k} {v:.3f}" for k, v in references_mae.items()))
    for variant in full_variants:
        mae = finals.loc[variant]["test_MAE"]
        mean, low, high = stats_mean_ci(mae.to_numpy())
        test_mae[variant] = (mean, low, high)
        place = ""
        if "set_level" in references_mae:
            gap = references_mae["set_level"] - mean
            place = ("one seed: no interval to place" if not np.isfinite(high) else
                     f"{gap:.3f} below the set_level line (it uses alignment)" if high < references_mae["set_level"] else
                     f"{-gap:.3f} above the set_level line" if low > references_mae["set_level"] else
                     "on the set_level line (its interval covers it)")
        steps = finals.loc[variant].get("test_optimizer_steps")
        steps = f"{int(steps.min())}-{int(steps.max())}" if steps is not None else "not recorded"
        flat = [run["rows"][-1]["metrics"].get("test_valid_flat") for run in full["runs"].values()
                if run["factors"]["variant"] == variant]  # a flag: tidy keeps numbers only
        flat = (f"validation flat in {sum(map(bool, flat))} of {len(flat)} runs" if None not in flat
                else "flatness not recorded")
        print(f"{variant:>26}: test MAE {mean:.3f} [{low:.3f}, {high:.3f}], {place}; optimiser steps {steps}, {flat}")

# %% [markdown]
# The experts of the trained AlignMamba-2 (paper weights) at initialisation and at the end, and the
# learned router's mutual information with the modality across epochs, both over the seeds. The MI
# of balanced modalities is at most log2 3 bits (here the modalities differ in length, so the
# ceiling is a little lower: section 4 printed it for the default profile's clips); a t-interval
# over three seeds can reach below 0, where an MI cannot go.

# %%
if full is not None:
    share_rows = end_stats[(end_stats.variant == "AM2 with losses") & end_stats.metric.str.startswith("shared_")]
    share_rows = share_rows.assign(projection=share_rows.metric.str.extract(r"shared_(.*)_[a-z]+$")[0],
                                   modality=share_rows.metric.str.extract(r"_([a-z]+)$")[0])
    share_init = full_stats[(full_stats.variant == "AM2 with losses") & (full_stats.epoch == 0)].set_index("metric")["mean"]
    print("shared expert's share of each modality's update at the end (AM2 with losses), and at initialisation:")
    display(share_rows.assign(cell=[f"{interval(r)}; init {share_init[r.metric]:.3f}" for _, r in share_rows.iterrows()])
            .pivot(index="projection", columns="modality", values="cell"))
    mi_full = full_stats[(full_stats.variant == "AM2 learned routing") & full_stats.metric.str.startswith("mi_")]
if full is not None and len(mi_full):
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (router, part) in enumerate(mi_full.groupby("metric")):
        part = part.sort_values("epoch")
        ax.plot(part.epoch, part["mean"], "o-", color=f"C{k}", label=router[3:])
        ax.fill_between(part.epoch, part.ci_low, part.ci_high, color=f"C{k}", alpha=0.2)
    ax.axhline(math.log2(3), color="black", ls="--", label="log2 3")
    ax.set(xlabel="epoch", ylabel="bits", title="full profile: I(modality; chosen expert), 95 % intervals")
    ax.legend(fontsize=8)
    plt.show()
    mi_end = end_stats[(end_stats.variant == "AM2 learned routing") & end_stats.metric.str.startswith("mi_")].set_index("metric")
    mi_init = mi_full[mi_full.epoch == 0].set_index("metric")["mean"]
    print("routing MI (bits) at the end, and at initialisation: "
          + ", ".join(f"{r[3:]} {interval(row)}; init {mi_init[r]:.3f}" for r, row in mi_end.iterrows()))

# %% [markdown]
# **Reading the full profile.** The printed lines answer three questions, each against its control:
# do the losses move the frames onto their words (paired difference with and without them, against
# the proportional guess and chance)? Does any model use alignment (test MAE below the `set_level`
# reference, which is all a model ignoring which frame belongs to which word can reach)? And does
# any plan find the words (the learned plan's own accuracy, against the same guess)? The shared
# expert's share and the router's MI are read against their values at initialisation, printed
# beside them (section 3 says why).

# %%
if full is not None and "set_level" in references_mae:
    line = references_mae["set_level"]
    above = {v: m - line for v, (m, low, high) in test_mae.items() if low > line}
    below = {v: line - m for v, (m, low, high) in test_mae.items() if high < line}
    chance_only = [key for key, (_, _, place) in placements.items() if key[1] == "exact" and place == "not above chance"]
    exact_pairs = [key for key in placements if key[1] == "exact"]
    own = [f"{v}'s own plan puts {placements[v, 'model', 'audio'][0]:.2f} of the audio and "
           f"{placements[v, 'model', 'vision'][0]:.2f} of the video frames on their word (proportional guess "
           f"{placements[v, 'model', 'audio'][1]:.2f} and {placements[v, 'model', 'vision'][1]:.2f})" for v in own_plans]
    display(Markdown(
        f"**What the converged models say.** {len(above)} of the {len(test_mae)} models sit above the `set_level` line "
        f"({line:.3f})" + (f", by {min(above.values()):.3f} to {max(above.values()):.3f}" if above else "")
        + (f"; below it: " + ", ".join(f"{v} by {gap:.3f}" for v, gap in below.items()) if below else "")
        + f". {len(chance_only)} of the {len(exact_pairs)} exact plans between trained states (model and modality) "
        "are not above chance at the end, with or without the losses. " + "; ".join(own) + "."
        + " The shared expert's share of the update, averaged over the projections, goes from "
        + ", ".join(f"{m} {share_init[share_rows.metric[share_rows.modality == m]].mean():.2f}" for m in ("audio", "text", "vision"))
        + " at initialisation to " + ", ".join(f"{m} {share_rows['mean'][share_rows.modality == m].mean():.2f}"
                                              for m in ("audio", "text", "vision"))
        + " at the end" + (f"; the learned routers' MI with the modality from {mi_init.mean():.2f} to "
                           f"{mi_end['mean'].mean():.2f} bits on average." if len(mi_full) else ".")))

# %%
recorded = {f"learned_plan_{m}_end": learned[m][learned[m].epoch == end].accuracy.mean() for m in analysis.SOURCES}
recorded.update({f"spread_{key}_audio": spread.loc[name, "audio"]
                 for name, key in (("AM2 OT weight 1", "am2_ot1"), ("AM2 without losses", "am2_plain"))})
for name, key in (("AM2 with losses", "am2_losses"), ("AM2 without losses", "am2_plain"), ("AM2 OT weight 1", "am2_ot1"),
                  ("AlignMamba-1", "am1")):
    for modality in ("audio", "vision"):
        recorded[f"{key}_{modality}_exact_end"] = final_exact[name, modality]
        recorded[f"{key}_{modality}_exact_init"] = initial_exact[name, modality]
record_metrics(
    metrics_path,
    **recorded,
    floor_audio=floor["audio"],
    floor_vision=floor["vision"],
    shared_share_text_layer0=shares.query("layer == 'fusion.0.in_proj' and modality == 'text'").shared.item(),
    routing_mi_end_max=mi[mi.epoch == end].bits.max(),
    ot_loss_end_with=losses[(losses.epoch == end) & (losses.model == "AM2 with losses")].ot.mean(),
    ot_loss_end_without=losses[(losses.epoch == end) & (losses.model == "AM2 without losses")].ot.mean(),
    ot_loss_end_ot1=losses[(losses.epoch == end) & (losses.model == "AM2 OT weight 1")].ot.mean(),
)

# %% [markdown]
# ## Exercises
#
# Three exercises on this notebook's ideas. Write each answer where its cell says `# your code` (or
# `# your prediction`) and run the cell: the check under it runs your answer on cases of its own,
# compares the result with an independent reference and, if they differ, names what differs, never
# the expected values. With the parameter `solutions=True` (the regression run sets it) every check
# runs the reference solution from `alignlib/notebooks/solutions.py` instead and folds it under its
# verdict.

# %%
from dataclasses import replace  # noqa: E402

from alignlib.notebooks.exercises import Exercises  # noqa: E402
from alignlib.train import evaluate  # noqa: E402

exercise = Exercises(solutions)

# %% [markdown]
# ### 1 · The spread of a clip's states (§6)
#
# Section 6 measured whether the states collapse onto one direction. Write the measure: for each
# clip, the unit vectors of its real tokens, their mean direction (the normalised mean of the unit
# vectors), and the mean cosine distance $1 - \cos$ of the real tokens to that direction; then the
# mean over clips.
#
# *The check*: your spread against `analysis.state_spread` on a batch with padding in odd places.

# %%
def state_spread(states, mask):
    """states (B, T, d), mask (B, T) bool -> the mean over clips of the tokens' cosine distance to their clip's direction."""
    ...  # your code


exercise.check("state_spread", state_spread)

# %% [markdown]
# ### 2 · A correspondence score with its interval (§2, §7)
#
# The full profile reports how many frames sit on their word as the mean of **per-clip** accuracies
# with a 95 % Student-t interval over the clips (each clip counts once, however long). Write it.
#
# *The check*: your `(mean, low, high)` against `analysis.per_clip_accuracy` and
# `stats.mean_ci` on six clips of different lengths.

# %%
def clip_accuracy_interval(guess, truth, mask):
    """guess, truth (B, T) word indices, mask (B, T) bool -> (mean, low, high) of the per-clip accuracies."""
    ...  # your code


exercise.check("clip_accuracy_interval", clip_accuracy_interval)

# %% [markdown]
# ### 3 · A prediction about the trained AlignMamba-2, then the cell that tests it (§2)
#
# The OT and MMD losses of AlignMamba-2 compare *sets* of tokens, blind to their order, and section 2
# found the frames' words about as often as chance. Reverse every test clip's audio and video frames in time (the text
# stays) and give them to the trained AlignMamba-2 with its losses. Predict: does its test MAE change
# by more than 0.01?

# %%
order_matters_to_alignmamba2 = None  # your prediction: True or False

# %% [markdown]
# The test: the best checkpoint of the first seed, on the test clips as they are and with their
# audio and video reversed (the masks reversed with them: padding may sit anywhere).

# %%
am2, _ = load_model(configs["AM2 with losses", 0].out)
reversed_test = replace(test, features={m: x[:, ::-1].copy() if m != "text" else x for m, x in test.features.items()},
                        masks={m: x[:, ::-1].copy() if m != "text" else x for m, x in test.masks.items()})
as_recorded, _ = evaluate(am2, test, batch_size, torch.device("cpu"))
reversed_metrics, _ = evaluate(am2, reversed_test, batch_size, torch.device("cpu"))
reversal_change = reversed_metrics["MAE"] - as_recorded["MAE"]
print(f"AM2 with losses, test MAE: in order {as_recorded['MAE']:.4f}, reversed {reversed_metrics['MAE']:.4f}")
exercise.check("order_matters_to_alignmamba2", order_matters_to_alignmamba2, change=reversal_change)
