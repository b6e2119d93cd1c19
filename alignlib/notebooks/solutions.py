"""Reference solutions of the notebooks' exercises, one per exercise of
:mod:`alignlib.notebooks.exercises` and under the same name.

A notebook run with ``solutions=True`` checks these instead of its answer cells (the regression run
does); the tests check them too. Each solution does the exercise's step by hand, as a student
would: it does not call the library function its check compares with.
"""
from __future__ import annotations

import math

import torch


# 01 · optimal transport

def relaxed_plan(cost, x_mask, y_mask):
    cheapest = cost.masked_fill(~y_mask[:, None, :], float("inf")).argmin(dim=2)  # (B, T_m): over real targets only
    mass = x_mask / x_mask.sum(1, keepdim=True)  # 1/n on each real source token, 0 on padding
    return torch.zeros_like(cost).scatter(2, cheapest[..., None], mass[..., None].to(cost.dtype))


def aligned_average(plan, source):
    received = plan.sum(dim=0)  # (T_n,): the mass each word received
    return (plan.T @ source) / torch.where(received > 0, received, 1.0)[:, None]


def entropy_halving_blur(source, target):
    from alignlib.align import ot

    def entropy(blur):  # entropy per source token, -sum M log(T_m M)
        plan = ot.entropic_plan(source[None], target[None], blur=blur)[0]
        return -torch.special.xlogy(plan, plan * plan.shape[0]).sum().item()

    goal, low, high = math.log(target.shape[0]) / 2, math.log(0.05), math.log(10.0)
    for _ in range(30):  # bisection on log(blur): the entropy grows with the blur
        middle = (low + high) / 2
        low, high = (middle, high) if entropy(math.exp(middle)) < goal else (low, middle)
    return math.exp((low + high) / 2)


# 02 · MMD

def kernel_matrix(x, y, gamma):
    return torch.exp(-gamma * (x[:, None, :] - y[None, :, :]).pow(2).sum(-1))


def unbiased_mmd2(x, y, gamma):
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = kernel_matrix(x, x, gamma), kernel_matrix(y, y, gamma), kernel_matrix(x, y, gamma)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return within_x + within_y - 2 * k_xy.sum() / (m * n)


def equivalent_gamma(gamma, alpha):
    return gamma * alpha**2  # exp(-gamma |alpha x - alpha y|^2) = exp(-(gamma alpha^2) |x - y|^2)


def peak_gamma(shift, dim):
    from alignlib.align import mmd

    grid = torch.logspace(-4, 2, 2001, dtype=torch.float64)
    coarse = max(grid.tolist(), key=lambda gamma: mmd.gaussian_mmd2(shift, gamma, dim))
    fine = torch.linspace(coarse / 1.01, coarse * 1.01, 2001, dtype=torch.float64)
    return max(fine.tolist(), key=lambda gamma: mmd.gaussian_mmd2(shift, gamma, dim))


# 03 · Mamba

def zoh_step(h, u, a, b, delta):
    return torch.exp(delta * a) * h + torch.expm1(delta * a) / a * b * u


def selective_scan_loop(u, delta, A, B, C):
    state = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])  # (batch, D, N)
    outputs = []
    for t in range(u.shape[-1]):
        decay = torch.exp(delta[:, :, t, None] * A)  # (batch, D, N)
        drive = delta[:, :, t, None] * B[:, None, :, t] * u[:, :, t, None]
        state = decay * state + drive
        outputs.append((state * C[:, None, :, t]).sum(-1))  # (batch, D)
    return torch.stack(outputs, dim=-1)


def impulse_response(a, b, c, delta, length):
    lags = torch.arange(length, dtype=a.dtype)[:, None]
    return (c * torch.exp(lags * delta * a) * delta * b).sum(-1)  # K_k = C A_bar^k B_bar, B_bar = delta b


# 04 · experts and coupling

def route_by_modality(tokens, modality, experts, shared):
    own = experts[modality]  # (B, L, d_out, d_in): each token's own expert
    return (own @ tokens[..., None])[..., 0] + tokens @ shared.T


def load_balancing_loss(probabilities):
    experts = probabilities.shape[-1]
    flat = probabilities.reshape(-1, experts)
    first_choice = torch.bincount(flat.argmax(-1), minlength=experts) / len(flat)  # f_m
    return experts * (first_choice * flat.mean(0)).sum()  # M sum_m f_m P_m


def blowup_coupling(a, delta):
    return 1 / torch.exp(delta * a).sum()  # c sum_m A_bar^m = 1


def modality_information_bits(modality, expert):
    experts = int(expert.max()) + 1
    counts = torch.bincount(modality * experts + expert).double()
    joint = torch.nn.functional.pad(counts, (0, (int(modality.max()) + 1) * experts - len(counts)))
    joint = joint.reshape(-1, experts) / len(modality)  # p(m, e)
    independent = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)  # p(m) p(e)
    return torch.special.xlogy(joint, joint / independent).nansum() / math.log(2)


# 05 · data

def proportional_guess(n_frames, n_words):
    return torch.arange(n_frames) * n_words // n_frames


def recovery_accuracy(plan, truth, mask):
    hits = plan.argmax(dim=2) == truth  # (B, T_m): each frame's heaviest word
    return hits[mask].double().mean()


def expected_missing_share(rate, n_modalities):
    # each slot drops with probability r; a clip that drew all M as missing (probability r^M) gets one back
    return rate - rate**n_modalities / n_modalities


# 09 · EMMA

def patchify(images, patch_size):
    tiles = images.unfold(1, patch_size, patch_size).unfold(2, patch_size, patch_size)  # (B, H/p, W/p, p, p)
    return tiles.reshape(len(images), -1, patch_size * patch_size)


def multi_scale_fusion(states, weight, bias):
    normalised = [s / s.pow(2).mean(-1, keepdim=True).sqrt() for s in states]  # RMSNorm, scale 1
    return torch.cat(normalised, dim=-1) @ weight.T + bias


def probe_r2(train_states, train_pixels, test_states, test_pixels):
    design = torch.cat([train_states, torch.ones(len(train_states), 1, dtype=train_states.dtype)], dim=1)
    coefficients = torch.linalg.lstsq(design, train_pixels).solution  # weights and intercept
    predicted = test_states @ coefficients[:-1] + coefficients[-1]
    residual = (test_pixels - predicted).pow(2).sum()
    return 1 - residual / (test_pixels - test_pixels.mean(0)).pow(2).sum()


answers_unchanged_by_padding = True  # causality: the answer position reads no later position


# 06 · training

def mult_acc_7(pred, truth):
    classes = [torch.round(x.clamp(-3, 3)) for x in (pred, truth)]  # torch.round: half to even, as numpy
    return (classes[0] == classes[1]).double().mean()


def validation_flat(history, window, tolerance):
    if len(history) <= window:
        return False
    return min(history[-window:]) >= min(history[:-window]) * (1 - tolerance)


oracle_survives_shuffled_plan = False  # it learned to read the words' own frames; shuffled, they carry other cues


# 07 · inside trained models

def state_spread(states, mask):
    unit = states / states.norm(dim=-1, keepdim=True)
    centre = (unit * mask[..., None]).sum(1)
    centre = centre / centre.norm(dim=-1, keepdim=True)  # (B, d): each clip's mean direction
    distance = 1 - (unit * centre[:, None]).sum(-1)  # (B, T) cosine distances
    return ((distance * mask).sum(1) / mask.sum(1)).mean()


def centred_nearest_words(frames, words, frame_mask, word_mask):
    frames = frames - frames[frame_mask].mean(0)  # each modality's mean over the real tokens of the batch
    words = words - words[word_mask].mean(0)
    similarity = torch.nn.functional.normalize(frames, dim=-1) @ torch.nn.functional.normalize(words, dim=-1).mT
    return similarity.masked_fill(~word_mask[:, None, :], -math.inf).argmax(2)  # (B, T): real words only


order_matters_to_alignmamba2 = False  # trained with set-level losses, it reads the audio and video as bags


# 08 · the papers' experiments

def mean_interval(values):
    from scipy import stats

    n = len(values)
    half = stats.t.ppf(0.975, n - 1) * values.std() / math.sqrt(n)
    return values.mean(), values.mean() - half, values.mean() + half


def paired_interval(a, b):
    return mean_interval(a - b)  # the seed moves both runs: the interval of the per-seed differences


def lambda_ot_slope(lambda_ot, lambda_mmd, seed, mae):
    from scipy import stats

    def log10_with_floor(weight):  # a weight of 0 sits at the smallest weight tried; its indicator marks it
        return torch.log10(torch.where(weight > 0, weight, weight[weight > 0].min()))

    seeds = seed.unique()
    columns = [torch.ones_like(mae), log10_with_floor(lambda_ot), (lambda_ot == 0).double(),
               log10_with_floor(lambda_mmd), (lambda_mmd == 0).double(), *[(seed == s).double() for s in seeds[1:]]]
    design = torch.stack(columns, dim=1)  # (n, p)
    coef = torch.linalg.lstsq(design, mae[:, None]).solution[:, 0]
    df = len(mae) - design.shape[1]
    sigma2 = (mae - design @ coef).pow(2).sum() / df
    se = (sigma2 * torch.linalg.inv(design.T @ design)[1, 1]).sqrt()
    half = stats.t.ppf(0.975, df) * se
    return coef[1], coef[1] - half, coef[1] + half


# 10 · learned alignment

def best_path_loop(scores):
    frames, words = scores.shape
    value = torch.full((words,), -math.inf, dtype=scores.dtype)
    value[0] = scores[0, 0]
    moved = torch.zeros(frames, words, dtype=torch.bool)
    for i in range(1, frames):
        advance = torch.cat([value.new_full((1,), -math.inf), value[:-1]])
        moved[i] = advance > value
        value = scores[i] + torch.maximum(value, advance)
    path, word = [], words - 1
    for i in reversed(range(frames)):  # back from the last word at the last frame
        path.append(word)
        word -= int(moved[i, word])
    return torch.tensor(path[::-1])


def word_normalised_scores(similarity, frame_mask, word_mask):
    real = frame_mask[:, :, None] & word_mask[:, None, :]
    return similarity.masked_fill(~real, -math.inf).log_softmax(dim=1)  # over each word's frames


learned_plan_survives_reversal = False  # the plan runs forward from the first word: reversed, the order is wrong
