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
# # 10 · Beyond the papers: a frame-to-word alignment learned without the tables
#
# AlignMamba-1 sends every audio and video frame to a word with a transport plan, then feeds the
# interleaved sequence $[a_1, v_1, l_1, a_2, \dots]$ to Mamba. On this suite's synthetic benchmark
# we know the true word of every frame (notebook 05), so we can ask whether the plans find it.
# Notebooks 05 and 07 say no: OT plans between trained states land frames on their word at about
# the rate of chance. This notebook finds out why, and builds a plan that **learns** the
# correspondence from the clips themselves, never reading the tables, and that a model uses.
#
# **What you will learn**
# 1. why the papers' plans cannot find the words here: shown on AlignMamba-1 at initialisation and
#    after training, against the proportional-time guess;
# 2. monotone alignment from its recursion: the forward recursion by hand, the posterior against
#    an enumeration of every path, and the best path (Viterbi);
# 3. what the time-order prior is worth: exact OT against the monotone plan, both on a projection
#    fitted *with* the tables;
# 4. the learning signal without tables: the alignment's own likelihood, and why it learns the words
#    with one normalisation of the emissions and collapses onto a "hub" word with the other;
# 5. AlignMamba-1 with the learned plan trained end to end, beside the oracle and the paper's plans
#    and the benchmark's four reference lines: learning curves and correspondence per epoch;
# 6. an explorer of the plans over clips and epochs;
# 7. the committed full profile on MOSI-length clips: three seeds, 95 % intervals, a second data
#    seed, and the targets checked from the numbers;
# 8. what fails and why.

# %% tags=["parameters"]
data_path: str = ""  # a synthetic MMSA pickle with its tables; empty: generate synth_preset
synth_preset: str = "tiny"  # preset generated when data_path is empty (tiny, short, mosi)
synth_clips: int = 600  # clips generated when data_path is empty (0: the preset's own count)
data_seed: int = 0  # seed of the generated data
epochs: int = 12  # AlignMamba-1 training epochs per plan (section 5)
patience: int = 8  # epochs without a better validation MAE before a run stops
batch_size: int = 32  # clips per optimiser step
lr: float = 0.003  # Adam learning rate of the AlignMamba-1 runs
d_model: int = 32  # AlignMamba-1 width
n_layers: int = 1  # AlignMamba-1 Mamba layers
aligner_epochs: int = 2  # epochs of the stand-alone aligners of section 4
aligner_lr: float = 0.01  # their Adam learning rate
n_clips: int = 120  # test clips on which every plan is scored
blur: float = 0.05  # temperature of the OT and monotone plans between fixed projections; epsilon is blur squared
seed: int = 0  # seeds every model and random draw
run_dir: str = ""  # where the runs are written; empty: a temporary folder
results_path: str = "../benchmarks/results/experiments_learned.json"  # the committed full-profile sweep
solutions: bool = False  # True: the Exercises section checks the reference solutions (the regression run sets it)
metrics_path: str = ""  # where the runner records this notebook's key numbers

# %%
import itertools
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
from tqdm.auto import tqdm

from alignlib import analysis
from alignlib.align import monotone, ot
from alignlib.data import MMSADataset, collate, load_mmsa, synthetic
from alignlib.data.mmsa import MODALITIES
from alignlib.data.references import REFERENCES, score_references
from alignlib.experiments import stats
from alignlib.experiments.learned import SECOND_DATA, TUNED_ORACLE, VARIANTS
from alignlib.experiments.sweep import load, tidy
from alignlib.experiments.training import reference_summary
from alignlib.models.checkpoint import load_model
from alignlib.notebooks import record_metrics
from alignlib.train import TrainConfig
from alignlib.widgets.learned import LearnedPlanExplorer

sns.set_theme(context="notebook", style="whitegrid")
torch.set_num_threads(1)  # small models: one thread is fastest, and several contend on a shared CPU
started = time.perf_counter()
run_root = Path(run_dir or tempfile.mkdtemp())
if not data_path:
    data_path = str(run_root / f"synthetic_{synth_preset}_{synth_clips or 'preset'}_seed{data_seed}.pkl")
    synthetic.write(data_path, *synthetic.generate(synth_preset, data_seed, synth_clips or None))
data = load_mmsa(data_path)
train_split, test = data.splits["train"], data.splits["test"]
truth = analysis.truth_tables(data_path, "test")
clips = np.arange(min(n_clips, len(test)))
SOURCES = analysis.SOURCES  # ("audio", "vision"): the modalities aligned onto the words
per_word = {m: float((test.masks[m].sum(1) / test.masks["text"].sum(1)).mean()) for m in SOURCES}
print(f"{Path(data_path).name}: " + ", ".join(f"{k} {len(v)} clips" for k, v in data.splits.items()),
      f"| scoring {len(clips)} test clips |", ", ".join(f"{per_word[m]:.1f} {m} frames a word" for m in SOURCES))


def chance(masks, modality):
    """Accuracy of a word drawn uniformly for each frame: the mean of 1 / W over the real frames."""
    words = masks["text"].sum(1, keepdim=True).double().expand_as(masks[modality])
    return (1 / words)[masks[modality]].mean().item()


# %% [markdown]
# ## 1 · Why the papers' plans cannot find the words here
#
# AlignMamba-1 projects each modality to width $d$ ($h_a = W_a x_a$, ...), computes its **relaxed**
# plan between the projected frames and words (each frame sends its mass to the word at the lowest
# cosine cost), and transports the frames: $\tilde h_a = M^\top h_a$. We train a small AlignMamba-1
# with that plan (`alignlib.train`, a checkpoint per epoch through `analysis.train_keeping_epochs`)
# and score, at initialisation and at the end, the plans between its projections: the relaxed plan
# (its own, `model`), exact OT, and the proportional-time guess, which reads no feature (frame $t$ of
# $n$ goes to word $\lfloor tW/n \rfloor$). A frame counts as found when its heaviest plan entry is its
# true word (`analysis.correspondences`).


# %%
def run_config(plan):
    """The AlignMamba-1 run of section 5 with ``plan`` (relaxed, learned, oracle, ...)."""
    return TrainConfig(model="alignmamba1", data=data_path, out=str(run_root / f"alignmamba1_{plan}"), epochs=epochs,
                       patience=patience, batch_size=batch_size, lr=lr, seed=seed,
                       model_options={"d_model": d_model, "n_layers": n_layers, "plan": plan})


configs, checkpoints = {"relaxed": run_config("relaxed")}, {}
checkpoints["relaxed"] = analysis.train_keeping_epochs(configs["relaxed"])
ends = {"initial": analysis.initial_model(configs["relaxed"]), "trained": load_model(checkpoints["relaxed"][-1])[0]}
found_ends = {when: analysis.correspondences(model, test, truth, clips, methods=("proportional", "exact", "relaxed"),
                                             blur=blur) for when, model in ends.items()}
paper = pd.DataFrame([{"model": when, "modality": m, "plan": method, "accuracy": value}
                      for when, found in found_ends.items() for m in SOURCES
                      for method, value in found.accuracy[m].items() if method != "model"])
chance_level = {m: chance(found_ends["initial"].masks, m) for m in SOURCES}
print(paper.pivot_table(index=["modality", "plan"], columns="model", values="accuracy").round(3).to_string())
print("chance (a uniform word per frame):", ", ".join(f"{m} {v:.3f}" for m, v in chance_level.items()))
agree = np.mean([(found.plans[m, "relaxed"].argmax(2) == found.plans[m, "model"].argmax(2))[found.masks[m]].double().mean()
                 for found in found_ends.values() for m in SOURCES])
print(f"the model's own plan (float32) and `relaxed` between its projections (float64) pick the same word for "
      f"{agree:.1%} of the frames")

fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), sharey=True)
for ax, m in zip(axes, SOURCES):
    sns.barplot(data=paper[paper.modality == m], x="plan", y="accuracy", hue="model", ax=ax)
    ax.axhline(chance_level[m], color="k", ls=":", label="chance")
    ax.set(title=f"{m} -> words, AlignMamba-1 (relaxed plan)", ylabel="frames on their true word")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
trained_found = found_ends["trained"].accuracy
display(Markdown(
    "After training, the plans between AlignMamba-1's projections put "
    + " and ".join(f"{trained_found[m]['exact']:.2f} (exact) / {trained_found[m]['relaxed']:.2f} (relaxed) of the "
                   f"{dict(audio='audio', vision='video')[m]} frames" for m in SOURCES)
    + f" on their word, where a uniform guess gets {chance_level['audio']:.2f} and the proportional-time guess, which "
    f"reads nothing, {trained_found['audio']['proportional']:.2f} (audio) and {trained_found['vision']['proportional']:.2f} (video)."))

# %% [markdown]
# Two reasons, each checked below.
#
# **Nothing trains the plan.** The relaxed plan is an `argmin` per frame: a piecewise constant
# function of the states, so its derivative is zero wherever it exists, and AlignMamba-1 computes
# it from detached states anyway. The task loss reaches the projections only through the values
# $M^\top h$ that the plan transports; nothing asks the projected frames and words to be *comparable*,
# so the cosine costs between them stay arbitrary. (AlignMamba-2's OT loss does pull the two clouds
# together, but as sets: collapsing every token onto one point also minimises it, notebook 07.)
#
# **OT cannot see time.** An OT plan depends on the cost matrix only, and permuting the frames
# permutes its rows: a plan computed on frames shuffled in time is the same plan, shuffled. So no OT
# plan can use the one thing every clip guarantees, that speech runs forward through the words.

# %%
batch = analysis.clip_batch(test, clips[:1])
states = analysis.token_states(ends["trained"], batch)
x, y = states["audio"].double(), states["text"].double()
x_mask, y_mask = batch.masks["audio"], batch.masks["text"]
nudge = 1e-6 * torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(seed))
nudged = ot.plan(x + nudge, y, x_mask, y_mask, method="relaxed")
relaxed_same = torch.equal(nudged, ot.plan(x, y, x_mask, y_mask, method="relaxed"))
real = int(x_mask.sum())
order = torch.randperm(real, generator=torch.Generator().manual_seed(seed))
exact = ot.plan(x[:, :real], y, None, y_mask, method="exact")
shuffled_exact = ot.plan(x[:, order], y, None, y_mask, method="exact")
time_blind_gap = (shuffled_exact[0] - exact[0][order]).abs().max().item()
print(f"relaxed plan unchanged by a 1e-6 nudge of the states: {relaxed_same}")
print(f"exact plan of time-shuffled frames vs the shuffled plan: max |difference| = {time_blind_gap:.1e}")
assert time_blind_gap < 1e-12

# %% [markdown]
# ## 2 · Monotone alignment, from its recursion
#
# A clip's frames $1..n$ map onto its words $1..W$ by a **monotone path** $\pi$: frame 1 on word 1,
# frame $n$ on word $W$, and each next frame stays on its word or moves to the next one. Given scores
# $e_{ij}$ (how well frame $i$ fits word $j$, as log-probabilities), a path scores
# $s(\pi) = \sum_i e_{i, \pi_i}$ and all paths together
#
# $$\log Z = \log \sum_{\pi} \exp s(\pi).$$
#
# There are $\binom{n-1}{W-1}$ paths (which frames start a new word), but $Z$ factorises along time.
# With $\alpha_{ij}$ the log-sum over the paths of frames $1..i$ that end on word $j$:
#
# $$\alpha_{1,1} = e_{1,1}, \qquad \alpha_{ij} = e_{ij} + \log\left(e^{\alpha_{i-1,j}} + e^{\alpha_{i-1,j-1}}\right),
# \qquad \log Z = \alpha_{n,W}.$$
#
# That is $O(nW)$ work: a left-to-right hidden Markov model whose states are the words (DTW's
# recursion with a sum in place of the min). We compute it by hand on a 6 x 3 example and compare
# with `alignlib.align.monotone.log_partition`.

# %%
n_small, w_small = 6, 3
scores_small = torch.randn(1, n_small, w_small, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
e = scores_small[0].numpy()
alpha = np.full((n_small, w_small), -np.inf)
alpha[0, 0] = e[0, 0]
for i in range(1, n_small):
    for j in range(w_small):
        previous = np.logaddexp(alpha[i - 1, j], alpha[i - 1, j - 1] if j > 0 else -np.inf)
        alpha[i, j] = e[i, j] + previous
log_z_library = monotone.log_partition(scores_small).item()
print(np.round(alpha, 3))
print(f"log Z by hand {alpha[-1, -1]:.12f}   library {log_z_library:.12f}")
assert abs(alpha[-1, -1] - log_z_library) < 1e-12

# %% [markdown]
# **The posterior is the gradient.** The probability that frame $i$ sits on word $j$, over all
# paths weighted by $e^{s(\pi)} / Z$, is $\gamma_{ij} = \partial \log Z / \partial e_{ij}$ (each path's
# score is linear in the $e_{ij}$ it visits). `monotone.posterior` computes it by the backward
# recursion (forward-backward), and it is a soft plan whose rows sum to 1. We check it three ways:
# against an enumeration of all $\binom{5}{2} = 10$ paths, against autograd through `log_partition`,
# and the best path (`monotone.best_path`, Viterbi: the recursion with a max) against the
# enumeration's best.

# %%
paths = [np.concatenate([[0], np.cumsum(steps)]) for steps in itertools.product((0, 1), repeat=n_small - 1)
         if sum(steps) == w_small - 1]
path_scores = np.array([e[np.arange(n_small), path].sum() for path in paths])
weights = np.exp(path_scores - np.logaddexp.reduce(path_scores))
enumerated = np.zeros((n_small, w_small))
for path, weight in zip(paths, weights):
    enumerated[np.arange(n_small), path] += weight
posterior_small = monotone.posterior(scores_small)[0].numpy()
leaf = scores_small.clone().requires_grad_()
gradient_small, = torch.autograd.grad(monotone.log_partition(leaf).sum(), leaf)
viterbi = monotone.best_path(scores_small)[0].numpy()
print(f"{len(paths)} paths; log Z by enumeration {np.logaddexp.reduce(path_scores):.12f}")
print(f"max |posterior - enumeration| = {np.abs(posterior_small - enumerated).max():.1e}, "
      f"max |posterior - d log Z / d e| = {np.abs(posterior_small - gradient_small[0].numpy()).max():.1e}")
print("Viterbi path:", viterbi.tolist(), " best enumerated path:", paths[int(path_scores.argmax())].tolist())
assert np.abs(posterior_small - enumerated).max() < 1e-12
assert np.abs(posterior_small - gradient_small[0].numpy()).max() < 1e-12
assert (viterbi == paths[int(path_scores.argmax())]).all()

fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
sns.heatmap(e.T, annot=True, fmt=".1f", cmap="vlag", center=0, ax=axes[0], cbar=False)
for path, weight in zip(paths, weights):
    axes[0].plot(np.arange(n_small) + 0.5, path + 0.5, color="k", alpha=0.15 + 0.85 * weight / weights.max(), lw=1)
axes[0].set(title="scores e (frames x words) and all 10 paths (darker: likelier)", xlabel="frame", ylabel="word")
sns.heatmap(posterior_small.T, annot=True, fmt=".2f", cmap="rocket_r", ax=axes[1], cbar=False, vmin=0, vmax=1)
axes[1].plot(np.arange(n_small) + 0.5, viterbi + 0.5, "c-o", label="Viterbi path")
axes[1].set(title="posterior P(frame i on word j)", xlabel="frame", ylabel="word")
axes[1].legend(loc="lower right", fontsize=8)
plt.tight_layout()
plt.show()
print(f"a MOSI-length clip of 375 audio frames and 50 words has {float(math.comb(374, 49)):.1e} monotone paths; "
      f"the recursion visits {375 * 50} cells")

# %% [markdown]
# ## 3 · What the time order is worth, given the right projection
#
# Before anything is learned: suppose a projection that puts frames near their word exists. The
# control `analysis.fit_supervised_projection` fits one *with* the tables (ridge regression from each
# training frame to its word's text features: what no model here is given). On the test clips we
# then compare, on the same cosine costs, the per-frame best word (the relaxed plan), exact OT, and
# the `monotone` plan of `ot.plan` (the posterior of the scores $-C_{ij}/\varepsilon$ with
# $\varepsilon = $ `blur`$^2$, normalised as in section 4).

# %%
supervised = {}
supervised_plans = {}
for m in SOURCES:
    project = analysis.fit_supervised_projection(train_split, m)
    batch = analysis.clip_batch(test, clips)
    frames = torch.from_numpy(project(batch.features[m].double().numpy()))
    words = batch.features["text"].double()
    table = torch.as_tensor(truth[m][clips])
    supervised[m] = {}
    for method in ("proportional", "relaxed", "exact", "monotone"):
        plan = ot.plan(frames, words, batch.masks[m], batch.masks["text"], method=method, blur=blur)
        supervised[m][method] = ot.correspondence_accuracy(plan, table, batch.masks[m])
        supervised_plans[m, method] = plan
supervised_table = pd.DataFrame(supervised).T
print(supervised_table.round(3).to_string())

fig, axes = plt.subplots(1, 3, figsize=(15, 3.6), gridspec_kw=dict(width_ratios=[1, 1.3, 1.3]))
supervised_table.plot.bar(ax=axes[0], rot=0)
axes[0].set(title="supervised projection: frames on their word", ylim=(0, 1))
axes[0].legend(fontsize=7)
frames_real, words_real = batch.masks["audio"][0], batch.masks["text"][0]
for ax, method in zip(axes[1:], ("exact", "monotone")):
    plan = supervised_plans["audio", method][0][frames_real][:, words_real].numpy()
    ax.imshow(plan.T, aspect="auto", cmap="rocket_r", origin="lower")
    ax.grid(False)
    ax.scatter(np.arange(int(frames_real.sum())), truth["audio"][clips[0]][:int(frames_real.sum())], s=14,
               facecolors="none", edgecolors="c")
    ax.set(title=f"audio, clip 0: {method} plan (o = true word)", xlabel="frame", ylabel="word")
plt.tight_layout()
plt.show()
gain = {m: supervised[m]["monotone"] - supervised[m]["exact"] for m in SOURCES}
most = max(SOURCES, key=gain.get)
display(Markdown(
    "On the same costs, the time order moves audio from "
    f"{supervised['audio']['exact']:.2f} (exact OT) to {supervised['audio']['monotone']:.2f} (monotone) and video from "
    f"{supervised['vision']['exact']:.2f} to {supervised['vision']['monotone']:.2f} (the proportional guess: "
    f"{supervised['audio']['proportional']:.2f} and {supervised['vision']['proportional']:.2f}). "
    f"{dict(audio='Audio', vision='Video')[most]} gains most ({gain[most]:+.2f} against {min(gain.values()):+.2f}). "
    "A frame whose content cannot tell neighbouring words apart (audio has "
    f"{train_split.features['audio'].shape[2]} features, video {train_split.features['vision'].shape[2]}) is placed "
    "by its neighbours in time, which OT cannot do."))

# %% [markdown]
# ## 4 · The learning signal without tables
#
# Now nobody gives us the tables. `alignlib.align.monotone.MonotoneAligner` maps each frame through a
# small MLP and each word through a linear map into a shared space, token by token (only content can
# match a frame to a word), and scores them by cosine similarity over a temperature: $s_{ij}$. Its
# training signal is the clip's own likelihood under the monotone model, $-\log Z / n$: high when
# *some* monotone path runs through frames that each resemble their word. Minimising it needs no
# table. But $\log Z$ needs log-probabilities $e_{ij}$ from the similarities, and there are two ways
# to normalise them:
#
# * **over each frame's words**, $e_{ij} = \log p(\text{word } j \mid \text{frame } i) = s_{ij} - \log\sum_{j'} e^{s_{ij'}}$
#   (what CTC does);
# * **over each word's frames**, $e_{ij} = \log p(\text{frame } i \mid \text{word } j) = s_{ij} - \log\sum_{i'} e^{s_{i'j}}$
#   (the emission of a generative HMM: each word generates its frames).
#
# Consider a **hub**: one word $h$ that is a little more similar to every frame, $s_{ih} \mathrel{+}= b$.
# Word normalisation subtracts each column's log-sum, so a constant added to a column cancels
# exactly: $\log Z$ does not move, whatever $b$. A word gains only by being *more* similar to some
# frames than to others, which is what a correspondence is. Frame normalisation instead raises
# $p(h \mid i)$ for every frame; a path may park on the hub for all but the $W - 1$ frames it needs to
# visit the other words, so the hub's gain grows with the frames and its cost with the words.
# Below, $\Delta \log Z / n$ against $b$ on an untrained clip ($s = 0$), at this data's typical
# lengths and at MOSI's (375 frames, 50 words), computed with `monotone.log_partition`.

# %%
def hub_gain(n_frames, n_words, strengths, normalise, hub=1):
    """Delta log Z / n of an untrained clip (s = 0) when word ``hub`` is made ``b`` more similar to every frame."""
    def log_z(b):
        similarity = torch.zeros(1, n_frames, n_words, dtype=torch.float64)
        similarity[0, :, hub] = b
        return monotone.log_partition(monotone.emission_scores(similarity, normalise=normalise)).item()
    return np.array([(log_z(b) - log_z(0.0)) / n_frames for b in strengths])


typical = (int(np.median(train_split.masks["audio"].sum(1))), int(np.median(train_split.masks["text"].sum(1))))
strengths = np.linspace(0, 6, 13)
gains = {(sizes, norm): hub_gain(*sizes, strengths, norm) for sizes in (typical, (375, 50)) for norm in ("frames", "words")}
fig, ax = plt.subplots(figsize=(6.5, 3.6))
for (sizes, norm), values in gains.items():
    ax.plot(strengths, values, "o-" if norm == "frames" else "s--", label=f"{norm}-normalised, {sizes[0]} frames / {sizes[1]} words")
ax.set(xlabel="hub strength b", ylabel="Δ log Z / n", title="what a hub word earns, untrained clip")
ax.legend(fontsize=8)
plt.show()
word_flat = max(np.abs(values).max() for (sizes, norm), values in gains.items() if norm == "words")
print(f"word-normalised: max |Δ log Z| / n = {word_flat:.1e} (exactly flat);",
      ", ".join(f"frame-normalised at {s[0]}/{s[1]}: best gain {gains[s, 'frames'].max():+.2f} nats a frame at "
                f"b = {strengths[gains[s, 'frames'].argmax()]:.1f}" for s in (typical, (375, 50))))
assert word_flat < 1e-9

# %% [markdown]
# Under frame normalisation, an untrained model's likelihood rises when any one word grows more
# similar to everything: a direction that needs no correspondence at all, found first by gradient
# descent and then reinforced (the posterior follows the emissions, the emissions the posterior).
# Under word normalisation that direction does not exist. We now train both, on the training split,
# never reading the tables: the library's `MonotoneAligner` (word-normalised) and a variant whose
# `scores` normalise over the frames' words (`emission_scores(..., normalise="frames")`), and score
# the posterior's heaviest word on the test clips after every step, with the **hub share**: the share
# of a clip's frames on its most used word (the truth's own value is the dashed line).


# %%
class FrameNormalisedAligner(monotone.MonotoneAligner):
    """MonotoneAligner with its emissions normalised over each frame's words (log p(word | frame), as CTC)."""

    def scores(self, x, y, x_mask, y_mask):
        a = torch.nn.functional.normalize(self.source(x), dim=-1)
        b = torch.nn.functional.normalize(self.target(y), dim=-1)
        return monotone.emission_scores(a @ b.transpose(1, 2) / self.temperature, x_mask, y_mask, normalise="frames")


def hub_share(guess, mask):
    """Mean over clips of the share of a clip's real frames on its most used word."""
    shares = [np.bincount(g[m]).max() / m.sum() for g, m in zip(guess.numpy(), mask.numpy())]
    return float(np.mean(shares))


test_batch = analysis.clip_batch(test, clips)
train_batch = analysis.clip_batch(train_split, np.arange(len(train_split)))
aligner_history, aligners = [], {}
for m, (name, kind) in itertools.product(SOURCES, (("word-normalised", monotone.MonotoneAligner),
                                                    ("frame-normalised", FrameNormalisedAligner))):
    torch.manual_seed(seed)
    aligner = kind(train_split.features[m].shape[2], train_split.features["text"].shape[2])
    optimiser = torch.optim.Adam(aligner.parameters(), lr=aligner_lr)
    order = torch.Generator().manual_seed(seed)
    step = 0
    for epoch in tqdm(range(aligner_epochs + 1), desc=f"{m}, {name}", leave=False):
        for chunk in torch.randperm(len(train_split), generator=order).split(batch_size) if epoch else [None]:
            if chunk is not None:  # epoch 0: the untrained aligner, scored once
                _, loss = aligner(train_batch.features[m][chunk], train_batch.features["text"][chunk],
                                  train_batch.masks[m][chunk], train_batch.masks["text"][chunk])
                optimiser.zero_grad()
                loss.mean().backward()
                optimiser.step()
                step += 1
            with torch.no_grad():
                plan, test_loss = aligner(test_batch.features[m], test_batch.features["text"],
                                          test_batch.masks[m], test_batch.masks["text"])
            guess = plan.argmax(2)
            aligner_history.append({"modality": m, "emissions": name, "step": step,
                                    "accuracy": analysis.frame_accuracy(guess, torch.as_tensor(truth[m][clips]),
                                                                        test_batch.masks[m]),
                                    "hub share": hub_share(guess, test_batch.masks[m]),
                                    "-log Z / n": test_loss.mean().item()})
    aligners[m, name] = aligner
aligner_history = pd.DataFrame(aligner_history)
true_hub = {m: hub_share(torch.as_tensor(truth[m][clips]).clamp_min(0), test_batch.masks[m]) for m in SOURCES}
aligner_final = aligner_history.groupby(["modality", "emissions"]).last()
print(aligner_final.round(3).to_string())

fig, axes = plt.subplots(1, 3, figsize=(16, 3.6))
for ax, column in zip(axes, ("accuracy", "hub share", "-log Z / n")):
    sns.lineplot(data=aligner_history, x="step", y=column, hue="modality", style="emissions", ax=ax)
    ax.set(title=f"test clips: {column}")
for m, color in zip(SOURCES, sns.color_palette()[:2]):
    axes[0].axhline(supervised[m]["proportional"], color=color, ls=":", lw=1)
    axes[1].axhline(true_hub[m], color=color, ls="--", lw=1)
axes[0].set_ylim(0, 1)
axes[0].legend(fontsize=7)
for ax in axes[1:]:
    ax.get_legend().remove()
plt.tight_layout()
plt.show()

# %%
clip_frames, clip_words = test_batch.masks["audio"][0], test_batch.masks["text"][0]
fig, axes = plt.subplots(1, 2, figsize=(13, 3.4), sharey=True)
for ax, name in zip(axes, ("word-normalised", "frame-normalised")):
    with torch.no_grad():
        plan, _ = aligners["audio", name](test_batch.features["audio"][:1], test_batch.features["text"][:1],
                                          test_batch.masks["audio"][:1], test_batch.masks["text"][:1])
    shown = plan[0][clip_frames][:, clip_words].numpy() * int(clip_frames.sum())
    ax.imshow(shown.T, aspect="auto", cmap="rocket_r", origin="lower", vmin=0, vmax=1)
    ax.grid(False)
    ax.scatter(np.arange(int(clip_frames.sum())), truth["audio"][clips[0]][:int(clip_frames.sum())], s=14,
               facecolors="none", edgecolors="c")
    final = aligner_final.loc[("audio", name)]
    ax.set(title=f"audio, test clip 0, {name}: accuracy {final['accuracy']:.2f}, hub share {final['hub share']:.2f}",
           xlabel="frame", ylabel="word")
plt.tight_layout()
plt.show()
learned_word = {m: aligner_final.loc[(m, "word-normalised"), "accuracy"] for m in SOURCES}
learned_frame = {m: aligner_final.loc[(m, "frame-normalised"), "accuracy"] for m in SOURCES}
untrained = aligner_history[(aligner_history.step == 0) & (aligner_history.modality == "audio")]
start_hub = dict(zip(untrained.emissions, untrained["hub share"]))
display(Markdown(
    f"After {aligner_epochs} epochs ({int(aligner_history.step.max())} steps), never reading a table, the word-normalised "
    f"aligner puts {learned_word['audio']:.2f} of the audio frames and {learned_word['vision']:.2f} of the video frames on "
    f"their word (proportional guess: {supervised['audio']['proportional']:.2f} and "
    f"{supervised['vision']['proportional']:.2f}); the frame-normalised one {learned_frame['audio']:.2f} and "
    f"{learned_frame['vision']:.2f}, with a hub share of "
    f"{aligner_final.loc[('audio', 'frame-normalised'), 'hub share']:.2f} (audio) where the truth has "
    f"{true_hub['audio']:.2f}. At step 0, untrained, the hub shares are already {start_hub['frame-normalised']:.2f} "
    f"(frame-normalised) and {start_hub['word-normalised']:.2f} (word-normalised): random projections make some word a "
    "little more similar to every frame, frame normalisation turns that offset into a hub, word normalisation removes "
    f"it. At MOSI's lengths the hub earns {gains[(375, 50), 'frames'].max():.2f} nats a frame instead of "
    f"{gains[typical, 'frames'].max():.2f} here (the curve above): the pull towards it is stronger there. "
    "(The two losses on the right are not comparable with each other: one is a probability over a clip's words, "
    "the other over its frames.)"))

# %% [markdown]
# ## 5 · The learned plan inside AlignMamba-1, trained end to end
#
# `ModelConfig(plan="learned")` gives AlignMamba-1 one `MonotoneAligner` per modality on the raw
# features; its plan (the posterior, without gradient) transports the projected frames onto the words,
# and its loss $-\log Z / n$ joins the task loss with weight `lambda_align` (1). The sentiment labels
# and the clips are all it sees. Beside it, the same model with the paper's relaxed plan (section 1's
# run), with the **oracle** plan (the true tables: the architecture's ceiling, a control that reads
# what no model can), and the benchmark's four reference lines (`score_references`: scikit-learn
# on the generator's latent cues; `set_level` is the best a model can do without knowing which frame
# belongs to which word, `bound` what binding every cue to its word allows).

# %%
PLANS = {"relaxed": "relaxed plan (paper)", "learned": "learned plan", "oracle": "oracle plan"}
for plan in tqdm([p for p in PLANS if p not in checkpoints], desc="AlignMamba-1 runs"):
    configs[plan] = run_config(plan)
    checkpoints[plan] = analysis.train_keeping_epochs(configs[plan])
per_epoch, epoch_rows, logs, tested = {}, [], {}, {}
for plan in PLANS:
    models = [analysis.initial_model(configs[plan])] + [load_model(path)[0] for path in checkpoints[plan]]
    per_epoch[plan] = [analysis.correspondences(model, test, truth, clips, methods=("proportional",)) for model in models]
    epoch_rows += [{"plan": PLANS[plan], "epoch": k, "modality": m, "accuracy": found.accuracy[m]["model"]}
                   for k, found in enumerate(per_epoch[plan]) for m in SOURCES]
    logs[plan] = pd.DataFrame([json.loads(line) for line in (Path(configs[plan].out) / "metrics.jsonl").open()])
    tested[plan] = json.loads((Path(configs[plan].out) / "test_metrics.json").read_text())
epoch_accuracy = pd.DataFrame(epoch_rows)
floor = {m: per_epoch["learned"][0].accuracy[m]["proportional"] for m in SOURCES}
reference_lines = score_references(data_path)
reference_mean = {name: {k: float(np.mean([r[k] for r in runs])) for k in ("MAE", "Corr")}
                  for name, runs in reference_lines.items()}

rows = [{"": name, "test MAE": v["MAE"], "test Corr": v["Corr"]} for name, v in reference_mean.items()]
for plan, label in PLANS.items():
    best = tested[plan]["epoch"]  # the checkpoint best on validation: its test metrics and its plans
    rows.append({"": f"AlignMamba-1, {label}", "test MAE": tested[plan]["MAE"], "test Corr": tested[plan]["Corr"],
                 **{f"{m} on its word": per_epoch[plan][best].accuracy[m]["model"] for m in SOURCES},
                 "best epoch": best, "optimiser steps": tested[plan]["optimizer_steps"],
                 "stopped by": tested[plan]["stopped_by"]})
results = pd.DataFrame(rows).set_index("")
print(results.round(3).to_string())

fig, axes = plt.subplots(1, 3, figsize=(17, 3.8))
for plan, label in PLANS.items():
    axes[0].plot(logs[plan].epoch, logs[plan].valid_MAE, "o-", label=label)
for name in ("text_only", "set_level", "bound"):
    axes[0].axhline(reference_mean[name]["MAE"], ls=":", color="gray")
    axes[0].annotate(name, (logs["learned"].epoch.max(), reference_mean[name]["MAE"]), fontsize=8, va="bottom", ha="right")
axes[0].set(xlabel="epoch", ylabel="validation MAE", title="learning curves (dotted: reference lines, test)")
axes[0].legend(fontsize=8)
for ax, m in zip(axes[1:], SOURCES):
    sns.lineplot(data=epoch_accuracy[epoch_accuracy.modality == m], x="epoch", y="accuracy", hue="plan", marker="o", ax=ax)
    ax.axhline(floor[m], color="k", ls="--", lw=1, label="proportional guess")
    ax.axhline(chance_level[m], color="k", ls=":", lw=1, label="chance")
    ax.set(ylim=(-0.02, 1.02), title=f"{m}: the model's own plan, frames on their word", ylabel="accuracy")
    ax.legend(fontsize=7)
plt.tight_layout()
plt.show()
if "train_align" in logs["learned"]:
    print("learned plan: its aligners' loss -log Z / n per epoch (training):",
          np.round(logs["learned"].train_align.to_numpy(), 3).tolist())

# %%
mae = {plan: tested[plan]["MAE"] for plan in PLANS}
best_accuracy = {plan: {m: per_epoch[plan][tested[plan]["epoch"]].accuracy[m]["model"] for m in SOURCES} for plan in PLANS}
learned_best = best_accuracy["learned"]
endings = ", ".join(f"{plan} {tested[plan]['stopped_by']}" for plan in PLANS)
display(Markdown(
    f"At this budget ({epochs} epochs at most, width {d_model}, {len(train_split)} training clips), the learned plan "
    f"finds {learned_best['audio']:.2f} of the audio and {learned_best['vision']:.2f} of the video frames' words "
    f"(relaxed: {best_accuracy['relaxed']['audio']:.2f} and {best_accuracy['relaxed']['vision']:.2f}; proportional guess "
    f"{floor['audio']:.2f} and {floor['vision']:.2f}). Test MAE: learned {mae['learned']:.3f}, oracle "
    f"{mae['oracle']:.3f}, relaxed {mae['relaxed']:.3f}, against set_level {reference_mean['set_level']['MAE']:.3f} "
    f"and bound {reference_mean['bound']['MAE']:.3f}: the learned plan's model is "
    f"{'below' if mae['learned'] < reference_mean['set_level']['MAE'] else 'not below'} set_level, the best a model "
    f"that cannot bind cues to words can do, and {mae['learned'] - mae['oracle']:+.3f} from the oracle's. One seed at "
    f"this size is noisy, and the runs ended by {endings} (`epochs`: at the epoch cap, perhaps still improving); "
    "section 7 has three seeds with early stopping on MOSI-length clips."))

# %% [markdown]
# ## 6 · Explore the plans over clips and epochs
#
# Pick a run, a test clip, an epoch (0: the initial model) and a modality. The heatmap is each
# frame's mass over the words (frames run left to right: a monotone plan climbs a staircase), magenta
# circles mark the true word, crosses the heaviest one (green: right, red: wrong); on the right, this
# clip's accuracy at every epoch beside all the scored clips'. `LearnedPlanExplorer` shows the plans
# computed above (one `analysis.correspondences` result per epoch).

# %%
explorer = LearnedPlanExplorer({PLANS[p]: per_epoch[p] for p in PLANS}, clip_ids=[test.ids[i] for i in clips],
                               run=PLANS["learned"])
explorer.epoch.value = len(per_epoch["learned"]) - 1
explorer

# %% [markdown]
# ## 7 · The full profile: MOSI-length clips, three seeds
#
# `python -m alignlib.experiments learned --profile full` trains AlignMamba-1 on the `mosi` preset
# (1284 / 229 / 686 clips of up to 50 words, 375 audio and 500 video frames) with the relaxed,
# learned, oracle and shuffled plans (three seeds each, a checkpoint per epoch, early stopping), the
# oracle plan again in a model twice as wide trained at lr 3e-3, the learned plan again on a second
# data seed, and the reference lines. Its committed JSON is read here;
# the table gives means and 95 % t-intervals over seeds (`stats.mean_ci`), the model's own plan scored
# on every test clip.

# %%
LEARNED = next(label for label, options in VARIANTS.items() if options["plan"] == "learned")
TARGETS = {"correspondence_accuracy_audio": (">=", 0.5), "correspondence_accuracy_vision": (">=", 0.7),
           "test_MAE": ("<=", 0.6), "test_Corr": (">=", 0.85)}
COLUMNS = {"correspondence_accuracy_audio": "audio on its word", "correspondence_accuracy_vision": "video on its word",
           "test_MAE": "test MAE", "test_Corr": "test Corr", "test_optimizer_steps": "optimiser steps"}
full_path = Path(results_path)
full = load(full_path) if full_path.exists() else None
full_table, full_summary, target_rows = None, None, []
if full is None:
    print(f"no committed full-profile results at {full_path}: run `python -m alignlib.experiments learned "
          "--profile full` and commit its JSON to show them here")
else:
    finished = [run_id for run_id in full["runs"] if run_id != "references"]
    presets = sorted({run["data"]["preset"] for run in full["grid"]})
    print(f"{full_path.name}: profile {full['profile']!r}, preset {', '.join(presets)}; {len(full['runs'])} of "
          f"{len(full['grid'])} runs finished; command: {full['command']}")
    tidy_full = tidy(full)
    trained = tidy_full[tidy_full.variant != "references"] if len(tidy_full) else tidy_full
    last = trained[trained.metric.isin(list(COLUMNS))] if len(trained) else trained
    if len(last):
        full_summary = stats.summary(last, ["variant"])
        digits = {"test_optimizer_steps": 0}  # the other metrics: 3 decimals
        cell = lambda r: (f"{r['mean']:.{digits.get(r['metric'], 3)}f}" + ("" if np.isnan(r["ci_low"]) else
                          f" [{r['ci_low']:.{digits.get(r['metric'], 3)}f}, {r['ci_high']:.{digits.get(r['metric'], 3)}f}]"))
        full_table = (full_summary.assign(value=full_summary.apply(cell, axis=1))
                      .pivot(index="variant", columns="metric", values="value")
                      .reindex(columns=[c for c in COLUMNS if c in set(full_summary.metric)])
                      .rename(columns=COLUMNS))
        full_table["seeds"] = full_summary.groupby("variant", sort=False)["n"].max()
        order_rows = [v for v in [*VARIANTS, TUNED_ORACLE, SECOND_DATA] if v in full_table.index]
        print(full_table.loc[order_rows].to_string())
    else:
        print("no training run has finished yet: the table waits for them")
    references_full = reference_summary(full) if "references" in full["runs"] else None
    if references_full is not None:
        shown = references_full[references_full.metric.isin(["MAE", "Corr"])]
        print("\nreference lines (3 scikit-learn seeds):")
        print(shown.pivot(index="reference", columns="metric", values="mean").reindex(list(REFERENCES)).round(3)
              .to_string())
    else:
        print("the reference lines have not finished yet")

# %%
if full is not None and full_summary is not None:
    curves = trained[trained.metric.isin(["audio_model", "vision_model"]) & trained.epoch.notna()]
    fig, axes = plt.subplots(1, 3, figsize=(17, 3.8))
    for ax, metric in zip(axes[:2], ("audio_model", "vision_model")):
        sns.lineplot(data=curves[curves.metric == metric], x="epoch", y="value", hue="variant", errorbar=("ci", 95), ax=ax)
        ax.set(ylim=(-0.02, 1.02), ylabel="frames on their true word",
               title=f"{full['profile']} profile: {metric.split('_')[0]}, the model's own plan")
        ax.legend(fontsize=7)
    mae_rows = full_summary[full_summary.metric == "test_MAE"]
    axes[2].errorbar(mae_rows["mean"], mae_rows.variant, xerr=[mae_rows["mean"] - mae_rows.ci_low.fillna(mae_rows["mean"]),
                                                                mae_rows.ci_high.fillna(mae_rows["mean"]) - mae_rows["mean"]],
                     fmt="o", capsize=4)
    if references_full is not None:
        for name in ("set_level", "bound"):
            value = stats.mean_of(references_full, "MAE", reference=name)
            axes[2].axvline(value, color="gray", ls=":")
            axes[2].annotate(name, (value, 0), fontsize=8, rotation=90, va="bottom")
    axes[2].set(xlabel="test MAE (95 % interval)", title=f"{full['profile']} profile: test MAE")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# **The targets.** On the mosi preset, never reading the tables in training: correspondence
# accuracy at least 0.5 (audio) and 0.7 (video), test MAE at most 0.6 and Corr at least 0.85, over
# three seeds, and kept on a second data seed. Each is checked on the mean, and on the whole 95 %
# interval.

# %%
def target_check(summary_table, variant):
    """One row per target: the variant's mean and interval, and whether the mean and the interval meet it."""
    checks = []
    for metric, (sign, goal) in TARGETS.items():
        row = summary_table[(summary_table.variant == variant) & (summary_table.metric == metric)]
        if row.empty:
            continue
        mean, low, high = row[["mean", "ci_low", "ci_high"]].iloc[0]
        better = (lambda v: v >= goal) if sign == ">=" else (lambda v: v <= goal)
        worst = low if sign == ">=" else high
        checks.append({"variant": variant, "target": f"{COLUMNS[metric]} {sign} {goal}", "mean": mean,
                       "interval": "" if np.isnan(low) else f"[{low:.3f}, {high:.3f}]", "seeds": int(row.n.iloc[0]),
                       "mean meets it": bool(better(mean)),
                       "interval meets it": None if np.isnan(worst) else bool(better(worst))})
    return checks


if full_summary is None:
    print("no full-profile results yet: the targets cannot be checked")
else:
    for variant in (LEARNED, SECOND_DATA):
        target_rows += target_check(full_summary, variant)
    if target_rows:
        targets = pd.DataFrame(target_rows)
        print(targets.round(3).to_string(index=False))
        for variant, group in targets.groupby("variant", sort=False):
            met = group["mean meets it"]
            missed = ", ".join(f"{t} (mean {v:.3f})" for t, v in zip(group.target[~met], group["mean"][~met]))
            inside = group["interval meets it"].dropna()
            seeds = int(group.seeds.max())
            display(Markdown(f"**{variant}** ({seeds} seed{'s' if seeds > 1 else ''}): the mean meets "
                             f"{met.sum()} of {len(group)} targets" + (f"; it misses {missed}" if missed else "")
                             + (f"; the whole 95 % interval meets {int(inside.sum())} of {len(inside)}." if len(inside)
                                else "; with one seed there is no interval.")))
    else:
        print("the learned runs have not finished yet: the targets cannot be checked")

# %% [markdown]
# **The architecture's ceiling.** Given the true tables (the `oracle` plan), how low does
# AlignMamba-1's test MAE go? The oracle runs at the sizes of the others (d_model 64, lr 1e-3), and
# again twice as wide at lr 3e-3: does the ceiling depend on the model's size and training, and not
# only on the plan? The suite's target for the ceiling is a test MAE of at most 0.40 over three seeds.

# %%
ORACLE_TARGET = 0.40
ORACLE = next(label for label, options in VARIANTS.items() if options["plan"] == "oracle")
oracle_rows = [] if full_summary is None else [
    (variant, full_summary[(full_summary.variant == variant) & (full_summary.metric == "test_MAE")])
    for variant in (ORACLE, TUNED_ORACLE)]
for variant, row in oracle_rows:
    if row.empty:
        print(f"{variant}: no finished run yet")
        continue
    mean, low, high, seeds = row[["mean", "ci_low", "ci_high", "n"]].iloc[0]
    interval = (f"[{low:.3f}, {high:.3f}] over {int(seeds)} seeds" if np.isfinite(high) else "(one seed: no interval)")
    print(f"{variant:<38} test MAE {mean:.3f} {interval}: the mean {'meets' if mean <= ORACLE_TARGET else 'misses'} "
          f"<= {ORACLE_TARGET}" + (f", the whole interval {'meets' if high <= ORACLE_TARGET else 'does not meet'} it"
                                   if np.isfinite(high) else ""))
if len(oracle_rows) == 2 and not any(row.empty for _, row in oracle_rows):
    (plain, tuned) = [row[["mean", "ci_low", "ci_high"]].iloc[0] for _, row in oracle_rows]
    if not np.isfinite([plain.ci_low, tuned.ci_low]).all():
        verdict = "with one seed there are no intervals to compare."
    elif tuned.ci_high < plain.ci_low or tuned.ci_low > plain.ci_high:
        verdict = ("the intervals do not overlap: the ceiling depends on the model's width and learning rate, not "
                   "only on the plan (the two change together here, so this does not say which of them matters).")
    else:
        verdict = "the intervals overlap: no difference shown."
    display(Markdown(f"The same true plan gives test MAE {plain['mean']:.3f} at the common sizes and {tuned['mean']:.3f} "
                     f"twice as wide at lr 3e-3: {verdict}"))

# %% [markdown]
# ## 8 · What fails, and why
#
# **Clips with fewer frames than words.** A monotone path gives every word at least one frame, so a
# clip with $n < W$ has no path at all. The library refuses it with a clear error rather than return a
# plan of nothing (AlignMamba-1's learned plan would fail on such a clip in training). None of the
# synthetic clips is that short; in real data a clip whose video track dropped out could be.

# %%
short = {m: int(sum((s.masks[m].sum(1) < s.masks["text"].sum(1)).sum() for s in data.splits.values())) for m in SOURCES}
print("clips with fewer frames than words:", short)
words_0 = int(test_batch.masks["text"][0].sum())
try:
    monotone.posterior(torch.zeros(1, words_0 - 1, words_0))
except ValueError as error:
    print(f"{words_0 - 1} frames, {words_0} words -> ValueError: {error}")

# %% [markdown]
# **A missing modality.** When a clip's audio is missing its features are zeros
# (`MMSADataset(split, present)`, notebook 05), the aligner's loss on it is switched off, and every
# frame looks the same to it: the emissions are flat, so the posterior is the uniform average over all
# monotone paths, a soft diagonal band. The plan falls back to the time prior alone; we score the
# trained learned model's audio plan with the audio removed from every test clip.

# %%
learned_model = load_model(checkpoints["learned"][-1])[0]
present = np.ones((len(test), len(MODALITIES)), dtype=bool)
present[:, MODALITIES.index("audio")] = False
dropped = collate([MMSADataset(test, present)[int(i)] for i in clips])
dropped_plan = analysis.own_plans(learned_model, dropped)["audio"]
missing_accuracy = analysis.frame_accuracy(dropped_plan.argmax(2), torch.as_tensor(truth["audio"][clips]),
                                           dropped.masks["audio"])
print(f"audio missing: the learned plan puts {missing_accuracy:.3f} of the frames on their word "
      f"(proportional guess {floor['audio']:.3f}, with the audio present {per_epoch['learned'][-1].accuracy['audio']['model']:.3f})")

# %%
display(Markdown(
    f"**Frames a word.** Here a word has {per_word['audio']:.1f} audio and {per_word['vision']:.1f} video frames on "
    f"average, so position alone already says a lot: the proportional guess finds {floor['audio']:.2f} and "
    f"{floor['vision']:.2f}, leaving less for a learned plan to add on these clips, and section 4's hub earns at most "
    f"{gains[typical, 'frames'].max():.2f} nats a frame under frame normalisation (at MOSI's 375 frames and 50 words: "
    f"{gains[(375, 50), 'frames'].max():.2f}). The longer the words, the weaker the position prior and the stronger the "
    "pull towards a hub: the full profile is the harder test."))

# %% [markdown]
# **A shuffled plan: right segments, wrong words.** The `shuffled` control (`ot.plan(...,
# method="shuffled", truth=...)`) keeps the true segmentation of the frames but rotates which word
# each segment goes to. Its accuracy is zero, yet every boundary between words sits where it should:
# a plan can be perfectly time-structured and still bind each cue to the wrong word, which is what
# the shuffled model of section 7 pays for in MAE.

# %%
batch = analysis.clip_batch(test, clips, alignment=True)
rank = batch.masks["text"].long().cumsum(1) - 1
segment_rows = {}
for method in ("oracle", "shuffled"):
    packed = torch.where(batch.alignment["audio"] >= 0, rank.gather(1, batch.alignment["audio"].clamp_min(0)), -1)
    no_features = [torch.zeros(*batch.masks[m].shape, 1) for m in ("audio", "text")]  # these controls read none
    plan = ot.plan(*no_features, batch.masks["audio"], batch.masks["text"], method=method, truth=packed)
    guess, table, mask = plan.argmax(2), torch.as_tensor(truth["audio"][clips]), batch.masks["audio"]
    both = mask[:, 1:] & mask[:, :-1]
    same_boundaries = ((guess[:, 1:] != guess[:, :-1]) == (table[:, 1:] != table[:, :-1]))[both].double().mean().item()
    segment_rows[method] = {"frames on their word": analysis.frame_accuracy(guess, table, mask),
                            "word boundaries in place": same_boundaries}
print(pd.DataFrame(segment_rows).T.round(3).to_string())
if full_summary is not None and {"oracle plan", "shuffled plan"} <= set(full_summary.variant):
    print("full profile, test MAE: oracle {:.3f}, shuffled {:.3f}".format(
        stats.mean_of(full_summary, "test_MAE", variant="oracle plan"),
        stats.mean_of(full_summary, "test_MAE", variant="shuffled plan")))
print(f"notebook ran in {time.perf_counter() - started:.0f} s")

# %% [markdown]
# ## Recorded metrics
#
# The regression suite compares these with `tests/baselines/10_learned_alignment.json`.

# %%
record_metrics(
    metrics_path,
    chance_audio=chance_level["audio"],
    proportional_audio=floor["audio"],
    proportional_vision=floor["vision"],
    am1_relaxed_audio_exact_init=found_ends["initial"].accuracy["audio"]["exact"],
    am1_relaxed_vision_exact_end=found_ends["trained"].accuracy["vision"]["exact"],
    am1_relaxed_audio_own_end=found_ends["trained"].accuracy["audio"]["model"],
    small_log_z=log_z_library,
    supervised_audio_exact=supervised["audio"]["exact"],
    supervised_audio_monotone=supervised["audio"]["monotone"],
    supervised_vision_exact=supervised["vision"]["exact"],
    supervised_vision_monotone=supervised["vision"]["monotone"],
    hub_gain_frames_typical=float(gains[typical, "frames"].max()),
    aligner_words_audio=learned_word["audio"],
    aligner_words_vision=learned_word["vision"],
    aligner_frames_audio=learned_frame["audio"],
    aligner_frames_vision=learned_frame["vision"],
    aligner_frames_hub_share_audio=float(aligner_final.loc[("audio", "frame-normalised"), "hub share"]),
    learned_audio_end=learned_best["audio"],
    learned_vision_end=learned_best["vision"],
    relaxed_audio_end=best_accuracy["relaxed"]["audio"],
    test_mae_learned=mae["learned"],
    test_mae_oracle=mae["oracle"],
    test_mae_relaxed=mae["relaxed"],
    reference_mae_set_level=reference_mean["set_level"]["MAE"],
    reference_mae_bound=reference_mean["bound"]["MAE"],
    missing_audio_accuracy=missing_accuracy,
    shuffled_boundaries=segment_rows["shuffled"]["word boundaries in place"],
)

# %% [markdown]
# ## Exercises
#
# Four exercises on this notebook's ideas. Write each answer where its cell says `# your code` (or
# `# your prediction`) and run the cell: the check under it runs your answer on cases of its own,
# compares the result with an independent reference and, if they differ, names what differs, never
# the expected values. With the parameter `solutions=True` (the regression run sets it) every check
# runs the reference solution from `alignlib/notebooks/solutions.py` instead and folds it under its
# verdict.

# %%
from dataclasses import replace  # noqa: E402

from alignlib.notebooks.exercises import Exercises  # noqa: E402

exercise = Exercises(solutions)

# %% [markdown]
# ### 1 · The forward recursion by hand (§2)
#
# For one clip of $T$ frames and $W$ words with scores $e_{ij}$, write
# $\log Z = \log \sum_{\text{paths}} \exp \sum_i e_{i,\,\text{path}_i}$ by the forward recursion
# $\alpha_{i j} = e_{i j} + \log\left(e^{\alpha_{i-1, j}} + e^{\alpha_{i-1, j-1}}\right)$: every path starts
# on the first word at the first frame and ends on the last word at the last frame.
#
# *The check*: your $\log Z$ against `monotone.log_partition` and the sum over every path, in four clips.

# %%
def log_partition_loop(scores):
    """scores (T, W) of one clip -> log Z, a number."""
    ...  # your code


exercise.check("log_partition_loop", log_partition_loop)

# %% [markdown]
# ### 2 · The best path, by Viterbi (§2)
#
# Replace the log-sum of exercise 1 by a max, remember at each frame and word whether the best way in
# came from the previous word, and trace back from the last word at the last frame.
#
# *The check*: your path against `monotone.best_path` and the best of every path, in four clips.

# %%
def best_path_loop(scores):
    """scores (T, W) of one clip -> (T,) the word of each frame on the highest-scoring monotone path."""
    ...  # your code


exercise.check("best_path_loop", best_path_loop)

# %% [markdown]
# ### 3 · The emissions that do not collapse (§4)
#
# Section 4 normalised the similarities over each word's frames, $\log p(\text{frame} \mid \text{word})$,
# rather than over each frame's words. Write it for a padded batch: padded frames and words take no
# part in any softmax (what a padded entry holds is up to you: it is not compared).
#
# *The check*: your scores against `monotone.emission_scores(..., normalise="words")` on every real entry.

# %%
def word_normalised_scores(similarity, frame_mask, word_mask):
    """similarity (B, T, W), frame_mask (B, T), word_mask (B, W) -> log p(frame | word) (B, T, W)."""
    ...  # your code


exercise.check("word_normalised_scores", word_normalised_scores)

# %% [markdown]
# ### 4 · A prediction about the trained learned plan, then the cell that tests it (§5)
#
# Reverse every test clip's frames in time (the masks and the true tables with them; the words stay
# in order) and give them to the trained AlignMamba-1 with the learned plan. Its aligners were trained
# on clips that run forward. Predict: does its plan still put more than half of the audio frames on
# their true word?

# %%
learned_plan_survives_reversal = None  # your prediction: True or False

# %% [markdown]
# The test: the learned plan of the last checkpoint on the scored test clips, reversed.

# %%
flip = {m: (lambda x: x[:, ::-1].copy()) if m != "text" else (lambda x: x) for m in MODALITIES}
reversed_test = replace(test, features={m: flip[m](x) for m, x in test.features.items()},
                        masks={m: flip[m](x) for m, x in test.masks.items()})
reversed_found = analysis.correspondences(learned_model, reversed_test, {m: t[:, ::-1].copy() for m, t in truth.items()},
                                          clips, methods=())
forward_found = analysis.correspondences(learned_model, test, truth, clips, methods=())
print(f"the learned plan's audio frames on their word: in order {forward_found.accuracy['audio']['model']:.3f}, "
      f"reversed {reversed_found.accuracy['audio']['model']:.3f}")
exercise.check("learned_plan_survives_reversal", learned_plan_survives_reversal,
               reversed_accuracy=reversed_found.accuracy["audio"]["model"],
               accuracy=forward_found.accuracy["audio"]["model"])
