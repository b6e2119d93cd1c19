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
# # 02 · Maximum Mean Discrepancy: global cross-modal alignment, step by step
#
# Optimal transport (notebook 01) matches tokens one by one. AlignMamba and AlignMamba-2 add a
# *global* constraint: the audio and video tokens, taken as a cloud, should be distributed like the
# language tokens. They measure the gap with the squared **Maximum Mean Discrepancy** (MMD) under a
# Gaussian kernel (AlignMamba-2: $\gamma = 1/d$, weight $\lambda_{MMD} = 0.01$).
#
# **What you will learn**
# 1. MMD as the distance between *mean embeddings* of two distributions in a feature space;
# 2. the kernel trick that turns it into the three sums of the paper's Eq. 6, checked against
#    `alignlib.align.mmd` and against explicit (random Fourier) features;
# 3. the three kernel blocks, and how MMD grows with the shift between two distributions
#    (checked against the closed form for Gaussians), and a difference of variance MMD catches;
# 4. why the bandwidth matters: too small and too large both make MMD blind;
# 5. biased, unbiased and linear-time estimators, and a permutation test;
# 6. minimising MMD by gradient descent pulls one token cloud onto another;
# 7. what a fixed bandwidth lets an encoder do (shrink its features), and an interactive explorer.

# %% tags=["parameters"]
n_tokens: int = 60  # tokens per set in the worked examples
dim: int = 8  # token width d
shifts: list = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0]  # mean shifts for the MMD-vs-shift curve
draws: int = 200  # repeated draws per shift (estimator spread)
n_features: int = 4000  # random Fourier features for the explicit mean embeddings
descent_steps: int = 300  # gradient steps in the alignment demo
learning_rate: float = 0.05  # Adam step size in the alignment demo
permutations: int = 300  # permutations in the two-sample test
seed: int = 0  # seeds every random draw
solutions: bool = False  # True: the Exercises section checks the reference solutions (the regression run sets it)
metrics_path: str = ""  # where the runner records this notebook's key numbers

# %% tags=["setup"]
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

from alignlib.align import mmd
from alignlib.notebooks import record_metrics

sns.set_theme(context="notebook", style="white")
generator = torch.Generator().manual_seed(seed)


def gaussian_cloud(batch, n, mean=0.0, std=1.0):
    """(batch, n, dim) tokens from N(mean * 1, std^2 I)."""
    return mean + std * torch.randn(batch, n, dim, generator=generator, dtype=torch.float64)


# %% [markdown]
# ## 1 · Mean embeddings
#
# Map every token through a feature map $\phi: \mathbb{R}^d \to \mathcal{H}$ and average. Two
# distributions are far apart when their average features are:
#
# $$\mathrm{MMD}(P, Q) = \big\lVert \mathbb{E}_{x \sim P}\,\phi(x) - \mathbb{E}_{y \sim Q}\,\phi(y) \big\rVert_{\mathcal{H}}.$$
#
# With a rich enough $\phi$ (a *characteristic* kernel, such as the Gaussian) the mean embedding
# determines the distribution, so MMD is zero only when $P = Q$. For the Gaussian kernel
# $k(x, y) = \exp(-\gamma \lVert x - y\rVert^2)$, $\phi$ is infinite-dimensional, but it can be
# approximated by $D$ random Fourier features $\phi(x) = \sqrt{2/D}\,\cos(W x + b)$ with
# $W \sim \mathcal{N}(0, 2\gamma I)$, $b \sim U[0, 2\pi]$, since $\mathbb{E}\,\phi(x)\cdot\phi(y) = k(x, y)$.

# %%
gamma = 1.0 / dim  # the paper's bandwidth
x_tokens = gaussian_cloud(1, n_tokens)  # "audio" tokens
y_tokens = gaussian_cloud(1, n_tokens, mean=0.5)  # "language" tokens, shifted

W = torch.randn(dim, n_features, generator=generator, dtype=torch.float64) * math.sqrt(2 * gamma)
b = 2 * math.pi * torch.rand(n_features, generator=generator, dtype=torch.float64)


def fourier_features(tokens):
    return math.sqrt(2.0 / n_features) * torch.cos(tokens @ W + b)


mean_x, mean_y = fourier_features(x_tokens[0]).mean(0), fourier_features(y_tokens[0]).mean(0)
mmd2_features = (mean_x - mean_y).pow(2).sum().item()
print(f"explicit features (D = {n_features}): |mean phi(x) - mean phi(y)|^2 = {mmd2_features:.5f}")

# %% [markdown]
# ## 2 · The kernel trick: three sums (Eq. 6)
#
# Expanding the squared norm, every $\phi$ appears in an inner product, and
# $\langle \phi(u), \phi(v)\rangle = k(u, v)$:
#
# $$\mathrm{MMD}^2 = \frac{1}{T_m^2}\sum_{i,i'} k(x_i, x_{i'}) - \frac{2}{T_m T_n}\sum_{i,j} k(x_i, y_j) + \frac{1}{T_n^2}\sum_{j,j'} k(y_j, y_{j'}).$$
#
# No features needed: the exact value, written as loops, then compared with `alignlib.align.mmd.mmd2`
# and with the random-feature estimate above (which carries a Monte Carlo error of order $1/\sqrt{D}$).

# %%
def k(u, v):
    return math.exp(-gamma * float(((u - v) ** 2).sum()))


xs, ys = x_tokens[0].numpy(), y_tokens[0].numpy()
sum_xx = sum(k(xs[i], xs[j]) for i in range(n_tokens) for j in range(n_tokens))
sum_yy = sum(k(ys[i], ys[j]) for i in range(n_tokens) for j in range(n_tokens))
sum_xy = sum(k(xs[i], ys[j]) for i in range(n_tokens) for j in range(n_tokens))
mmd2_loops = sum_xx / n_tokens**2 + sum_yy / n_tokens**2 - 2 * sum_xy / n_tokens**2
mmd2_library = mmd.mmd2(x_tokens, y_tokens).item()  # bandwidth="dim": gamma = 1/d
loop_gap = abs(mmd2_loops - mmd2_library)
print(f"loops {mmd2_loops:.6f}   alignlib {mmd2_library:.6f}   random features {mmd2_features:.6f}")
assert loop_gap < 1e-12
assert abs(mmd2_features - mmd2_library) < 0.25 * mmd2_library  # Monte Carlo error of D features

# %% [markdown]
# `alignlib` computes all three sums at once: it stacks $[x; y]$, builds one kernel matrix and
# evaluates the quadratic form $w^\top K w$ with $w = (+\tfrac{1}{T_m}, \dots, -\tfrac{1}{T_n}, \dots)$.
# Here are the three blocks of that matrix. The within-set blocks have a bright diagonal
# ($k(x, x) = 1$); the cross block is dimmer because the sets are shifted apart.

# %%
gammas = mmd.bandwidths(x_tokens, y_tokens, bandwidth="dim")
blocks = mmd.pooled_kernel(x_tokens, y_tokens, gammas)[0].numpy()
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for ax, (title, block) in zip(axes, [("k(x, x')", blocks[:n_tokens, :n_tokens]),
                                     ("k(y, y')", blocks[n_tokens:, n_tokens:]),
                                     ("k(x, y)", blocks[:n_tokens, n_tokens:])]):
    sns.heatmap(block, vmin=0, vmax=1, cmap="viridis", ax=ax, xticklabels=False, yticklabels=False)
    ax.set_title(f"{title}: mean {block.mean():.3f}")
plt.tight_layout()
plt.show()
print(f"MMD^2 = {blocks[:n_tokens, :n_tokens].mean():.4f} + {blocks[n_tokens:, n_tokens:].mean():.4f}"
      f" - 2 x {blocks[:n_tokens, n_tokens:].mean():.4f} = {mmd2_library:.4f}")

# %% [markdown]
# ## 3 · MMD grows with the shift
#
# For $P = \mathcal{N}(0, I)$ and $Q = \mathcal{N}(s\mathbf{1}, I)$ the population value has a closed
# form: for $Z \sim \mathcal{N}(m, \sigma^2 I_d)$,
# $\mathbb{E}\, e^{-\gamma \lVert Z\rVert^2} = (1 + 2\gamma\sigma^2)^{-d/2} \exp\!\big(-\gamma \lVert m\rVert^2 / (1 + 2\gamma\sigma^2)\big)$,
# applied to $x - x'$, $y - y'$ and $x - y$ (`alignlib.align.mmd.gaussian_mmd2`). The unbiased estimator averages to it; the biased one
# (the paper's) sits above it by about $\tfrac{1}{T_m} + \tfrac{1}{T_n}$ times the kernel's mean gap.


# %%
def population_mmd2(shift, gamma, scale=1.0):
    """Population MMD^2 between N(0, I_d) and N(shift 1, scale^2 I_d) with d = dim."""
    return mmd.gaussian_mmd2(shift, gamma, dim, scale)


rows = []
for shift in shifts:
    x_draws, y_draws = gaussian_cloud(draws, n_tokens), gaussian_cloud(draws, n_tokens, mean=shift)
    biased = mmd.mmd2(x_draws, y_draws)
    unbiased = mmd.mmd2(x_draws, y_draws, estimator="unbiased")
    rows.append((shift, population_mmd2(shift, gamma), biased.mean().item(), biased.std().item(),
                 unbiased.mean().item(), unbiased.std().item()))
rows = np.array(rows)

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(rows[:, 0], rows[:, 1], "k-", label="closed form")
ax.errorbar(rows[:, 0], rows[:, 2], rows[:, 3], fmt="o", capsize=3, label="biased (paper)")
ax.errorbar(rows[:, 0] + 0.02, rows[:, 4], rows[:, 5], fmt="s", capsize=3, label="unbiased")
ax.set(xlabel="mean shift s (per coordinate)", ylabel="MMD$^2$", title=f"{n_tokens} tokens per set, d = {dim}, $\\gamma$ = 1/d")
ax.legend()
plt.show()

standard_errors = rows[:, 5] / math.sqrt(draws)
closed_form_z = np.abs(rows[:, 4] - rows[:, 1]) / np.maximum(standard_errors, 1e-12)
print("unbiased mean - closed form, in standard errors:", np.round(closed_form_z, 2).tolist())
assert closed_form_z.max() < 4.5

# %% [markdown]
# **Beyond the mean.** A loss that only matched means (or a linear kernel, whose MMD is
# $\lVert \bar x - \bar y\rVert^2$) would call $\mathcal{N}(0, I)$ and $\mathcal{N}(0, \sigma^2 I)$ equal. The Gaussian
# kernel's mean embedding carries every moment, so MMD sees the variance: the gap between the
# sample means is no larger than sampling noise, yet the closed form is clearly positive, the
# estimator averages to it, and a permutation test rejects. Closed form for
# $Q = \mathcal{N}(0, 1.5^2 I)$: $y - y' \sim \mathcal{N}(0, 2\sigma^2 I)$ and $x - y \sim \mathcal{N}(0, (1 + \sigma^2) I)$.

# %%
wide = 1.5
x_draws, y_wide = gaussian_cloud(draws, n_tokens), gaussian_cloud(draws, n_tokens, std=wide)
unbiased_wide = mmd.mmd2(x_draws, y_wide, estimator="unbiased")
variance_population = population_mmd2(0.0, gamma, wide)
variance_z = abs(unbiased_wide.mean().item() - variance_population) / (unbiased_wide.std().item() / math.sqrt(draws))
mean_gap = (x_draws.mean(1) - y_wide.mean(1)).pow(2).sum(-1).mean().item()
p_wide = mmd.permutation_test(x_draws[:1], y_wide[:1], n_permutations=permutations, seed=seed).item()
print(f"same mean, sigma {wide}: closed form {variance_population:.4f}, unbiased mean {unbiased_wide.mean().item():.4f} "
      f"({variance_z:.2f} standard errors); squared gap of the sample means {mean_gap:.4f}, "
      f"sampling noise alone d(1 + sigma^2)/T = {dim * (1 + wide**2) / n_tokens:.4f}; "
      f"permutation p-value of one draw {p_wide:.3f}")
assert variance_z < 4.5

# %% [markdown]
# ## 4 · The bandwidth decides what MMD can see
#
# With $\gamma \to \infty$ (a very narrow kernel) every off-diagonal $k$ is 0 and the biased MMD
# tends to $\tfrac{1}{T_m} + \tfrac{1}{T_n}$ whatever the distributions; with $\gamma \to 0$ (a very wide one) every
# $k$ is 1 and MMD tends to 0. Either way it cannot tell the sets apart. What matters is the gap
# between the shifted and the unshifted pair, which peaks at a bandwidth matched to the data's scale.

# %%
gamma_grid = np.logspace(-4, 2, 40)
x_draws, y_same, y_shifted = gaussian_cloud(50, n_tokens), gaussian_cloud(50, n_tokens), gaussian_cloud(50, n_tokens, mean=0.5)
population = [population_mmd2(0.5, g) for g in gamma_grid]
biased_same = [mmd.mmd2(x_draws, y_same, bandwidth=float(g)).mean().item() for g in gamma_grid]
biased_shifted = [mmd.mmd2(x_draws, y_shifted, bandwidth=float(g)).mean().item() for g in gamma_grid]
median_gamma = mmd.bandwidths(x_draws, y_shifted, bandwidth="median").mean().item()
best_gamma = float(gamma_grid[int(np.argmax(population))])

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.semilogx(gamma_grid, population, "k-", label="population, shift 0.5")
ax.semilogx(gamma_grid, biased_shifted, "C1-", label="biased estimate, shift 0.5")
ax.semilogx(gamma_grid, biased_same, "C0--", label="biased estimate, same distribution")
ax.axvline(1 / dim, color="C2", ls="--", label="$\\gamma$ = 1/d (paper)")
ax.axvline(median_gamma, color="C3", ls=":", label="median heuristic")
ax.set(xlabel="$\\gamma$", ylabel="MMD$^2$", title="MMD is blind at both ends of the bandwidth")
ax.legend(fontsize=8)
plt.show()
gap_at_paper_gamma = population_mmd2(0.5, 1 / dim)
print(f"population MMD^2 peaks at gamma = {best_gamma:.3g} ({max(population):.4f}); "
      f"at 1/d = {1 / dim:.3g} it is {gap_at_paper_gamma:.4f}; median heuristic gamma = {median_gamma:.3g}")
print(f"at gamma = {gamma_grid[-1]:g} the biased estimate is {biased_shifted[-1]:.4f} for the shifted pair and "
      f"{biased_same[-1]:.4f} for the same distribution (2/T = {2 / n_tokens:.4f}): blind")

# %% [markdown]
# **Which bandwidth did the paper mean?** Eq. 7 writes the kernel as
# $k(x, y) = \exp(-\lVert x - y\rVert^2 / (2\sigma^2))$, then the text sets "the kernel bandwidth
# $\gamma = 1/d$" without relating $\gamma$ to $\sigma$. Two readings:
#
# * **A** (`alignlib`, scikit-learn's `rbf_kernel` default): $\gamma$ is the inverse width,
#   $k = \exp(-\gamma \lVert x - y\rVert^2)$ with $\gamma = 1/d$, i.e. $2\sigma^2 = d$: a width that grows with
#   the dimension, like the typical distance $\lVert x - y\rVert^2 \approx 2d$ between unit-variance tokens;
# * **B**: $\gamma$ names the bandwidth $\sigma$ of Eq. 7, $\sigma = 1/d$, i.e. an inverse width $1/(2\sigma^2) = d^2/2$.
#
# The curve above says what each gives for the shift-0.5 pair:

# %%
gamma_reading_b = dim**2 / 2
reading_values = {"A: gamma = 1/d": (1 / dim, population_mmd2(0.5, 1 / dim)),
                  "B: sigma = 1/d": (gamma_reading_b, population_mmd2(0.5, gamma_reading_b))}
for name, (value, population_value) in reading_values.items():
    estimate_shifted = mmd.mmd2(x_draws[:50], y_shifted, bandwidth=value).mean().item()
    estimate_same = mmd.mmd2(x_draws[:50], y_same, bandwidth=value).mean().item()
    print(f"{name}: inverse width {value:.4g}; population MMD^2 {population_value:.3g}; biased estimate "
          f"{estimate_shifted:.4f} shifted vs {estimate_same:.4f} same distribution")

# %% [markdown]
# Reading A sits near the peak; under reading B the kernel is so narrow that the population value
# is essentially 0 and both estimates sit at the blind floor $2/T$: the loss could not tell the
# shifted sets from identical ones. Reading A is the one that can work, and the one `alignlib` uses.
#
# A sum of kernels over several bandwidths (`bandwidth=[...]`) hedges the choice when the scale of
# the features is unknown or changes during training, as it does for learned token embeddings.

# %% [markdown]
# ## 5 · Three estimators, and a test
#
# The quadratic estimators cost $O(T^2 d)$. Gretton's linear-time estimator pairs up consecutive
# tokens and averages $h = k(x_{2i}, x_{2i+1}) + k(y_{2i}, y_{2i+1}) - k(x_{2i}, y_{2i+1}) - k(x_{2i+1}, y_{2i})$:
# $O(T d)$, unbiased, but with a larger variance. Below: their spread over repeated draws, and
# their cost as the sets grow.

# %%
x_draws, y_draws = gaussian_cloud(draws, n_tokens), gaussian_cloud(draws, n_tokens, mean=0.5)
estimates = {
    "biased": mmd.mmd2(x_draws, y_draws).numpy(),
    "unbiased": mmd.mmd2(x_draws, y_draws, estimator="unbiased").numpy(),
    "linear": mmd.mmd2_linear(x_draws, y_draws).numpy(),
}
sizes, quadratic_s, linear_s = [256, 512, 1024, 2048], [], []
for size in sizes:
    xl, yl = gaussian_cloud(1, size), gaussian_cloud(1, size, mean=0.5)
    start = time.perf_counter()
    mmd.mmd2(xl, yl, estimator="unbiased")
    quadratic_s.append(time.perf_counter() - start)
    start = time.perf_counter()
    mmd.mmd2_linear(xl, yl)
    linear_s.append(time.perf_counter() - start)

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
sns.boxplot(data=list(estimates.values()), ax=axes[0])
axes[0].set_xticks(range(3), list(estimates))
axes[0].axhline(population_mmd2(0.5, gamma), color="k", ls="--", label="population value")
axes[0].set(ylabel="MMD$^2$ estimate", title=f"{draws} draws of {n_tokens} vs {n_tokens} tokens")
axes[0].legend()
axes[1].loglog(sizes, quadratic_s, "o-", label="quadratic (unbiased)")
axes[1].loglog(sizes, linear_s, "s-", label="linear-time")
axes[1].set(xlabel="tokens per set", ylabel="seconds", title="cost")
axes[1].legend()
plt.tight_layout()
plt.show()
print({name: f"mean {v.mean():.4f}, std {v.std():.4f}" for name, v in estimates.items()})

# %% [markdown]
# **Permutation test.** If both sets come from one distribution, their tokens are exchangeable:
# shuffling the pooled tokens and re-splitting gives draws of MMD under the null hypothesis. The
# p-value is the share of shuffles at least as large as the observed statistic.

# %%
p_same = mmd.permutation_test(gaussian_cloud(1, n_tokens), gaussian_cloud(1, n_tokens), n_permutations=permutations,
                                seed=seed).item()
p_shifted = mmd.permutation_test(x_tokens, y_tokens, n_permutations=permutations, seed=seed).item()
print(f"p-value, same distribution: {p_same:.3f}    shifted by 0.5: {p_shifted:.3f}")

# %% [markdown]
# ## 6 · Minimising MMD pulls one token cloud onto another
#
# As a loss, MMD$^2$ is differentiable in the tokens. Here the "audio" tokens are free parameters,
# drawn from a scaled, rotated and shifted distribution; the "language" tokens are fixed. Adam on
# MMD$^2$ alone moves the whole cloud onto the language cloud. In AlignMamba-2 the same gradient
# flows into the unimodal encoders instead, with weight $\lambda_{MMD} = 0.01$ beside the task loss.
# A sum of bandwidths keeps the gradient alive while the clouds are still far apart.

# %%
rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
audio = (gaussian_cloud(1, n_tokens, std=0.4) @ rotation + 2.0).requires_grad_()
language = gaussian_cloud(1, n_tokens)
audio_start = audio.detach().clone()
bandwidth_mix = [1 / (4 * dim), 1 / dim, 4 / dim]
optimizer = torch.optim.Adam([audio], lr=learning_rate)
curve = []
for step in range(descent_steps):
    optimizer.zero_grad()
    loss = mmd.mmd2(audio, language, bandwidth=bandwidth_mix).sum()
    loss.backward()
    optimizer.step()
    curve.append(loss.item())
mmd_before = mmd.mmd2(audio_start, language).item()
mmd_after = mmd.mmd2(audio.detach(), language).item()
p_before = mmd.permutation_test(audio_start, language, n_permutations=permutations, seed=seed).item()
p_after = mmd.permutation_test(audio.detach(), language, n_permutations=permutations, seed=seed).item()
print(f"MMD^2 (gamma = 1/d): before {mmd_before:.4f}, after {mmd_after:.4f};  p-value before {p_before:.3f}, after {p_after:.3f}")
# A p-value near 1 after the descent: the moved cloud was fitted to these very language tokens,
# so it is closer to them than a fresh sample of the same distribution would be.


# %%
# 2-D view: the first two principal directions of the language tokens.
centre = language[0].mean(0)
_, _, directions = torch.linalg.svd(language[0] - centre, full_matrices=False)


def project(tokens):
    return ((tokens[0] - centre) @ directions[:2].T).numpy()


fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
for ax, (title, cloud) in zip(axes[:2], [("before", audio_start), ("after", audio.detach())]):
    ax.scatter(*project(language).T, s=14, label="language (fixed)")
    ax.scatter(*project(cloud).T, s=14, label="audio (moved)")
    ax.set(title=f"{title}: MMD$^2$ = {mmd.mmd2(cloud, language).item():.3f}", xlabel="PC 1", ylabel="PC 2")
    ax.legend()
axes[2].semilogy(curve)
axes[2].set(xlabel="Adam step", ylabel="multi-bandwidth MMD$^2$", title="the loss")
plt.tight_layout()
plt.show()

# %% [markdown]
# Look for stragglers in the "after" picture: a token that starts far from every language token
# feels almost no pull, because each kernel decays as $e^{-\gamma \lVert x - y\rVert^2}$. The widest
# bandwidth in the mix sets how far the loss can reach.

# %% [markdown]
# ## 7 · A fixed bandwidth can be gamed: shrink the features
#
# With $\gamma$ fixed, scaling both token sets by $\alpha$ gives
# $k(\alpha x, \alpha y) = \exp(-\gamma \alpha^2 \lVert x - y\rVert^2)$: the same as the original sets under $\gamma\alpha^2$. As
# $\alpha \to 0$ we walk to the blind end of the bandwidth curve, where every kernel value is 1 and
# MMD$^2 \to 0$. An encoder trained on this loss can therefore lower it by shrinking its features
# instead of aligning them. The median heuristic ($\gamma = 1/(2\,\mathrm{median}^2)$, rescaled with the
# data) has no such shortcut:

# %%
alphas = [1.0, 0.3, 0.1, 0.03]
shrunk = {alpha: (mmd.mmd2(alpha * x_tokens, alpha * y_tokens).item(),
                  mmd.mmd2(alpha * x_tokens, alpha * y_tokens, bandwidth="median").item()) for alpha in alphas}
for alpha, (fixed, median) in shrunk.items():
    print(f"features x {alpha:<5}: MMD^2 with gamma = 1/d {fixed:.6f}   with the median heuristic {median:.6f}")
shrink_ratio = shrunk[alphas[-1]][0] / shrunk[1.0][0]
assert shrunk[alphas[-1]][0] < 0.01 * shrunk[1.0][0]
assert abs(shrunk[alphas[-1]][1] - shrunk[1.0][1]) < 1e-9

# %% [markdown]
# Shrinking by 0.1 divides the fixed-bandwidth loss by about 15, by 0.03 by about 160; the
# median-heuristic loss does not move. In AlignMamba-2 nothing in the alignment loss stops the shrinking either: the OT
# term's cosine cost ignores norms. What stands against it is the task loss, which needs the
# features to carry the label, and the small weight $\lambda_{MMD} = 0.01$, which keeps the reward
# for shrinking small. It is not a strong guard: the fusion layers are pre-norm blocks whose
# RMSNorm rescales every token before its mixer, so shrunk features lose less than one might think.
# A scale-aware bandwidth (median heuristic or a sum over several $\gamma$) closes the shortcut.
#
# ## 8 · Explore
#
# `MMDExplorer`: the shift, the bandwidth $\gamma$ and the spread $\sigma$ of $Q$ as sliders; the closed
# form against the shift and against $\gamma$, and the biased estimate of one draw. Set the shift to 0
# and move $\sigma$ to see the variance case; move $\gamma$ to either end to see MMD go blind.

# %%
from alignlib.widgets.mmd import MMDExplorer  # noqa: E402

mmd_explorer = MMDExplorer(dim=dim, shift=0.5, n_tokens=n_tokens, seed=seed)
mmd_explorer

# %% [markdown]
# ## Recorded metrics
#
# The regression suite compares these with `tests/baselines/02_mmd.json`.

# %%
record_metrics(
    metrics_path,
    mmd2_library=mmd2_library,
    loop_gap=loop_gap,
    random_feature_gap=abs(mmd2_features - mmd2_library),
    closed_form_max_z=float(closed_form_z.max()),
    best_gamma=best_gamma,
    population_mmd2_at_paper_gamma=gap_at_paper_gamma,
    linear_std_over_unbiased_std=float(estimates["linear"].std() / estimates["unbiased"].std()),
    p_same=p_same,
    p_shifted=p_shifted,
    mmd_before=mmd_before,
    mmd_after=mmd_after,
    p_after=p_after,
    variance_population=variance_population,
    variance_z=variance_z,
    population_reading_b=reading_values["B: sigma = 1/d"][1],
    shrink_ratio=shrink_ratio,
)

# %% [markdown]
# ## Exercises
#
# Four exercises on this notebook's ideas. Write each answer where its cell says `# your code` and
# run the cell: the check under it runs your answer on cases of its own, compares the result with
# an independent reference and, if they differ, names what differs (a shape, a mask, an axis, a
# factor), never the expected values. With the parameter `solutions=True` (the regression run sets
# it) every check runs the reference solution from `alignlib/notebooks/solutions.py` instead and
# folds it under its verdict.

# %%
from alignlib.notebooks.exercises import Exercises  # noqa: E402

exercise = Exercises(solutions)

# %% [markdown]
# ### 1 · The Gaussian kernel matrix in one line (§1)
#
# Write $K_{ij} = k(x_i, y_j) = \exp(-\gamma \lVert x_i - y_j\rVert^2)$ for two token sets, with $\gamma$ the inverse
# width (reading A of section 4).
#
# *The check*: your matrix against scikit-learn's `rbf_kernel(x, y, gamma=gamma)` on two pairs of
# token sets.

# %%
def kernel_matrix(x, y, gamma):
    """x (m, d), y (n, d), gamma > 0 -> the kernel matrix (m, n)."""
    ...  # your code


exercise.check("kernel_matrix", kernel_matrix)

# %% [markdown]
# ### 2 · The unbiased MMD² from three kernel sums (§2, §5)
#
# Eq. 6's three sums give the biased estimator: each within-set sum includes the diagonal
# $k(x_i, x_i) = 1$. The unbiased one (a U-statistic) leaves it out:
#
# $$\widehat{\mathrm{MMD}}{}^2_u = \frac{1}{m(m-1)}\sum_{i \ne i'} k(x_i, x_{i'}) + \frac{1}{n(n-1)}\sum_{j \ne j'} k(y_j, y_{j'}) - \frac{2}{mn}\sum_{i,j} k(x_i, y_j).$$
#
# Write it from three kernel sums (your `kernel_matrix` can help, once it passes).
#
# *The check*: your value against `mmd.mmd2(x, y, bandwidth=gamma, estimator="unbiased")` for sets
# of unequal sizes.

# %%
def unbiased_mmd2(x, y, gamma):
    """x (m, d), y (n, d), gamma > 0 -> the unbiased MMD^2 estimate (a number)."""
    ...  # your code


exercise.check("unbiased_mmd2", unbiased_mmd2)

# %% [markdown]
# ### 3 · The shrinking shortcut as one formula (§7)
#
# An encoder scales its features by $\alpha$ while the loss keeps its $\gamma$. Which inverse width
# $\gamma'$ gives the *original* features the same kernel, $k_\gamma(\alpha x, \alpha y) = k_{\gamma'}(x, y)$ for all
# $x, y$? (Section 7 walked along the bandwidth curve this way.)
#
# *The check*: `mmd.gaussian_kernel` of the scaled features at $\gamma$ against that of the original
# features at your $\gamma'$, for three $(\gamma, \alpha)$.

# %%
def equivalent_gamma(gamma, alpha):
    """gamma > 0, alpha > 0 -> gamma' with k_gamma(alpha x, alpha y) = k_gamma'(x, y)."""
    ...  # your code


exercise.check("equivalent_gamma", equivalent_gamma)

# %% [markdown]
# ### 4 · A small experiment: where does MMD see a shift best? (§3, §4)
#
# For $P = \mathcal{N}(0, I_d)$ and $Q = \mathcal{N}(s \mathbf{1}, I_d)$ the population MMD² is
# `mmd.gaussian_mmd2(s, gamma, d)`. Find the $\gamma$ at which it peaks (a grid over $\log \gamma$, then
# a finer one, is enough). Before you run it, guess: does the peak move to larger or smaller $\gamma$
# as the shift grows, and is the paper's $1/d$ near it for $s = 0.5$, $d = 8$?
#
# *The check*: at your $\gamma$ the population MMD² must be within 0.1% of its maximum (found by
# SciPy), for $s = 0.5, d = 8$ and $s = 2, d = 2$.

# %%
def peak_gamma(shift, dim):
    """shift s, dimension d -> the gamma that maximises the population MMD^2 between N(0, I) and N(s 1, I)."""
    ...  # your code


exercise.check("peak_gamma", peak_gamma)
