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
# # 05 · The data: MMSA files, a benchmark where alignment matters, missing modalities, metrics
#
# Models are only as meaningful as the data and metrics that judge them. The real CMU-MOSI and
# CMU-MOSEI features come as MMSA pickles; `alignlib.data` reads that format exactly. Since the real
# files cannot be shipped, the project has its own synthetic benchmark in the same format, with the
# frame-to-word correspondence known.
#
# **What you will learn**
# 1. what a sample looks like in each modality, and why the sequences have different lengths;
# 2. the ground-truth correspondence between frames and words, and how well the OT plans of
#    notebook 01 recover it;
# 3. how differently the modalities are distributed before any alignment;
# 4. what missing modalities look like (AlignMamba's Table 1 protocol);
# 5. what each MSA metric rewards;
# 6. an explorer: pick a clip and a modality, and compare its plan with the true correspondence;
# 7. real data: how CMU-MultimodalSDK's word timings become the same frame-to-word tables.

# %% tags=["parameters"]
data_path: str = "../data_samples/synthetic_tiny.pkl"  # an MMSA pickle; empty: generate synth_preset
synth_preset: str = "tiny"  # preset generated when data_path is empty (tiny, mosi, mosei)
ridge: float = 1.0  # ridge penalty of the frame-to-word projections fitted in section 2
blur: float = 0.05  # blur of the entropic plans
missing_rate: float = 0.3  # missing rate shown in section 4
seed: int = 0  # seeds every random draw
solutions: bool = False  # True: the Exercises section checks the reference solutions (the regression run sets it)
csd_folder: str = "../data_samples/csd_synthetic"  # SDK-layout .csd files converted in section 7 (the shipped ones are synthetic)
metrics_path: str = ""  # where the runner records this notebook's key numbers

# %%
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

from alignlib import analysis
from alignlib.align import ot
from alignlib.data import MODALITIES, NO_WORD, load_mmsa, missing_modality_mask, synthetic
from alignlib.metrics import msa_metrics
from alignlib.notebooks import record_metrics

sns.set_theme(context="notebook", style="whitegrid")
if not data_path:
    data_path = str(Path(tempfile.mkdtemp()) / f"synthetic_{synth_preset}.pkl")
    synthetic.write(data_path, *synthetic.generate(synth_preset, seed))
data = load_mmsa(data_path)
correspondence = synthetic.load_correspondence(data_path)
print(f"{data.path.name}: " + ", ".join(f"{name} {len(split)} clips" for name, split in data.splits.items()))
print("feature widths:", data.dims, " padded lengths:", data.lengths)
print("-inf values replaced by 0:", data.replaced_neg_inf)

# %% [markdown]
# ## 1 · One clip, three modalities
#
# An MMSA file stores, per split, `text (N, T_l, d_l)`, `audio (N, T_a, d_a)`, `vision (N, T_v, d_v)`,
# `regression_labels (N,)` in $[-3, 3]$ and `id`; the unaligned files add `audio_lengths` and
# `vision_lengths`. The lengths differ because the streams are sampled differently: one token per
# word for language, but a fixed frame rate for audio (COVAREP) and video (FACET), so a sentence of
# 12 words spans dozens of frames, and the frames per word vary with the speaking rate.
# `load_mmsa` turns the lengths into padding masks; everything after them is zero padding.

# %%
train = data.splits["train"]
clip = 0
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
for ax, modality in zip(axes, MODALITIES):
    values = train.features[modality][clip]
    real = int(train.masks[modality][clip].sum())
    sns.heatmap(values.T, cmap="vlag", center=0, ax=ax, cbar=False, xticklabels=False, yticklabels=False)
    ax.axvline(real, color="k", lw=2)
    ax.set(title=f"{modality}: {real} real of {values.shape[0]} steps, d = {values.shape[1]}", xlabel="time step",
           ylabel="feature")
fig.suptitle(f"clip {train.ids[clip]}, label {train.labels[clip]:+.2f} (black line: end of the real steps)")
plt.tight_layout()
plt.show()

# %% [markdown]
# In this benchmark each word carries a polarity (language only), an emphasis (audio only, on that
# word's frames) and possibly a "flip" cue (video only, on that word's frames). The label adds up
# the words' polarities, doubled when emphasised and negated when flipped, plus a clip-wide mood
# seen in the video. So the label needs all three modalities, language most, and part of it needs
# the cues *at corresponding time steps*: a model that cannot tell which frames belong to which word
# cannot apply the right flip to the right word.

# %% [markdown]
# ## 2 · The correspondence, and OT recovering it
#
# The generator saved, for every frame, the index of its word. Below, for one test clip: lines join
# each audio frame to its word.

# %%
test = data.splits["test"]
truth_audio = correspondence["test_audio"]
n_words = int(test.masks["text"][clip].sum())
n_frames = int(test.masks["audio"][clip].sum())
fig, ax = plt.subplots(figsize=(12, 2.4))
for frame in range(n_frames):
    ax.plot([frame / (n_frames - 1), truth_audio[clip, frame] / max(n_words - 1, 1)], [1, 0], color="gray", lw=0.8)
ax.scatter(np.arange(n_frames) / (n_frames - 1), np.ones(n_frames), s=10, color="C1", zorder=3, label="audio frames")
ax.scatter(np.arange(n_words) / max(n_words - 1, 1), np.zeros(n_words), s=30, color="C0", zorder=3, label="words")
ax.set(yticks=[0, 1], yticklabels=["language", "audio"], xticks=[], title="ground-truth frame-to-word correspondence")
ax.legend(loc="center right")
plt.show()

# %% [markdown]
# OT needs tokens in one space, and here the modalities have different widths. A model learns
# projections into a shared space; to see what OT can do once they exist, we fit them here by ridge
# regression from each frame to its word's text token on the **training** split, then compute plans
# between projected frames and words on the **test** split, and score how many frames land on their
# word. The baseline `proportional` (a method of the same dispatcher, `ot.plan`) maps frame $i$ of
# $n$ to word $\lfloor i\, W / n \rfloor$: right only when the speaking rate is constant.
#
# The ridge fit is `analysis.fit_supervised_projection`: with a frame $x$ and its true word's text
# token $l$ over all training frames, $W = (X^\top X + \lambda I)^{-1} X^\top L$ (with a bias
# column), the control that is *given* the tables (notebooks 07 and 10 compare learned plans with it).

# %%
recovery = {}
for modality in ("audio", "vision"):
    project = analysis.fit_supervised_projection(train, modality, ridge)
    source = torch.from_numpy(project(test.features[modality]).astype(np.float64))
    target = torch.from_numpy(test.features["text"].astype(np.float64))
    masks = (torch.from_numpy(test.masks[modality]), torch.from_numpy(test.masks["text"]))
    truth = torch.from_numpy(correspondence[f"test_{modality}"].astype(np.int64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # at blur 0.05 the entropic polish may stop at its iteration cap
        plans = {method: ot.plan(source, target, *masks, method=method, blur=blur)
                 for method in ("relaxed", "entropic", "exact", "proportional")}
    recovery[modality] = {name: ot.correspondence_accuracy(plan, truth, masks[0]) for name, plan in plans.items()}
    if modality == "audio":
        example_plan = plans["exact"][clip]
for modality, scores in recovery.items():
    print(f"{modality:>6}: " + ", ".join(f"{name} {value:.3f}" for name, value in scores.items()))

fig, ax = plt.subplots(figsize=(6, 4.5))
sns.heatmap(example_plan[:n_frames, :n_words].numpy(), cmap="rocket_r", ax=ax, cbar=False)
ax.scatter(truth_audio[clip, :n_frames] + 0.5, np.arange(n_frames) + 0.5, s=12, facecolors="none", edgecolors="cyan")
ax.set(title="exact OT plan, audio frames -> words (o = truth)", xlabel="word", ylabel="audio frame")
plt.show()

# %% [markdown]
# Read the two rows separately, because they disagree. For **video**, every plan beats the
# proportional guess, the relaxed one included (exact and entropic about 0.73-0.75, relaxed 0.56,
# proportional 0.41): with video features projected into the text space, OT follows the speaking
# rate. For **audio**, the proportional guess (0.46) beats every plan (exact 0.41, entropic 0.42,
# relaxed 0.27): its 5 features keep only a 4-dimensional view of each word's content, so
# neighbouring words look alike and a fixed projection cannot tell them apart, while frame
# positions alone already say a lot on short clips. In both rows the relaxed plan, free to pile
# frames onto one "hub" word, does worst among the plans. This is the gap learned encoders and
# the alignment losses have to close.

# %% [markdown]
# ### Harder clips: pauses and skipped words
#
# Every frame above belongs to a word, and every word gets frames: the very model that notebook 10's
# learned plan assumes. Real speech has pauses (frames of no word) and words too short for a frame.
# The generator's difficulty knobs add them (`synthetic.generate(..., pause=, skip=, faint=,
# nonlinear=)`, `python -m alignlib.data synth --pause 0.3 ...`; at 0 the data is exactly the
# above): `pause` is the share of a clip's frames that belong to no word (table entry `NO_WORD`,
# $-2$, distinct from padding's $-1$), `skip` the share of its words that get no frame in a modality.
# The same drawing, on a clip made with `pause=0.3, skip=0.25`:

# %%
knobs = {"pause": 0.3, "skip": 0.25}
_, hard = synthetic.generate("tiny", 1, 60, **knobs)
table, words_of = hard["test_audio"][0], hard["test_polarity"][0]
frames, n_hard_words = table[table != -1], int((~np.isnan(words_of)).sum())
pause = frames == NO_WORD
skipped = sorted(set(range(n_hard_words)) - set(frames[~pause].tolist()))
fig, ax = plt.subplots(figsize=(12, 2.4))
x = np.arange(len(frames)) / (len(frames) - 1)
for frame in np.flatnonzero(~pause):
    ax.plot([x[frame], frames[frame] / max(n_hard_words - 1, 1)], [1, 0], color="gray", lw=0.8)
ax.scatter(x[~pause], np.ones((~pause).sum()), s=10, color="C1", zorder=3, label="audio frames")
ax.scatter(x[pause], np.ones(pause.sum()), s=14, marker="x", color="k", zorder=3, label="pause (no word)")
word_x = np.arange(n_hard_words) / max(n_hard_words - 1, 1)
ax.scatter(word_x, np.zeros(n_hard_words), s=30, color="C0", zorder=3, label="words")
ax.scatter(word_x[skipped], np.zeros(len(skipped)), s=90, facecolors="none", edgecolors="r", zorder=4, label="no frame (skipped)")
ax.set(yticks=[0, 1], yticklabels=["language", "audio"], xticks=[], title=f"one clip with {knobs}")
ax.legend(loc="center right", fontsize=8)
plt.show()
tables = np.concatenate([hard[f"{split}_audio"].ravel() for split in ("train", "valid", "test")])
print(f"pause frames: {pause.mean():.2f} of this clip's, {(tables == NO_WORD).sum() / (tables != -1).sum():.3f} "
      f"of all audio frames (asked {knobs['pause']}); words without an audio frame here: {skipped}")

# %% [markdown]
# ## 3 · The modalities before alignment
#
# Each modality has its own width, scale, offset and rotation: audio values are an order of
# magnitude larger, video smaller. This is the heterogeneity the MMD loss (notebook 02) and the
# modality-specific experts (notebook 04) are there to absorb.

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
for modality in MODALITIES:
    values = train.features[modality][train.masks[modality]]
    sns.kdeplot(values.ravel()[:20_000], ax=axes[0], label=f"{modality} (d = {values.shape[1]})", fill=True, alpha=0.3)
    axes[1].hist(np.linalg.norm(values, axis=1), bins=40, alpha=0.5, label=modality, density=True)
axes[0].set(title="feature values per modality", xlabel="value")
axes[1].set(title="token norms per modality", xlabel="|x|", xscale="log")
axes[0].legend()
axes[1].legend()
plt.tight_layout()
plt.show()
norm_ratio = (np.linalg.norm(train.features["audio"][train.masks["audio"]], axis=1).mean()
              / np.linalg.norm(train.features["vision"][train.masks["vision"]], axis=1).mean())

# %% [markdown]
# ## 4 · Missing modalities
#
# AlignMamba's robustness protocol (its Table 1, "incomplete multimodal fusion"): the modalities
# go missing **at inference**, on the test clips the model is scored on; a rate of 10% to 70% is
# the share dropped then. At a missing rate $r$, each modality of each test sample is dropped with
# probability $r$, but at least one is kept. `missing_modality_mask` draws the mask (seeded);
# `MMSADataset(split, present)` zeroes the missing features and passes the mask to the model as
# `batch.present`. Because at least one modality is kept, the share actually dropped is a little
# below $r$ (right panel).

# %%
present = missing_modality_mask(len(test), missing_rate, seed=seed)
missing_share = float((~present).mean())
print(f"r = {missing_rate}: {missing_share:.0%} of the modality slots of the {len(test)} test clips are dropped")
rates = [0.1, 0.3, 0.5, 0.7]
dropped = [(~missing_modality_mask(10_000, r, seed=seed)).mean() for r in rates]
fig, axes = plt.subplots(1, 2, figsize=(13, 3.2), gridspec_kw={"width_ratios": [3, 1]})
sns.heatmap(present[:40].T, cmap=["#dddddd", "#2a7"], cbar=False, ax=axes[0], yticklabels=list(MODALITIES))
axes[0].set(title=f"present modalities of 40 test clips at r = {missing_rate}", xlabel="clip")
axes[1].plot(rates, dropped, "o-", label="share dropped")
axes[1].plot(rates, rates, "k--", lw=0.8, label="r")
axes[1].set(xlabel="missing rate r", title="at least one kept")
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5 · What the metrics reward
#
# MMSA's regression metrics: *Has0* Acc-2/F1 split negative vs non-negative over all clips; *Non0*
# drops clips labelled exactly 0 and splits negative vs positive; Acc-7 and Acc-5 clip to $[-3, 3]$ /
# $[-2, 2]$ and round (half to even) to classes; MAE and Pearson correlation judge the raw score.
# Four made-up predictors on the test labels show what each metric sees:

# %%
labels = test.labels
rng = np.random.default_rng(seed)
predictors = {
    "always +1": np.ones_like(labels),
    "right sign, size 1": np.sign(labels) + (labels == 0),
    "truth x 0.5": labels * 0.5,
    "truth + noise (sd 1)": labels + rng.standard_normal(len(labels)),
}
table = {name: msa_metrics(prediction, labels) for name, prediction in predictors.items()}
metric_names = list(next(iter(table.values())))
values = np.array([[table[p][m] for m in metric_names] for p in predictors])
fig, ax = plt.subplots(figsize=(12, 2.8))
sns.heatmap(values, annot=True, fmt=".2f", cmap="crest", xticklabels=metric_names, yticklabels=list(predictors), ax=ax,
            cbar=False)
ax.set(title="MSA metrics of four predictors (NaN: undefined, e.g. Corr of a constant)")
plt.show()

# %% [markdown]
# "Always +1" scores the share of non-negative labels on Has0 Acc-2 and nothing on Corr;
# "right sign" is perfect on Acc-2 yet poor on Acc-7 and MAE; halving the truth keeps Corr = 1 and
# the signs but loses the classes; noise hurts everything a little. A model is judged on all of them.

# %% [markdown]
# ## 6 · Explore the plans clip by clip
#
# The explorer below uses the same projections (section 2) and test clips. Pick a clip and a
# modality pair; the heatmap is the plan over the clip's real frames and words, magenta circles
# mark each frame's true word, and the right panel joins each frame to the word that receives most
# of its mass (green: its true word, red: another one).

# %%
from alignlib.widgets.plans import DataClipSource, TransportPlanExplorer  # noqa: E402

clip_source = DataClipSource(test, {m: correspondence[f"test_{m}"] for m in ("audio", "vision")},
                             {m: analysis.fit_supervised_projection(train, m, ridge) for m in ("audio", "vision")})
clip_explorer = TransportPlanExplorer(method="exact", blur=0.1, source=clip_source)
clip_explorer

# %% [markdown]
# ## 7 · Real data: word timings from CMU-MultimodalSDK
#
# Real MOSI and MOSEI come with the timings the tables need. CMU-MultimodalSDK distributes them as
# *computational sequences* (`.csd`, HDF5): one file per stream, holding for every video
# `features (T, d)` and `intervals (T, 2)`, the start and end in seconds of every row. The words
# sequence holds one word per row from forced alignment (P2FA), with `sp` rows for silences; the
# word-vector sequence their GloVe vectors; COVAREP (acoustic) and FACET or OpenFace (visual) one row
# per frame; the labels one row per opinion segment. `python -m alignlib.data csd` (the library's
# `alignlib.data.from_sdk.build`) turns them into the MMSA pickle and tables that every section above
# reads:
#
# * a segment `<video>[<k>]` is the $k$-th labelled interval $[s, e)$; its words are the words whose
#   midpoint lies in it, its frames the acoustic and visual rows whose midpoint lies in it;
# * a frame's word is the segment word whose interval holds the frame's midpoint; a frame in a pause
#   gets `NO_WORD` ($-2$), padding stays `PADDING` ($-1$), and both are left out when a plan is scored.
#
# No real data ships with the project. The folder `data_samples/csd_synthetic` is a **synthetic**
# stand-in in the SDK's layout (made by `python -m alignlib.data.csd_sample`): made-up words and
# pauses, and frames that show the spoken word's vector through a fixed noisy map. Converting it:

# %%
from alignlib.data import csd_sample, from_sdk  # noqa: E402

sample_folder = Path(csd_folder)
built = from_sdk.build({name: sample_folder / file for name, file in csd_sample.FILES.items()},
                       from_sdk.read_folds(sample_folder / "folds.json"))
converted_path = Path(tempfile.mkdtemp()) / "csd_sample.pkl"
synthetic.write(converted_path, built.data, built.correspondence)
converted = load_mmsa(converted_path)
converted_tables = synthetic.load_correspondence(converted_path)
print("segments per split:", built.counts, "| left out:", built.skipped or "none")
print("feature widths:", converted.dims, " padded lengths:", converted.lengths)
real_frames = {m: converted_tables[f"train_{m}"] >= NO_WORD for m in ("audio", "vision")}
pause_share = {m: float((converted_tables[f"train_{m}"] == NO_WORD).sum() / real_frames[m].sum()) for m in real_frames}
print("share of frames in a pause:", {m: round(v, 3) for m, v in pause_share.items()})

# %% [markdown]
# One clip against time: each word is a coloured span, its frames dots of the same colour (audio
# above, video below); grey crosses are frames in a pause, which belong to no word.

# %%
shown = 0
clip_words = converted.splits["train"].raw["raw_text"][shown].split()
spans = converted_tables["train_word_intervals"][shown, : len(clip_words)]
colours = sns.color_palette("husl", len(clip_words))
fig, ax = plt.subplots(figsize=(13, 2.8))
for j, (word, (start, end)) in enumerate(zip(clip_words, spans)):
    ax.axvspan(start, end, color=colours[j], alpha=0.25)
    ax.text((start + end) / 2, 1.45, word, ha="center", fontsize=9)
for row, m in ((1.0, "audio"), (0.0, "vision")):
    frame_words = converted_tables[f"train_{m}"][shown]
    times = converted_tables[f"train_{m}_times"][shown]
    for j in range(len(clip_words)):
        ax.scatter(times[frame_words == j], np.full((frame_words == j).sum(), row), color=colours[j], s=14)
    ax.scatter(times[frame_words == NO_WORD], np.full((frame_words == NO_WORD).sum(), row), color="gray", marker="x", s=14)
ax.set(yticks=[0, 1], yticklabels=["video frames", "audio frames"], ylim=(-0.5, 1.8), xlabel="time in the video (s)",
       title=f"segment {converted.splits['train'].ids[shown]}: words (spans) and the frames they hold")
plt.show()

# %% [markdown]
# The converted file goes through the same analysis as section 2: projections fitted on the training
# segments with the tables, plans on the test segments, scored by `ot.correspondence_accuracy`, which
# leaves out the pause frames as it leaves out padding.

# %%
converted_recovery = {}
for modality in ("audio", "vision"):
    project = analysis.fit_supervised_projection(converted.splits["train"], modality, ridge)
    held_out = converted.splits["test"]
    source = torch.from_numpy(project(held_out.features[modality]).astype(np.float64))
    target = torch.from_numpy(held_out.features["text"].astype(np.float64))
    masks = (torch.from_numpy(held_out.masks[modality]), torch.from_numpy(held_out.masks["text"]))
    truth = torch.from_numpy(held_out.alignment[modality])
    converted_recovery[modality] = {method: ot.correspondence_accuracy(ot.plan(source, target, *masks, method=method), truth, masks[0])
                                    for method in ("exact", "proportional")}
    print(f"{modality:>6}: " + ", ".join(f"{name} {value:.3f}" for name, value in converted_recovery[modality].items()))

# %% [markdown]
# The file is read and scored like any other. On this small sample the proportional guess beats the
# exact plan: its segments hold three to six words of similar length, so a frame's position alone
# says much, while the exact plan gives every word an equal share of the frames (pause frames
# included, which look like no word) through projections fitted on five segments only. Real
# speech, with its uneven speaking rate and longer pauses, is where the two part ways; this is the
# question notebooks 07 and 10 ask of trained models.
#
# On real MOSI or MOSEI, once downloaded from CMU-MultimodalSDK (the folds file is the SDK's
# `mmsdk/mmdatasdk/dataset/standard_datasets/CMU_MOSI/cmu_mosi_std_folds.py`, read as data, never
# run; or a JSON file `{"train": [...], "valid": [...], "test": [...]}` of video or segment ids;
# segments in no fold go to `--unassigned`, by default train, and the command says how many):
#
# ```bash
# python -m alignlib.data csd --words CMU_MOSI_TimestampedWords.csd --text CMU_MOSI_TimestampedWordVectors.csd \
#     --audio CMU_MOSI_COVAREP.csd --vision CMU_MOSI_Visual_Facet_41.csd --labels CMU_MOSI_Opinion_Labels.csd \
#     --folds cmu_mosi_std_folds.py --out build/mosi_sdk.pkl
# python -m alignlib.data csd --words CMU_MOSEI_TimestampedWords.csd --text CMU_MOSEI_TimestampedWordVectors.csd \
#     --audio CMU_MOSEI_COVAREP.csd --vision CMU_MOSEI_VisualFacet42.csd --labels CMU_MOSEI_Labels.csd \
#     --folds cmu_mosei_std_folds.py --out build/mosei_sdk.pkl
# ```
#
# Then run this notebook with `data_path="build/mosi_sdk.pkl"`, or point notebooks 07 and 10 at it:
# their plans are scored against P2FA's words. The videos are read one at a time, so a MOSEI
# acoustic file of several GB never sits in memory whole; the padded output is as long as the
# longest segment, unless `--max-words`, `--max-audio` or `--max-vision N` keep only the first N
# rows of longer ones (the command says how many it cut; a kept frame of a cut word counts as in no word).

# %% [markdown]
# ## Recorded metrics
#
# The regression suite compares these with `tests/baselines/05_data.json`.

# %%
record_metrics(
    metrics_path,
    n_train=len(train),
    n_test=len(test),
    label_mean=float(data.splits["train"].labels.mean()),
    label_std=float(data.splits["train"].labels.std()),
    recovery_audio_exact=recovery["audio"]["exact"],
    recovery_audio_entropic=recovery["audio"]["entropic"],
    recovery_audio_relaxed=recovery["audio"]["relaxed"],
    recovery_audio_proportional=recovery["audio"]["proportional"],
    recovery_vision_exact=recovery["vision"]["exact"],
    recovery_vision_entropic=recovery["vision"]["entropic"],
    recovery_vision_relaxed=recovery["vision"]["relaxed"],
    recovery_vision_proportional=recovery["vision"]["proportional"],
    audio_to_vision_norm_ratio=norm_ratio,
    missing_share=missing_share,
    noisy_predictor_acc2=table["truth + noise (sd 1)"]["Has0_acc_2"],
    converted_segments=sum(built.counts.values()),
    converted_pause_share_audio=pause_share["audio"],
    converted_recovery_audio_exact=converted_recovery["audio"]["exact"],
    converted_recovery_audio_proportional=converted_recovery["audio"]["proportional"],
    converted_recovery_vision_exact=converted_recovery["vision"]["exact"],
)

# %% [markdown]
# ## Exercises
#
# Three exercises on this notebook's ideas. Write each answer where its cell says `# your code` and
# run the cell: the check under it runs your answer on cases of its own, compares the result with
# an independent reference and, if they differ, names what differs (a shape, a mask, an axis, a
# factor), never the expected values. With the parameter `solutions=True` (the regression run sets
# it) every check runs the reference solution from `alignlib/notebooks/solutions.py` instead and
# folds it under its verdict.

# %%
from alignlib.notebooks.exercises import Exercises  # noqa: E402

exercise = Exercises(solutions)

# %% [markdown]
# ### 1 · The proportional-time guess (§2)
#
# Without reading a feature, guess each frame's word from its position: frame $t$ of $n$ goes to
# word $\lfloor t W / n \rfloor$ of $W$, the frames cut into $W$ equal runs, one per word. This is the floor
# every plan of section 2 has to beat.
#
# *The check*: your guess against the heaviest entry of `ot.proportional_plan` for each frame, in
# four cases (more frames than words, as many, fewer).

# %%
def proportional_guess(n_frames, n_words):
    """n frames, W words -> the word index of each frame (n_frames,)."""
    ...  # your code


exercise.check("proportional_guess", proportional_guess)

# %% [markdown]
# ### 2 · Score a plan against the true correspondence (§2)
#
# Write the recovery score of section 2: the share of *real* frames whose heaviest plan entry is
# their true word, pooled over the clips of a padded batch (a frame is real where its mask is True).
#
# *The check*: your score against `ot.correspondence_accuracy(plan, truth, mask)` on a batch whose
# second clip is padded.

# %%
def recovery_accuracy(plan, truth, mask):
    """plan (B, T_m, T_n), truth (B, T_m) word indices, mask (B, T_m) bool -> the share of real frames recovered."""
    ...  # your code


exercise.check("recovery_accuracy", recovery_accuracy)

# %% [markdown]
# ### 3 · Predict the share of dropped modalities (§4)
#
# At missing rate $r$ each of the $M$ modalities of a clip is dropped with probability $r$, and a clip
# that loses all of them gets one back, chosen at random. Section 4's right panel shows the share
# actually dropped sitting a little below $r$. Predict it as a closed form in $r$ and $M$.
#
# *The check*: your share against the empirical share of `missing_modality_mask` over 200 000
# clips (within 4 standard errors), for three $(r, M)$.

# %%
def expected_missing_share(rate, n_modalities):
    """missing rate r, modalities M -> the expected share of modality slots dropped."""
    ...  # your code


exercise.check("expected_missing_share", expected_missing_share)
