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
# # 03 · Mamba from the state-space model up
#
# Every model in this project fuses modalities with Mamba. This notebook builds it from the
# continuous state-space model (AlignMamba-2, Eq. 1), one step at a time, checking each step
# against the previous one and against `alignlib`.
#
# **What you will learn**
# 1. the continuous SSM and its zero-order-hold (ZOH) discretisation;
# 2. the recurrence, and for a time-invariant SSM the equivalent convolution ("a CNN is an RNN");
# 3. why making $\Delta$, $B$, $C$ depend on the input (selectivity) breaks the convolution;
# 4. the selective scan as a loop, a fast chunked scan with a hand-written backward, a fused C++
#    scan, and how fast a scan can be on a CPU;
# 5. the full Mamba block, its recurrent step mode, and what selectivity buys on a toy
#    selective-copying task.

# %% tags=["parameters"]
d_state: int = 4  # N, the state size of the worked examples
length: int = 48  # sequence length of the worked examples
copy_tokens: int = 4  # symbols to remember in the selective-copying task
copy_length: int = 32  # positions over which they are scattered
copy_vocab: int = 8  # token 0 is noise, 1 is "now recall", 2 and up are symbols
train_steps: int = 300  # Adam steps per model in the selective-copying task
batch_size: int = 64  # sequences per training step
d_model: int = 32  # width of the toy models
timing_lengths: list = [256, 1024]  # lengths for the live loop, chunked and fused timings
seed: int = 0  # seeds every random draw
solutions: bool = False  # True: the Exercises section checks the reference solutions (the regression run sets it)
metrics_path: str = ""  # where the runner records this notebook's key numbers

# %% tags=["setup"]
import json
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
import torch.nn.functional as F
from scipy.integrate import solve_ivp
from torch import nn
from tqdm.auto import tqdm

from alignlib import PROJECT_ROOT
from alignlib.notebooks import record_metrics
from alignlib.ssm.mamba import Block, Mamba
from alignlib.ssm.selective_scan import selective_scan_chunked, selective_scan_fused, selective_scan_reference

sns.set_theme(context="notebook", style="whitegrid")
torch.manual_seed(seed)
generator = torch.Generator().manual_seed(seed)

# %% [markdown]
# ## 1 · The continuous SSM and ZOH
#
# $$h'(t) = A h(t) + B u(t), \qquad y(t) = C h(t)$$
#
# Mamba uses a *diagonal* $A$ (one decay rate per state), so each state coordinate is a leaky
# integrator $h_n' = a_n h_n + b_n u$. If $u$ is held constant over a step of length $\Delta$
# (zero-order hold), the exact solution over that step is
#
# $$h_{t} = \underbrace{e^{\Delta a}}_{\bar A}\, h_{t-1} + \underbrace{\frac{e^{\Delta a} - 1}{a}\, b}_{\bar B}\, u_t .$$
#
# Mamba keeps $\bar A = e^{\Delta A}$ but simplifies $\bar B \approx \Delta B$ (the first-order term;
# mamba-ssm does the same). We check the exact ZOH step against a numerical ODE solver, and measure
# how far Mamba's $\Delta B$ is from it.

# %%
a_demo = -torch.arange(1, d_state + 1, dtype=torch.float64)  # S4D-real: a_n = -(n + 1)
b_demo = torch.ones(d_state, dtype=torch.float64)
step, h0, u0 = 0.1, np.ones(d_state), 0.7
ode = solve_ivp(lambda t, h: a_demo.numpy() * h + b_demo.numpy() * u0, (0, step), h0, rtol=1e-12, atol=1e-14)
a_bar = torch.exp(step * a_demo)
b_bar_zoh = torch.expm1(step * a_demo) / a_demo * b_demo
zoh_step = (a_bar * torch.tensor(h0) + b_bar_zoh * u0).numpy()
mamba_step = (a_bar * torch.tensor(h0) + step * b_demo * u0).numpy()
zoh_error = np.abs(zoh_step - ode.y[:, -1]).max()
print(f"exact ZOH vs ODE solver: {zoh_error:.1e};  Mamba's Delta*B vs ODE solver: {np.abs(mamba_step - ode.y[:, -1]).max():.1e}")
assert zoh_error < 1e-9

# %% [markdown]
# ## 2 · The recurrence, and the convolution it equals
#
# With $\bar A, \bar B$ fixed in time the recurrence $h_t = \bar A h_{t-1} + \bar B u_t$, $y_t = C h_t$
# unrolls to $y_t = \sum_{k \ge 0} C \bar A^k \bar B\, u_{t-k}$: a causal convolution with kernel
# $K_k = C \bar A^k \bar B$. One model, two ways to compute it: step by step (an RNN, cheap per token)
# or all at once (a CNN, parallel over time). We check all three against each other and against
# `alignlib.ssm.selective_scan.selective_scan_reference` with time-invariant $B$, $C$ of shape `(D, N)`.

# %%
u = torch.randn(1, 1, length, generator=generator, dtype=torch.float64)
c_demo = torch.randn(d_state, generator=generator, dtype=torch.float64)

h, y_loop = torch.zeros(d_state, dtype=torch.float64), []
for t in range(length):
    h = a_bar * h + step * b_demo * u[0, 0, t]
    y_loop.append(c_demo @ h)
y_loop = torch.stack(y_loop)

kernel = torch.stack([(c_demo * a_bar**k * step * b_demo).sum() for k in range(length)])
y_conv = F.conv1d(F.pad(u, (length - 1, 0)), kernel.flip(0)[None, None])[0, 0]
y_library = selective_scan_reference(u, torch.full_like(u, step), a_demo[None], b_demo[None], c_demo[None])[0, 0]
rnn_cnn_gap = max((y_loop - y_conv).abs().max().item(), (y_loop - y_library).abs().max().item())
print(f"max |loop - convolution|, |loop - alignlib| = {rnn_cnn_gap:.1e}")
assert rnn_cnn_gap < 1e-12

# %% [markdown]
# **Impulse responses.** The kernel $K_k$ is the response to a single spike. A more negative $a$ or
# a larger $\Delta$ forgets faster; a small $\Delta$ holds on to the past (and, in a selective
# model, ignores the current input: $\Delta B \to 0$).

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
for a_value in (-0.5, -1.0, -4.0):
    axes[0].plot([math.exp(0.1 * a_value) ** k for k in range(40)], label=f"a = {a_value}")
for delta_value in (0.01, 0.1, 0.5):
    axes[1].plot([delta_value * math.exp(delta_value * -1.0) ** k for k in range(40)], label=f"$\\Delta$ = {delta_value}")
axes[0].set(title="$\\bar A^k$ for $\\Delta$ = 0.1", xlabel="lag k")
axes[1].set(title="$K_k = \\Delta e^{k \\Delta a}$ for a = -1 (B = C = 1)", xlabel="lag k")
for ax in axes:
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3 · Selectivity breaks the convolution
#
# Mamba makes $\Delta_t$, $B_t$ and $C_t$ functions of the input token. The step now depends on what
# arrives, $h_t = e^{\Delta_t A} h_{t-1} + \Delta_t B_t u_t$, so there is no single kernel: the
# weight of $u_s$ in $y_t$ is $C_t \big(\prod_{r=s+1}^{t} e^{\Delta_r A}\big) \Delta_s B_s$, and it
# depends on every token in between. A convolution is *linear*: the response to $u + v$ is the sum
# of the responses. The selective scan is not. And its effective kernel, the sensitivity
# $\partial y_t / \partial u_{t-k}$, changes from one position to the next.

# %%
def selective_demo(inputs):
    """A toy selective SSM: Delta, B, C computed from the input itself (d_state must be even)."""
    delta = F.softplus(2 * inputs)  # (1, 1, L)
    B = torch.cat([inputs, inputs.tanh()], dim=1).repeat(1, d_state // 2, 1)  # (1, N, L)
    C = torch.cat([inputs.sigmoid(), -inputs], dim=1).repeat(1, d_state // 2, 1)
    return selective_scan_reference(inputs, delta, a_demo[None], B, C)


def convolution_demo(inputs):
    return F.conv1d(F.pad(inputs, (length - 1, 0)), kernel.flip(0)[None, None])


v = torch.randn(1, 1, length, generator=generator, dtype=torch.float64)
conv_linearity_gap = (convolution_demo(u + v) - convolution_demo(u) - convolution_demo(v)).abs().max().item()
selective_linearity_gap = (selective_demo(u + v) - selective_demo(u) - selective_demo(v)).abs().max().item()
print(f"response(u + v) - response(u) - response(v): convolution {conv_linearity_gap:.1e}, "
      f"selective scan {selective_linearity_gap:.2f}")

jacobian_conv = torch.autograd.functional.jacobian(lambda x: convolution_demo(x[None, None])[0, 0], u[0, 0])
jacobian_sel = torch.autograd.functional.jacobian(lambda x: selective_demo(x[None, None])[0, 0], u[0, 0])
lags = np.arange(12)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.5), sharey=False)
for ax, (title, jac) in zip(axes, [("time-invariant SSM (a convolution)", jacobian_conv),
                                   ("selective SSM", jacobian_sel)]):
    for t in (length // 2, length // 2 + 7, length - 1):
        ax.plot(lags, [jac[t, t - k].item() for k in lags], "o-", ms=3, label=f"output t = {t}")
    ax.set(title=title, xlabel="lag k", ylabel="$\\partial y_t / \\partial u_{t-k}$")
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4 · The selective scan: a loop, then a fast one
#
# `selective_scan_reference` is the loop above with batches, channels `(B, D, L)`, a skip term $D$
# and a gate $z$; it is the oracle. `selective_scan_chunked` computes the same thing in chunks of
# about $\sqrt{L}$ steps with a hand-written backward (itself a reverse scan of the adjoint
# $g_t = C_t\,\partial y_t + e^{\Delta_{t+1} A} g_{t+1}$), keeping one chunk of states in memory
# instead of all $B \cdot L \cdot D \cdot N$. Outputs and every gradient agree:

# %%
def scan_inputs(batch, channels, steps):
    tensors = dict(u=torch.randn(batch, channels, steps), delta=torch.randn(batch, channels, steps) - 1,
                   A=-torch.rand(channels, 16) * 4 - 0.5, B=torch.randn(batch, 16, steps),
                   C=torch.randn(batch, 16, steps), D=torch.randn(channels), z=torch.randn(batch, channels, steps))
    return {k: v.requires_grad_() for k, v in tensors.items()}


loop_inputs = scan_inputs(2, 8, 100)
fast_inputs = {k: v.detach().clone().requires_grad_() for k, v in loop_inputs.items()}
y_ref = selective_scan_reference(**loop_inputs, delta_softplus=True)
y_fast = selective_scan_chunked(**fast_inputs, delta_softplus=True)
y_ref.square().sum().backward()
y_fast.square().sum().backward()
scan_output_gap = (y_ref - y_fast).abs().max().item()
scan_grad_gap = max((loop_inputs[k].grad - fast_inputs[k].grad).abs().max().item() for k in loop_inputs)
print(f"chunked vs loop: output {scan_output_gap:.1e}, gradients {scan_grad_gap:.1e}")
assert scan_output_gap < 1e-4 and scan_grad_gap < 1e-3

# %% [markdown]
# `selective_scan_fused` runs the same recurrence as one C++ loop (`alignlib/ssm/kernels/selective_scan.cpp`,
# compiled on first use), parallel over (batch, channel); its backward is the same reverse scan,
# recomputing each chunk of 64 states from a checkpoint. `selective_scan(..., backend="auto")`
# picks it for CPU tensors. It agrees with the loop as well:

# %%
fused_inputs = {k: v.detach().clone().requires_grad_() for k, v in loop_inputs.items()}
y_fused = selective_scan_fused(**fused_inputs, delta_softplus=True)
y_fused.square().sum().backward()
fused_output_gap = (y_ref - y_fused).abs().max().item()
fused_grad_gap = max((loop_inputs[k].grad - fused_inputs[k].grad).abs().max().item() for k in loop_inputs)
print(f"fused vs loop: output {fused_output_gap:.1e}, gradients {fused_grad_gap:.1e}")
assert fused_output_gap < 1e-4 and fused_grad_gap < 1e-3

# %% [markdown]
# ### How fast can a scan be on a CPU?
#
# Count the work per **state element**, one $(b, d, n, t)$, for forward + backward. The forward
# forms $\bar A = e^{\Delta_t A_n}$ (one exp), updates $h \leftarrow \bar A h + (\Delta_t u_t) B_{t,n}$
# and adds $C_{t,n} h$ to $y_t$. The backward recomputes the state (one more exp) and runs the adjoint
# $g_t = \partial y_t\, C_t + \bar A_{t+1} g_{t+1}$ with the gradient terms it feeds. The *inputs*
# are small: $u_t, \Delta_t$ are shared by the $N$ states of a channel and $B_t, C_t$ by the $D$
# channels, so a loop that keeps the state in registers reads $4\,(2/N + 2/D)$ bytes per element
# in float32. Tensor code cannot keep anything in registers: every operation writes a result as large
# as the state to memory and the next one reads it back. Below, the passes over such
# $(B, D, N, L)$-sized tensors are counted from the chunked scan's code (approximate: a pass is one
# read or one write of every element).

# %%
scan_states, scan_channels = 16, 128
chunked_passes = {  # operation: passes over a (B, D, N, L)-sized tensor
    "forward: einsum + exp for exp(delta A)": 3, "forward: einsum for the drive": 1,
    "forward: recurrence (read decay, previous, drive; write state)": 4, "forward: read-out einsum": 1,
    "backward: recompute exp(delta A), drive, states": 8, "backward: adjoint read-in": 1,
    "backward: reverse recurrence": 4, "backward: previous states (cat)": 2,
    "backward: adjoint * previous * decay": 6, "backward: gradient einsums (delta, A, B, C, u)": 5,
}
per_element = {
    "fused": {"flops": 6 + 19, "exps": 2, "bytes": 4 * (2 / scan_states + 2 / scan_channels)},
    "chunked": {"flops": 6 + 19, "exps": 2, "bytes": 4 * sum(chunked_passes.values())},
}
for name, work in per_element.items():
    print(f"{name:>8}: {work['flops']} flops + {work['exps']} exps, {work['bytes']:.2f} bytes of memory traffic "
          f"per state element (forward + backward, N={scan_states}, D={scan_channels}, float32)")

# %% [markdown]
# The flops are the same; the bytes differ by more than a factor of 200. A rough limit for the
# arithmetic: about ten scalar operations per element, one per cycle at 3 GHz, that is 3.3 ns per
# element and core, about 0.11 s on one core or 0.06 s on two at $B=4, D=128, N=16, L=4096$. Below,
# the times of `benchmarks/bench_scan.py` (forward + backward, each case in its own process;
# mamba.py's parallel scan as a peer) as lines, this run's own measurement at `timing_lengths` as
# open markers, and that limit for the benchmark's thread count as a dashed line.

# %%
bench = json.loads((PROJECT_ROOT / "benchmarks" / "results" / "scan_cpu.json").read_text())
recorded: dict[str, dict[int, float]] = {}
for row in bench["rows"]:
    if "seconds" in row:
        recorded.setdefault(row["case"], {})[row["length"]] = row["seconds"]

scans = {"loop": selective_scan_reference, "chunked": selective_scan_chunked, "fused": selective_scan_fused}
live: dict[str, dict[int, float]] = {name: {} for name in scans}
for steps in timing_lengths:
    inputs = scan_inputs(4, scan_channels, steps)
    for name, scan in scans.items():
        times = []
        for _ in range(2):  # best of two: the first call of a length may pay for memory allocation
            leaves = {k: v.detach().clone().requires_grad_() for k, v in inputs.items()}
            start = time.perf_counter()
            scan(**leaves, delta_softplus=True).sum().backward()
            times.append(time.perf_counter() - start)
        live[name][steps] = min(times)


# %%
bench_threads = bench["machine"]["threads"]


def limit_seconds(steps, batch=4, channels=scan_channels, states=scan_states, ops=10, hertz=3e9, cores=bench_threads):
    return batch * channels * states * steps * ops / (hertz * cores)


colors = dict(zip(["loop", "chunked", "mambapy", "fused"], sns.color_palette("deep")))
fig, ax = plt.subplots(figsize=(9, 4.2))
for name, times in recorded.items():
    ax.plot(list(times), list(times.values()), "o-", color=colors.get(name), label=f"{name} (bench, threads: {bench_threads})")
for name, times in live.items():
    ax.plot(list(times), list(times.values()), "o", mfc="none", ms=10, color=colors[name],
            label=f"{name} (this run, threads: {torch.get_num_threads()})")
span = np.array(sorted({*timing_lengths, *(l for t in recorded.values() for l in t)}))
ax.plot(span, limit_seconds(span), "k--", label=f"limit: 10 scalar ops per element at 3 GHz, cores: {bench_threads}")
ax.set(xscale="log", yscale="log", xlabel="sequence length L", ylabel="forward + backward (s)",
       title="Selective scan on a CPU, B=4, D=128, N=16")
ax.set_xticks(span, [str(steps) for steps in span], minor=False)
ax.xaxis.set_minor_locator(plt.NullLocator())
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
fig.tight_layout()
plt.show()


# %%
for steps in span:
    cells = [f"{name} {times[steps]:.3f} s" for name, times in recorded.items() if steps in times]
    print(f"L = {steps:>5} (bench): " + ", ".join(cells) + f"; limit {limit_seconds(steps):.3f} s")
for steps in timing_lengths:
    print(f"L = {steps:>5} (this run): " + ", ".join(f"{name} {live[name][steps]:.3f} s" for name in scans))
if "fused" in recorded:
    longest = max(recorded["fused"])
    fused_time = recorded["fused"][longest]
    print(f"at L = {longest}: fused is {recorded['chunked'][longest] / fused_time:.1f}x the chunked scan, "
          + (f"{recorded['mambapy'][longest] / fused_time:.1f}x mamba.py's, " if "mambapy" in recorded else "")
          + f"and {fused_time / limit_seconds(longest):.2f}x the limit")

# %% [markdown]
# Why the fused loop beats vectorised tensor code here: the scan is sequential in $t$, so tensor code
# can only vectorise across $(B, D, N)$ and must materialise every intermediate, such as
# $e^{\Delta A}$, the drive and the states, in memory; each of its thirty-odd passes streams a
# tensor the size of the state through the caches, and the Python loop pays a few microseconds of
# dispatch per operation and step. mamba.py's parallel scan removes the Python loop over $t$ but
# does $O(\log L)$ passes over the whole $(B, L, D, N)$ tensor and keeps it all for the backward,
# hence its memory. The fused loop reads each input once, keeps the state in registers, computes the
# exp inline and still vectorises over the $N$ states of a channel (16 float32 lanes per AVX-512
# instruction), so it comes close to a *scalar* limit, or under it (the ratio printed above). What
# separates it from the vector hardware's own floor is the instruction count per step: the exp's
# polynomial alone is about fifteen vector instructions, the backward computes it again, and every
# step reduces the lanes of $C_t h_t$ to one output; the PyTorch operations around the kernel
# (softplus, skip term, gate, the transposes of $B$ and $C$) add a few passes over tensors $N$ times
# smaller than the state.
#
# On a GPU with mamba-ssm installed, `alignlib.ssm.selective_scan.selective_scan` dispatches to its CUDA
# kernel instead; the code that calls it does not change.

# %% [markdown]
# ## 5 · The Mamba block
#
# Around the scan, the block (mamba-ssm's layout and parameter names):
#
# 1. `in_proj` splits each token into a stream $x$ and a gate $z$ (width $2 \times$ `d_model`);
# 2. a depthwise causal `conv1d` (width 4) mixes a few neighbouring tokens, then SiLU;
# 3. `x_proj` reads $\Delta$ (low rank), $B_t$ and $C_t$ off each token; `dt_proj` lifts $\Delta$ to
#    every channel; its bias is initialised so that $\mathrm{softplus}(\text{bias}) \in [0.001, 0.1]$;
# 4. the selective scan with $A = -e^{A_{\log}}$ (S4D-real: $-1, -2, \dots, -N$) and skip $D$,
#    gated by $\mathrm{SiLU}(z)$;
# 5. `out_proj` back to `d_model`.
#
# We redo the block's forward by hand from its parameters and compare.

# %%
block = Mamba(d_model, d_state=16).double()
tokens = torch.randn(2, length, d_model, generator=generator, dtype=torch.float64)
with torch.no_grad():
    x, z = block.in_proj(tokens).chunk(2, dim=-1)
    x = F.silu(block.conv1d(x.transpose(1, 2))[..., :length])
    dt, B, C = block.x_proj(x.transpose(1, 2)).split([block.dt_rank, 16, 16], dim=-1)
    dt = F.softplus(dt @ block.dt_proj.weight.T + block.dt_proj.bias)
    y = selective_scan_reference(x, dt.transpose(1, 2), -torch.exp(block.A_log), B.transpose(1, 2),
                                 C.transpose(1, 2), block.D, z.transpose(1, 2))
    by_hand = block.out_proj(y.transpose(1, 2))
    block_gap = (by_hand - block(tokens)).abs().max().item()
print(f"block by hand vs Mamba.forward: {block_gap:.1e}")
assert block_gap < 1e-9

# %% [markdown]
# **Step mode.** For generation a model sees one token at a time. The block then keeps a cache: the
# last 4 inputs of the convolution and the SSM state $h_t$. Feeding the tokens one by one gives the
# same outputs as the full forward, at a constant cost per token.

# %%
with torch.no_grad():
    cache = block.allocate_cache(2, dtype=torch.float64)
    outputs = []
    for t in range(length):
        out, cache = block.step(tokens[:, t], cache)
        outputs.append(out)
    step_gap = (torch.stack(outputs, dim=1) - block(tokens)).abs().max().item()
print(f"step-by-step vs full forward: {step_gap:.1e}")
assert step_gap < 1e-10

# %% [markdown]
# ## 6 · What selectivity buys: selective copying
#
# The task (from the Mamba paper, scaled down): `copy_tokens` symbols are scattered among noise
# tokens over `copy_length` positions; then come `copy_tokens` "recall" markers, and at each the
# model must output the next symbol in order. The positions differ in every sequence, so a fixed
# convolution kernel cannot know where to look: the model has to *decide per token* whether to
# store it (large $\Delta$) or skip it (small $\Delta$).
#
# We train two one-layer models that differ only in the SSM: the selective Mamba block, and the
# same block with $\Delta$, $B$, $C$ replaced by learned constants (a time-invariant SSM).

# %%
def copying_batch(n, rng):
    """Sequences (n, copy_length + copy_tokens) and their targets (n, copy_tokens)."""
    sequences = torch.zeros(n, copy_length + copy_tokens, dtype=torch.long)
    symbols = torch.randint(2, copy_vocab, (n, copy_tokens), generator=rng)
    positions = torch.rand(n, copy_length, generator=rng).argsort(dim=1)[:, :copy_tokens].sort(dim=1).values
    sequences.scatter_(1, positions, symbols)
    sequences[:, copy_length:] = 1
    return sequences, symbols


class TimeInvariantMamba(Mamba):
    """The Mamba block with Delta, B and C learned constants instead of functions of the token."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.B_constant = nn.Parameter(torch.randn(self.d_state) / math.sqrt(self.d_state))
        self.C_constant = nn.Parameter(torch.randn(self.d_state) / math.sqrt(self.d_state))

    def ssm_parameters(self, x):
        tokens = x.shape[:-1]  # (B, L) in forward, (B,) in step mode
        dt = x.new_zeros(*tokens, self.d_inner)  # + dt_proj.bias inside the scan: constant per channel
        return dt, self.B_constant.expand(*tokens, -1), self.C_constant.expand(*tokens, -1)


class CopyModel(nn.Module):
    def __init__(self, mixer):
        super().__init__()
        self.embed = nn.Embedding(copy_vocab, d_model)
        self.layer = Block(d_model, mixer)  # the library's pre-norm residual block around either mixer
        self.head = nn.Linear(d_model, copy_vocab)

    def forward(self, sequences):
        hidden, _ = self.layer(self.embed(sequences))
        return self.head(hidden)[:, copy_length:]


# %%
test_sequences, test_symbols = copying_batch(1000, torch.Generator().manual_seed(seed + 1000))
curves, accuracy, copy_models = {}, {}, {}
for name, mixer_class in (("selective (Mamba)", Mamba), ("time-invariant SSM", TimeInvariantMamba)):
    torch.manual_seed(seed)
    model = CopyModel(mixer_class(d_model, d_state=16))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = torch.Generator().manual_seed(seed)
    curves[name] = []
    for _ in tqdm(range(train_steps), desc=name):
        sequences, symbols = copying_batch(batch_size, rng)
        loss = F.cross_entropy(model(sequences).reshape(-1, copy_vocab), symbols.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        curves[name].append(loss.item())
    with torch.no_grad():
        accuracy[name] = (model(test_sequences).argmax(-1) == test_symbols).float().mean().item()
    copy_models[name] = model


# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
for name, curve in curves.items():
    ax.plot(np.convolve(curve, np.ones(10) / 10, mode="valid"), label=f"{name}: test accuracy {accuracy[name]:.0%}")
ax.axhline(math.log(copy_vocab - 2), color="gray", ls="--", label="chance (uniform over symbols)")
ax.set(xlabel="Adam step", ylabel="cross-entropy (moving average)", title="selective copying, one layer")
ax.legend()
plt.show()
print({name: round(value, 3) for name, value in accuracy.items()}, f"chance = {1 / (copy_vocab - 2):.3f}")

# %% [markdown]
# The time-invariant model stays near chance: whatever its kernel, the symbols arrive at different
# lags in every sequence.
#
# ### What the selective model does with $\Delta_t$
#
# The usual reading of selectivity is that the trained model "opens its state for symbols and
# closes it for noise": a large $\Delta_t$ writes the token into the state ($\bar B_t = \Delta_t B_t$
# is large, and $\bar A_t = e^{\Delta_t A}$ forgets what was there), a small one lets the token pass
# while the state is kept. That is a claim about numbers, so we measure it. For the trained selective
# model and the test sequences, the block's normalised input `model.layer.norm(model.embed(seq))`
# gives the step sizes $\Delta_t = \mathrm{softplus}(\text{delta} + \text{dt\_proj.bias})$, one per
# channel and position, `(B, d_inner, L)`; we average them over the channels and over the tokens of each
# kind (symbol, noise, recall marker).

# %%
from alignlib.widgets.ssm import ImpulseResponseExplorer  # noqa: E402

selective_copier = copy_models["selective (Mamba)"]
with torch.no_grad():
    mixer = selective_copier.layer.mixer
    normalised = selective_copier.layer.norm(selective_copier.embed(test_sequences))
    step_sizes = F.softplus(mixer.scan_inputs(normalised)[0].delta + mixer.dt_proj.bias[:, None])  # (B, d_inner, L)
token_kinds = {"symbol": test_sequences >= 2, "noise": test_sequences == 0, "recall marker": test_sequences == 1}
channel_mean = step_sizes.mean(1)  # (B, L)
mean_delta = {kind: channel_mean[where].mean().item() for kind, where in token_kinds.items()}
# Per channel: mean Delta_t on symbols over mean Delta_t on noise.
per_channel = (step_sizes.permute(0, 2, 1)[token_kinds["symbol"]].mean(0)
               / step_sizes.permute(0, 2, 1)[token_kinds["noise"]].mean(0))
delta_symbol_noise_ratio = mean_delta["symbol"] / mean_delta["noise"]
for kind, value in mean_delta.items():
    print(f"mean Delta_t on {kind:>13} tokens: {value:.4f}")
print(f"symbol / noise: {delta_symbol_noise_ratio:.2f}; per channel the ratio ranges from {per_channel.min():.2f} "
      f"to {per_channel.max():.2f} (median {per_channel.median():.2f}); it is above 1 in "
      f"{(per_channel > 1).sum().item()} of {per_channel.numel()} channels")

# %% [markdown]
# The numbers do not support that reading for this model. Averaged over the channels, $\Delta_t$ is
# 0.060 on symbols, 0.064 on noise and 0.054 on the recall markers: symbols get 0.94 times the step
# size of noise, and channel by channel the ratio lies between 0.77 and 1.00, above 1 in one channel
# of 64. So the state does *not* open wider for symbols than for noise here. The model still copies
# 83% of the symbols (chance: 17%), so it selects by other means: what enters the state is
# $\Delta_t B_t x_t$, and $B_t$ and $x_t$ depend on the token as well, so they can carry the choice
# while $\Delta_t$ stays nearly constant (this notebook does not measure which of them does). The
# Mamba paper interprets $\Delta$ as the selection mechanism (a large $\Delta$ resets the state and
# focuses on the current input, a small one keeps the state and ignores the input); this one-layer
# model, trained for 300 steps, does not use $\Delta$ that way, so read that interpretation as a
# possibility of the architecture, not as what every trained model does.
#
# The explorer puts the two views side by side. Left, one SSM channel's impulse response
# $K_k = \Delta e^{k \Delta A}$ for the sliders $A$ and $\Delta$: a larger $\Delta$ writes more of the
# input and forgets faster (shorter half-life). Right, the trained model's $\Delta_t$ (mean over
# channels) along a test sequence chosen by the third slider, symbols in orange.

# %%
explorer_sequences = 20  # test sequences the explorer can show
impulse_explorer = ImpulseResponseExplorer(
    a=-1.0, delta=0.1, length=40,
    deltas=step_sizes[:explorer_sequences].permute(0, 2, 1).numpy(),  # (N, T, d_inner)
    tokens=test_sequences[:explorer_sequences].numpy(),
    is_symbol=token_kinds["symbol"][:explorer_sequences].numpy())
impulse_explorer

# %% [markdown]
# This is why the fusion layers of the next notebooks are selective SSMs, and also why their
# token *order* matters: Mamba reads a sequence once, left to right (the problem AlignMamba's
# alignment addresses).

# %% [markdown]
# ## Recorded metrics
#
# The regression suite compares these with `tests/baselines/03_mamba.json`.

# %%
record_metrics(
    metrics_path,
    zoh_error=zoh_error,
    rnn_cnn_gap=rnn_cnn_gap,
    selective_linearity_gap=selective_linearity_gap,
    scan_output_gap=scan_output_gap,
    scan_grad_gap=scan_grad_gap,
    fused_output_gap=fused_output_gap,
    fused_grad_gap=fused_grad_gap,
    block_gap=block_gap,
    step_gap=step_gap,
    accuracy_selective=accuracy["selective (Mamba)"],
    accuracy_time_invariant=accuracy["time-invariant SSM"],
    delta_symbol_noise_ratio=delta_symbol_noise_ratio,
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
# ### 1 · One exact ZOH step (§1)
#
# Write one step of the zero-order hold for the diagonal SSM $h' = a \odot h + b\,u$ with the input
# held at $u$ over a step $\Delta$: $h_t = e^{\Delta a} \odot h_{t-1} + \frac{e^{\Delta a} - 1}{a} \odot b\, u$, the exact
# $\bar B$, not Mamba's $\Delta b$.
#
# *The check*: your step against SciPy's ODE solver over one step of length $\Delta$, in two cases.

# %%
def zoh_step(h, u, a, b, delta):
    """state h (N,), input u (a number), rates a (N,) < 0, b (N,), step delta -> the next state (N,)."""
    ...  # your code


exercise.check("zoh_step", zoh_step)

# %% [markdown]
# ### 2 · The selective scan as a loop (§3, §4)
#
# Write the selective scan (no skip term, no gate) as a loop over time, for a batch of channels:
#
# $$h_t = e^{\Delta_t A} \odot h_{t-1} + \Delta_t B_t u_t, \qquad y_t = \langle C_t, h_t \rangle,$$
#
# with one state $h \in \mathbb{R}^N$ per (batch item, channel), $h_0 = 0$ before the first step,
# `delta` already positive (after softplus), and $B_t, C_t$ shared by the channels.
#
# *The check*: your output against `selective_scan_reference(u, delta, A, B, C)`.

# %%
def selective_scan_loop(u, delta, A, B, C):
    """u, delta (batch, D, L), A (D, N), B, C (batch, N, L) -> y (batch, D, L)."""
    ...  # your code


exercise.check("selective_scan_loop", selective_scan_loop)

# %% [markdown]
# ### 3 · The convolution kernel of a time-invariant SSM (§2)
#
# Write the kernel $K_k = C \bar A^k \bar B$ for lags $k = 0, \dots, L-1$, with $\bar A = e^{\Delta a}$ and Mamba's
# $\bar B = \Delta b$ (diagonal $A$: a sum over the $N$ states).
#
# *The check*: your kernel against the response of `selective_scan_reference` to a unit spike,
# lag by lag.

# %%
def impulse_response(a, b, c, delta, length):
    """a (N,) < 0, b (N,), c (N,), step delta, number of lags -> the kernel K (length,)."""
    ...  # your code


exercise.check("impulse_response", impulse_response)
