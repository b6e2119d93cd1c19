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
# # 07 · Inside trained models: token correspondences and expert activations
#
# AlignMamba-2 presents its OT and MMD losses as *regularisation* ("a dual alignment strategy that
# regularizes the model"), the OT term "to capture fine-grained, token-level correspondences". The
# paper measures their effect on the task metrics only, never whether a frame ends up near the word
# it belongs to. The real datasets could tell: CMU-MOSI and CMU-MOSEI ship forced-alignment word
# timings (P2FA, in the CMU-MultimodalSDK), and MMSA's word-aligned files are built from them; the
# paper does not measure its alignment against them. The suite's synthetic benchmark (notebook 05) stores
# the true word of every frame, so we ask the question here and read the answer against reference
# lines and controls.
#
# **What you will learn**
# 1. the answer, from the committed sweep of converged models over seeds: do the losses put frames on
#    their words, against the proportional guess, chance and a control that does find them, and why not;
# 2. how to train with a checkpoint per epoch (`alignlib.analysis.train_keeping_epochs`) and score
#    exact, entropic and relaxed plans between learned states against the true frame-to-word table;
# 3. what the Modality-Aware Mamba experts can and cannot tell (deterministic routing cannot
#    identify the split between specific and shared expert), and what a learned router's mutual
#    information with the modality does during training;
# 4. how to browse plans and experts of trained models, and how to rerun the study (`## Reproduce it`).

# %% tags=["parameters"]
# the data: a synthetic MMSA pickle, or (empty) a generated MOSI-sized one of synth_clips clips
data_path: str = "../data_samples/synthetic_tiny.pkl"
synth_clips: int = 0  # 0: the preset's own count
# the models trained here, one checkpoint per epoch
epochs: int = 12
batch_size: int = 16
d_model: int = 16
n_layers: int = 2
n_seeds: int = 1
# the plans scored: the first n_clips test clips, entropic plans at the OT loss's blur
n_clips: int = 32
blur: float = 0.05
run_dir: str = ""  # where the runs are written; empty: a temporary folder
results_dir: str = "../benchmarks/results"  # the committed sweeps (experiments_inside.json)
metrics_path: str = ""  # where the runner records this notebook's key numbers
solutions: bool = False  # True: the Exercises section checks the reference solutions (the regression run sets it)

# %% tags=["setup"]
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from alignlib import analysis
from alignlib.data import load_mmsa, synthetic
from alignlib.experiments import inside
from alignlib.experiments.sweep import load
from alignlib.models.checkpoint import load_model
from alignlib.notebooks import record_metrics
from alignlib.train import TrainConfig
from alignlib.widgets.plans import TransportPlanExplorer
from alignlib.widgets.trained import ExpertActivationBrowser, TrainedModelSource

torch.set_num_threads(1)  # small models: one thread is fastest, and several contend on a shared CPU
run_root = Path(run_dir or tempfile.mkdtemp())
if not data_path:
    data_path = str(run_root / "synthetic_mosi.pkl")
    synthetic.write(data_path, *synthetic.generate("mosi", 0, synth_clips or None))
test = load_mmsa(data_path).splits["test"]
truth = analysis.truth_tables(data_path, "test")  # the true word of every test frame
clips = np.arange(min(n_clips, len(test)))
batch = analysis.clip_batch(test, clips)

# %% [markdown]
# ## The answer
#
# From the committed full profile of the `inside` sweep (`benchmarks/results/experiments_inside.json`,
# section 5 shows its tables and curves); every number below is formatted from that file, and each
# comparison is paired over the seeds with Holm-adjusted p-values and, where nothing differs, the
# smallest effect the three seeds could have detected.

# %%
full = load(Path(results_dir) / "experiments_inside.json")
ablations = load(Path(results_dir) / "experiments_ablations.json")  # its converged models' states' spread
display(Markdown(inside.summary(full, ablations)))

# %% [markdown]
# ## 1 · Train and keep a checkpoint per epoch
#
# Six models through `alignlib.train`, one epoch at a time, each epoch's checkpoint kept
# (`analysis.train_keeping_epochs`): AlignMamba-2 with its alignment losses (the paper's weights
# $\lambda_{OT} = 0.001$, $\lambda_{MMD} = 0.01$), the same without them (`align_loss=False`), the
# same with the OT loss weighted a thousand times more ($\lambda_{OT} = 1$: can the loss align frames
# at all when it dominates?), AlignMamba-1 with the paper's relaxed plan, AlignMamba-2 with a learned
# router (section 3), and AlignMamba-1 with the monotone plan it learns without the tables
# (`plan="learned"`, notebook 10): the control that shows what finding the words looks like. The
# untrained model is the one `train` starts from (`analysis.initial_model`), so "epoch 0" is
# initialisation. This notebook trains small models for a few epochs to show the method; the
# answer above comes from converged ones, and `## Reproduce it` reads this run's own numbers.

# %%
VARIANTS = inside.VARIANTS  # name: (model, model options), the same as the full-profile sweep's
configs, checkpoints = {}, {}
start = time.perf_counter()
for name, (model_name, options) in VARIANTS.items():
    for seed in range(n_seeds):
        out = run_root / f"{model_name}_{'_'.join(f'{k}-{v}' for k, v in options.items()) or 'default'}_seed{seed}"
        configs[name, seed] = TrainConfig(model=model_name, data=data_path, out=str(out), epochs=epochs,
                                          batch_size=batch_size, seed=seed,
                                          model_options={"d_model": d_model, "n_layers": n_layers, **options})
        checkpoints[name, seed] = analysis.train_keeping_epochs(configs[name, seed])
print("\n".join(f"{name:>26}: {model} {options or ''}" for name, (model, options) in VARIANTS.items()))
print(f"trained {len(configs)} runs in {time.perf_counter() - start:.0f} s;",
      f"checkpoints per run: {[len(v) for v in checkpoints.values()]}")

# %% [markdown]
# ## 2 · Scoring a plan against the truth
#
# For a checkpoint, the plans from each test clip's audio and video states onto its word states
# (cosine cost, as the OT loss), all from `alignlib.align.ot.plan`: exact OT (POT), entropic OT (the
# loss's blur) and AlignMamba-1's relaxed plan. A frame counts as recovered when its heaviest plan
# entry is its true word. Two floors read no state at all: the proportional guess (the
# `proportional` plan: frame $t$ of $n$ goes to word $\lfloor t W / n \rfloor$) and chance (a word
# drawn uniformly: the mean of $1/W$ over the frames). `analysis.checkpoint_summary` computes all of
# it for one checkpoint, with the unweighted OT and MMD losses of the same clips;
# `analysis.epoch_summaries` does it for every checkpoint of a run, and the sweep calls the same
# function.
#
# One test clip at the end of training, with and without the losses: magenta circles mark each
# frame's true word, the proportional guess's staircase is white; below, the frames joined to their
# heaviest word (green: right, red: wrong). (For AlignMamba-1, the plan that its model uses is its
# own, scored as `model` in the tables.)

# %%
final = {name: load_model(checkpoints[name, 0][-1])[0] for name in ("AM2 with losses", "AM2 without losses")}
inside.plot_clip_plans(final, test, truth, int(clips[0]))
plt.show()

# %% [markdown]
# ### Controls: is the word in the state at all?
#
# A cosine plan sees only directions. If every audio state shares one large offset $\mu_A$ (the
# generator gives audio a large fixed offset), all frames point nearly the same way and any plan sits
# near chance, whether or not the states hold their words. Three controls separate the two readings,
# each fitted on training clips and scored on the same test clips (`analysis.state_controls`):
#
# * **centred**: the exact plan between $h - \mu_m$, each modality's mean over its real training tokens removed;
# * **whitened**: between $(h - \mu_m) W_m$ with $W_m = V \operatorname{diag}\big(1/\sqrt{\lambda + \varepsilon}\big) V^\top$
#   from the covariance $\Sigma_m = V \operatorname{diag}(\lambda) V^\top$ (`analysis.whitening`): every
#   direction of the states then has unit variance, so a few dominant ones cannot hide the rest;
# * **probe**: ridge regression $\hat W = (X^\top X + \rho I)^{-1} X^\top Y$ from each training frame's
#   state $X$ to its word's text token $Y$ (the word's content, read with the tables:
#   `analysis.fit_word_probe`); a test frame counts as found when its mapped state is nearest (cosine)
#   to its own word's token among the clip's words. A probe that finds the words says they are in the
#   state, and a plan that misses them misses something the state holds.

# %%
train_split = load_mmsa(data_path).splits["train"]
fit_clips = range(min(300, len(train_split)))
final_models = {name: load_model(checkpoints[name, 0][-1])[0] for name in inside.PLAN_VARIANTS}
controls = pd.DataFrame({name: {**{f"{m}_exact": found[m]["exact"] for m in analysis.SOURCES},
                                **analysis.state_controls(model, train_split, test, fit_clips, clips)}
                         for name, model in final_models.items()
                         for found in [analysis.correspondences(model, test, truth, clips, methods=("exact",)).accuracy]}).T
display(controls.round(3))
fitted = analysis.clip_batch(train_split, fit_clips)
audio = analysis.token_states(final_models["AM2 with losses"], fitted)["audio"]
mean, whiten = analysis.whitening(audio, fitted.masks["audio"])
centred = audio[fitted.masks["audio"]].double() - mean
eigenvalues, vectors = torch.linalg.eigh(torch.cov(centred.T))
kept = eigenvalues / (eigenvalues + 1e-6 * eigenvalues.mean())  # the variance whitening leaves each direction
rotated = vectors.T @ torch.cov((centred @ whiten).T) @ vectors
assert torch.allclose(rotated, torch.diag(kept), atol=1e-6)
print(f"check, training audio states: their variances span {eigenvalues.max() / eigenvalues.min():.0e}x; whitened, "
      f"each direction keeps {kept.min():.3f} to {kept.max():.3f} of unit variance, and no two directions covary")

# %% [markdown]
# ## 3 · Expert activations and learned routing
#
# Each Modality-Aware Mamba projection gives a token of modality $m$ the update
# $E_m(h) + E_\text{shared}(h)$. With the paper's deterministic routing every token of $m$ gets
# exactly that sum, so the two matrices fold into one (notebook 04's fold test): how the update is
# split between the specific and the shared expert is not something training can identify, only the
# sum matters. Both experts start as independent draws of one distribution, so each carries about
# half of the update at initialisation; section 5 reports which shares moved from there beyond what
# the seeds leave to chance.
#
# With `routing="learned"` a softmax router per projection picks one expert per token. The mutual
# information between the token's modality and the chosen expert is 0 bits when the choice ignores
# the modality and the modality's entropy (at most $\log_2 3$ bits) when it recovers it exactly:
# here, the trained router of this notebook's run, at initialisation and at the end.

# %%
routed = {"init": analysis.initial_model(configs["AM2 learned routing", 0]),
          "end": load_model(checkpoints["AM2 learned routing", 0][-1])[0]}
bits = pd.DataFrame({when: analysis.routing_mutual_information(analysis.record_expert_activity(model, batch))
                     for when, model in routed.items()})
activity = analysis.record_expert_activity(routed["end"], batch)
share = torch.bincount(activity.modality[activity.mask]).double() / activity.mask.sum()
print(f"modality entropy of these tokens (the ceiling): {-(share * share.log2()).sum().item():.3f} bits")
print(bits.round(3).to_string())

# %% [markdown]
# ## 4 · Explorers on trained models
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
# ## 5 · The committed results: converged models over seeds
#
# The same study as a resumable sweep of `alignlib.experiments` (every model of section 1, a
# checkpoint per epoch, `analysis.checkpoint_summary` on each), run on this project's CPU and
# committed as `benchmarks/results/experiments_inside.json`. Its data is the `short` preset (MOSI's
# clip count and feature widths, shorter clips); every model trains until its validation MAE stops
# improving (or an optimiser-step cap). "End" is each run's last checkpoint; the test MAE is that of
# the checkpoint best on validation. The grid's `references` run computes the reference lines of
# notebook 06 on the same data: `constant`, `text_only`, `set_level` (the best without knowing which
# frame belongs to which word) and `bound` (the cue oracle).
#
# Below: the curves over the epochs; the plan table (mean and 95 % interval over the seeds at the
# end); the paired comparisons with and without the losses; the test MAE beside the reference lines,
# with each model's epochs, optimiser steps and flat validation curves; the spread of the converged
# states (ablations sweep); and the experts in words.

# %%
inside.show(full, ablations)

# %% [markdown]
# **Reading it.** A small transport cost is not a correct transport: the OT loss is lowest when every
# frame state lies close to *some* word state, and nothing in it says which word; compare the OT
# weight 1 row of the loss comparisons with its plan accuracy. The learned plan, trained on the same
# clips, is the control that shows what finding the words looks like, in the plan table and against
# the `set_level` line. The spread rows say what the states look like, not why: a small spread means
# nearly parallel states, which is all a cosine plan sees (exercise 2 looks past their common
# offset).

# %% [markdown]
# ## Reproduce it
#
# This notebook's own runs (section 1, the default parameters: one seed of a small model on a small
# sample, so it shows the method, not a verdict), through the same view as the committed sweep:
# `analysis.epoch_summaries` for every checkpoint, `inside.as_record` to lay them out as the sweep
# does. To rerun the full profile: `python -m alignlib.experiments inside --profile full --out build/experiments`
# (hours on a CPU; it resumes).

# %%
summaries = {key: analysis.epoch_summaries(configs[key], kept, test, truth, clips, blur) for key, kept in checkpoints.items()}
default = inside.as_record(summaries)
curves = inside.learning_curves(configs)
inside.plot_learning_curves(curves)
plt.show()
print("optimiser steps per run:", ", ".join(f"{v} {s}" for v, s in curves.groupby("variant", sort=False).steps.max().items()))
inside.plot_curves(default)
plt.show()
plans = inside.plan_table(default)
display(plans[plans.method.isin(["exact", "model"])][["variant", "modality", "method", "init", "end", "proportional", "chance"]].round(3))
display(inside.loss_table(default)[["variant", "loss", "init", "end"]].round(3))

# %% [markdown]
# The spread of the states at the end (the mean cosine distance of a clip's tokens to its mean
# direction, `analysis.state_spread`; 0: all on one direction), and the learned router's mutual
# information per epoch:

# %%
spread = pd.DataFrame({name: {m: analysis.state_spread(states[m], batch.masks[m]) for m in states}
                       for name in VARIANTS if name != "AM2 learned routing"
                       for states in [analysis.token_states(load_model(checkpoints[name, 0][-1])[0], batch)]}).T
print(spread.round(3).to_string())
ot1, plain = spread.loc["AM2 OT weight 1"], spread.loc["AM2 without losses"]
print("OT weight 1 against no losses:", ", ".join(
    f"{m} {ot1[m]:.3f} {'more spread than' if ot1[m] > plain[m] else 'less spread than'} {plain[m]:.3f}" for m in spread.columns))
print(inside.routing_mi(default).round(3).to_string())

# %%
last = {name: summaries[name, 0][-1] for name in VARIANTS}
first = {name: summaries[name, 0][0] for name in VARIANTS}
keys = {"AM2 with losses": "am2_losses", "AM2 without losses": "am2_plain", "AM2 OT weight 1": "am2_ot1", "AlignMamba-1": "am1"}
record_metrics(
    metrics_path,
    **{f"am2_losses_{m}_{k}": controls.loc["AM2 with losses", f"{m}_{k}"] for m in analysis.SOURCES
       for k in ("exact_centred", "exact_whitened", "probe")},
    **{f"{key}_{m}_exact_{when}": numbers[name][f"{m}_exact"] for name, key in keys.items() for m in analysis.SOURCES
       for when, numbers in (("end", last), ("init", first))},
    **{f"learned_plan_{m}_end": last["AlignMamba-1 learned plan"][f"{m}_model"] for m in analysis.SOURCES},
    **{f"floor_{m}": first["AM2 with losses"][f"{m}_proportional"] for m in analysis.SOURCES},
    spread_am2_ot1_audio=spread.loc["AM2 OT weight 1", "audio"],
    spread_am2_plain_audio=spread.loc["AM2 without losses", "audio"],
    shared_share_text_layer0=last["AM2 with losses"]["shared_fusion.0.in_proj_text"],
    routing_mi_end_max=max(v for k, v in last["AM2 learned routing"].items() if k.startswith("mi_")),
    ot_loss_end_with=last["AM2 with losses"]["ot"],
    ot_loss_end_without=last["AM2 without losses"]["ot"],
    ot_loss_end_ot1=last["AM2 OT weight 1"]["ot"],
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
# ### 1 · The spread of a clip's states (Reproduce it)
#
# The spread says whether a clip's states point in many directions or nearly one. Write the measure:
# for each clip, the unit vectors of its real tokens, their mean direction (the normalised mean of
# the unit vectors), and the mean cosine distance $1 - \cos$ of the real tokens to that direction;
# then the mean over clips.
#
# *The check*: your spread against `analysis.state_spread` on a batch with padding in odd places.

# %%
def state_spread(states, mask):
    """states (B, T, d), mask (B, T) bool -> the mean over clips of the tokens' cosine distance to their clip's direction."""
    ...  # your code


exercise.check("state_spread", state_spread)

# %% [markdown]
# ### 2 · Nearest words on centred states (§2, §5)
#
# States with a small spread are nearly parallel: they share a large common offset, and a cosine
# between two such tokens says more about the offset than about their differences. Look past it:
# remove each modality's mean over the real tokens of the batch, then give every real frame the real
# word of its clip with the largest cosine similarity (the heaviest entry of a plan that ignores the
# marginals).
#
# *The check*: your guesses against a loop over clips and frames on a padded batch with a common
# offset, then on the audio states of this notebook's trained AlignMamba-2 (with its losses); when
# they match, it prints how many audio frames the centred and the raw guess put on their word.

# %%
def centred_nearest_words(frames, words, frame_mask, word_mask):
    """frames (B, T, d), words (B, W, d), frame_mask (B, T), word_mask (B, W) bool -> (B, T) each real frame's word."""
    ...  # your code


exercise.check("centred_nearest_words", centred_nearest_words, states=analysis.token_states(final["AM2 with losses"], batch),
               masks=batch.masks, truth=torch.as_tensor(truth["audio"][clips]))

# %% [markdown]
# ### 3 · A prediction about the trained AlignMamba-2, then the cell that tests it (§2)
#
# The OT and MMD losses of AlignMamba-2 compare *sets* of tokens, blind to their order (the answer
# compares the plans between its states with chance). Reverse every test clip's audio and video
# frames in time (the text stays) and give them to the trained AlignMamba-2 with its losses.
# Predict: does its test MAE change by more than 0.01?

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
