"""Interactive explorers for the notebooks.

Each explorer is a class that owns its ipywidgets controls (each with a ``description``) and a
plotly ``FigureWidget`` built with its real initial data; the controls' callbacks change the
figure, so what a test sees after setting a control is what a browser shows. ``explorer.title``
is the figure's title and ``explorer.figure.data`` its traces.

* :class:`TransportPlanExplorer` -- a transport plan against the true correspondence, for pairs
  from a pluggable :class:`PairSource` (:class:`SyntheticPairSource`, :class:`DataClipSource`,
  :class:`TrainedModelSource`).
* :class:`ExpertActivationBrowser` -- a trained AlignMamba-2's expert shares along one clip, per layer.
* :class:`MMDExplorer` -- MMD^2 between two Gaussians against the shift and the bandwidth.
* :class:`ImpulseResponseExplorer` -- an SSM impulse response, and a trained model's ``Delta_t``.
* :class:`CoupledPulseExplorer` -- a pulse through coupled state chains against the coupling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np
import torch

from alignlib import analysis
from alignlib.align import ot
from alignlib.align.mmd import gaussian_mmd2, mmd2
from alignlib.data.mmsa import MODALITIES
from alignlib.ssm.coupled import coupled_scan
from alignlib.warped_pairs import warped_pair

# A horizontal legend above the right-hand panel: it covers neither an axis title nor the data.
LEGEND_ABOVE_RIGHT = dict(orientation="h", x=1.0, xanchor="right", y=1.13, yanchor="bottom")


def watch(controls, callback) -> None:
    """Call ``callback`` whenever any of the ipywidgets ``controls`` changes its value."""
    for control in controls:
        control.observe(callback, names="value")


def locate(source, clip: str, modality_pair: str) -> tuple[int, str]:
    """A clip source's index of ``clip`` and the source modality of ``"audio -> text"``-style pairs."""
    if clip not in source.clips:
        raise ValueError(f"unknown clip {clip!r}")
    if modality_pair not in source.modality_pairs:
        raise ValueError(f"unknown modality pair {modality_pair!r}; choose one of {source.modality_pairs}")
    return source.clips.index(clip), modality_pair.split(" ->")[0]


METHODS = ("relaxed", "entropic", "exact")  # the plan methods (alignlib.align.ot.plan) the explorer offers
BLUR_LOG_RANGE, BLUR_LOG_STEP = (-2.5, 0.0), 0.05  # the blur slider: 10^-2.5 to 1 in steps of 0.05 decades


def on_log_grid(value: float, log_range: tuple[float, float], step: float) -> float:
    """``value`` moved to the nearest point ``10^(low + k step)`` of a log slider's range. A value off
    the grid would be snapped by the browser, and that change would come back to the kernel and
    recompute the figure while the page is still loading."""
    low, high = log_range
    exponent = low + step * round((math.log10(value) - low) / step)
    return 10 ** min(max(exponent, low), high)
# A plan is drawn, not trained on: an L1 marginal error of 1e-3 (0.1% of the mass) is invisible in
# a heatmap, and at blur >= BLUR the polishing reaches it well within the iteration cap.
EXPLORER_TOL = 1e-3
EXPLORER_MAX_ITER = 5000


def takes_blur(method: str) -> bool:
    """Whether the plan method ``method`` reads the blur (the slider is greyed out otherwise)."""
    return "blur" in ot.PLAN_METHODS[method].settings


class _Explorer:
    """Display and title shared by the explorers (``self.widget``, ``self.figure``)."""

    @property
    def title(self) -> str:
        """The title the figure shows."""
        return self.figure.layout.title.text

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


# -- transport plans ------------------------------------------------------------------------------
@dataclass
class AlignmentPair:
    """One pair to align: ``x (1, Tm, d)``, ``y (1, Tn, d)``, masks ``(1, Tm)``, ``(1, Tn)`` bool,
    and ``truth (1, Tm)``, the index of each source token's true target (-1 on padding)."""

    x: torch.Tensor
    y: torch.Tensor
    x_mask: torch.Tensor
    y_mask: torch.Tensor
    truth: torch.Tensor


class PairSource(Protocol):
    """Where :class:`TransportPlanExplorer` gets its pairs.

    ``clips`` and ``modality_pairs`` name what the explorer's two selectors offer (a selector with
    one option is hidden); ``controls`` are extra widgets that change the pair (the explorer
    observes them); ``pair(clip, modality_pair)`` returns an :class:`AlignmentPair`.
    """

    clips: Sequence[str]
    modality_pairs: Sequence[str]
    controls: Sequence

    def pair(self, clip: str, modality_pair: str) -> AlignmentPair: ...


class SyntheticPairSource:
    """Warped pairs (:func:`alignlib.warped_pairs.warped_pair`) with sliders for their lengths,
    noise and warp."""

    clips = ("synthetic",)
    modality_pairs = ("source -> target",)

    def __init__(self, n_source: int = 24, n_target: int = 16, noise: float = 0.5, warp: float = 1.0,
                 dim: int = 16, seed: int = 0):
        import ipywidgets as w

        self.dim, self.seed = dim, seed
        self.n_source = w.IntSlider(value=n_source, min=2, max=80, description="source Tm")
        self.n_target = w.IntSlider(value=n_target, min=2, max=80, description="target Tn")
        self.noise = w.FloatSlider(value=noise, min=0.0, max=3.0, step=0.05, description="noise")
        self.warp = w.FloatSlider(value=warp, min=-4.0, max=4.0, step=0.1, description="warp")
        self.controls = (self.n_source, self.n_target, self.noise, self.warp)

    def pair(self, clip: str, modality_pair: str) -> AlignmentPair:
        drawn = warped_pair(self.n_source.value, self.n_target.value, dim=self.dim, noise=self.noise.value,
                            warp=self.warp.value, seed=self.seed)
        return AlignmentPair(drawn.source, drawn.target, torch.ones(drawn.source.shape[:2], dtype=torch.bool),
                             torch.ones(drawn.target.shape[:2], dtype=torch.bool), drawn.correspondence)


class DataClipSource:
    """Clips of one MMSA split, each non-text modality projected into the text space and aligned
    with the text tokens; the truth is the generator's frame-to-word table.

    Args:
        split: an :class:`alignlib.data.mmsa.Split`.
        truth: ``{modality: (N, T_m) int}`` word index of every frame, -1 on padding.
        projections: ``{modality: f}`` with ``f((..., d_m) array) -> (..., d_text) array``.
    """

    controls = ()

    def __init__(self, split, truth: dict, projections: dict[str, Callable]):
        missing = [m for m in projections if m not in truth or m not in split.features]
        if missing:
            raise ValueError(f"no features or truth table for modality {missing[0]!r}")
        self.split, self.truth, self.projections = split, truth, projections
        self.clips = [str(i) for i in split.ids]
        self.modality_pairs = [f"{m} -> text" for m in projections]

    def pair(self, clip: str, modality_pair: str) -> AlignmentPair:
        index, modality = locate(self, clip, modality_pair)
        frames = self.projections[modality](self.split.features[modality][index])
        return AlignmentPair(
            torch.as_tensor(np.asarray(frames, dtype=np.float64))[None],
            torch.as_tensor(self.split.features["text"][index], dtype=torch.float64)[None],
            torch.as_tensor(self.split.masks[modality][index])[None],
            torch.as_tensor(self.split.masks["text"][index])[None],
            torch.as_tensor(self.truth[modality][index].astype(np.int64))[None],
        )


class TrainedModelSource:
    """Clips of one split through trained models: the tokens a model aligns
    (:func:`alignlib.analysis.token_states`: AlignMamba-2's ``H_A, H_V, H_L``, AlignMamba-1's
    projections), audio or video onto the words; a ``model`` selector picks among ``models``.

    Args:
        models: ``{name: AlignMamba1 or AlignMamba2}``.
        split: an :class:`alignlib.data.mmsa.Split`.
        truth: ``{modality: (N, T_m) int}`` word index of every frame, -1 on padding.
    """

    def __init__(self, models: dict, split, truth: dict):
        import ipywidgets as w

        if not models:
            raise ValueError("models: give at least one trained model")
        self.models, self.split, self.truth = dict(models), split, truth
        self.clips = [str(i) for i in split.ids]
        self.modality_pairs = [f"{m} -> text" for m in analysis.SOURCES if m in truth]
        if not self.modality_pairs:
            raise ValueError("truth: no table for audio or vision")
        self.model = w.Dropdown(options=list(self.models), description="model")
        self.controls = (self.model,)

    def pair(self, clip: str, modality_pair: str) -> AlignmentPair:
        index, modality = locate(self, clip, modality_pair)
        batch = analysis.clip_batch(self.split, [index])
        states = analysis.token_states(self.models[self.model.value], batch)
        return AlignmentPair(states[modality].double(), states["text"].double(), batch.masks[modality],
                             batch.masks["text"], torch.as_tensor(self.truth[modality][index].astype(np.int64))[None])


@dataclass
class PlanState:
    """One computed view over the real tokens: plan ``(Tm, Tn)``, cost matrix ``(Tm, Tn)``,
    truth ``(Tm,)``, the plan's cost, the share of recovered correspondences, and the L1 error of
    its column marginals."""

    plan: torch.Tensor
    cost_matrix: torch.Tensor
    truth: torch.Tensor
    cost: float
    accuracy: float
    marginal_error: float


def solve_plan(pair: AlignmentPair, method: str, blur: float, tol: float = EXPLORER_TOL,
               max_iter: int = EXPLORER_MAX_ITER) -> PlanState:
    """The plan of ``method`` (:func:`alignlib.align.ot.plan`) for one pair, cropped to its real tokens;
    ``tol`` and ``max_iter`` bound the entropic plan's polishing."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    plan = ot.plan(pair.x, pair.y, pair.x_mask, pair.y_mask, method=method, blur=blur, tol=tol, max_iter=max_iter)
    rows, cols = pair.x_mask[0], pair.y_mask[0]
    real_plan = plan[0][rows][:, cols]
    cost_matrix = ot.cosine_cost(pair.x, pair.y)[0][rows][:, cols]
    truth = pair.truth[0][rows]
    return PlanState(
        plan=real_plan,
        cost_matrix=cost_matrix,
        truth=truth,
        cost=(real_plan * cost_matrix).sum().item(),
        accuracy=ot.correspondence_accuracy(real_plan[None], truth[None]),
        marginal_error=(real_plan.sum(0) - 1.0 / len(real_plan[0])).abs().sum().item(),
    )


def compute_plan_state(method: str, n_source: int, n_target: int, noise: float, warp: float,
                       blur: float, dim: int = 16, seed: int = 0) -> PlanState:
    """The state :class:`TransportPlanExplorer` shows for a synthetic pair with these settings."""
    source = SyntheticPairSource(n_source, n_target, noise, warp, dim, seed)
    return solve_plan(source.pair("synthetic", "source -> target"), method, blur)


def _correspondence_lines(state: PlanState):
    """Segments from each source token (top row) to its heaviest target (bottom row), split into
    correct and wrong ones; ``None`` separates segments in one plotly trace."""
    n_source, n_target = state.plan.shape
    chosen = state.plan.argmax(dim=1).tolist()
    truth = state.truth.tolist()
    lines = {True: ([], []), False: ([], [])}
    for i, j in enumerate(chosen):
        xs, ys = lines[j == truth[i]]
        xs += [i / max(n_source - 1, 1), j / max(n_target - 1, 1), None]
        ys += [1.0, 0.0, None]
    return lines[True], lines[False]


class TransportPlanExplorer(_Explorer):
    """The plan heatmap (true targets circled) and the token correspondences for the method and
    blur chosen, on pairs from ``source`` (a :class:`PairSource`; default: a
    :class:`SyntheticPairSource` built from ``n_source, n_target, noise, warp, dim, seed``). The
    starting ``blur`` is moved to the nearest point of the slider (:func:`on_log_grid`: ``BLUR``
    becomes 10^-1.3 = 0.0501), and the plans use the slider's value.

    Display it as the last expression of a cell, or with ``display(explorer)``.
    """

    def __init__(self, method: str = "entropic", n_source: int = 24, n_target: int = 16,
                 noise: float = 0.5, warp: float = 1.0, blur: float = ot.BLUR, dim: int = 16, seed: int = 0,
                 source: PairSource | None = None, tol: float = EXPLORER_TOL, max_iter: int = EXPLORER_MAX_ITER):
        import ipywidgets as w
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
        self.source = source if source is not None else SyntheticPairSource(n_source, n_target, noise, warp, dim, seed)
        if not self.source.clips or not self.source.modality_pairs:
            raise ValueError("source: offers no clips or no modality pairs")
        self.tol, self.max_iter = tol, max_iter
        self.method = w.ToggleButtons(options=METHODS, value=method, description="method")
        self.blur = w.FloatLogSlider(value=on_log_grid(blur, BLUR_LOG_RANGE, BLUR_LOG_STEP), base=10,
                                     min=BLUR_LOG_RANGE[0], max=BLUR_LOG_RANGE[1], step=BLUR_LOG_STEP,
                                     description="blur", readout_format=".3f", disabled=not takes_blur(method))
        self.clip = w.Dropdown(options=list(self.source.clips), description="clip")
        self.modality_pair = w.Dropdown(options=list(self.source.modality_pairs), description="pair")
        selectors = [c for c in (self.clip, self.modality_pair) if len(c.options) > 1]
        self.controls = (self.method, self.blur, *selectors, *self.source.controls)

        state = self.compute()
        correct, wrong = _correspondence_lines(state)
        figure = make_subplots(rows=1, cols=2, column_widths=[0.42, 0.58], horizontal_spacing=0.16,
                               subplot_titles=("transport plan P (o = true target)", "token correspondence"))
        # The colorbar sits in the gap between the panels, clear of the right panel's tick labels.
        figure.add_trace(go.Heatmap(z=state.plan.numpy(), colorscale="Viridis", name="plan",
                                    colorbar=dict(x=0.385, xanchor="left", thickness=12, len=0.9)), row=1, col=1)
        figure.add_trace(go.Scatter(x=state.truth.numpy(), y=list(range(len(state.truth))), mode="markers",
                                    marker=dict(symbol="circle-open", color="magenta", size=9, line=dict(width=2)),
                                    name="true target"), row=1, col=1)
        figure.add_trace(go.Scatter(x=correct[0], y=correct[1], mode="lines", line=dict(color="seagreen"),
                                    name="recovered"), row=1, col=2)
        figure.add_trace(go.Scatter(x=wrong[0], y=wrong[1], mode="lines", line=dict(color="crimson"),
                                    name="missed"), row=1, col=2)
        figure.update_xaxes(title_text="target token j", row=1, col=1)
        figure.update_yaxes(title_text="source token i", autorange="reversed", row=1, col=1)
        figure.update_xaxes(showticklabels=False, row=1, col=2)
        figure.update_yaxes(tickvals=[0, 1], ticktext=["target", "source"], range=[-0.1, 1.1], row=1, col=2)
        figure.update_layout(title=dict(text=self._title(state), y=0.97), height=470, width=980,
                             margin=dict(t=110, b=60), legend=LEGEND_ABOVE_RIGHT)
        self.figure = go.FigureWidget(figure)
        self.state = state
        watch(self.controls, self._on_change)
        self.widget = w.VBox([w.HBox([self.method, self.blur]), w.HBox(selectors),
                              *[w.HBox(list(self.source.controls[i:i + 2]))
                                for i in range(0, len(self.source.controls), 2)], self.figure])

    def compute(self) -> PlanState:
        """The plan for the controls' current values."""
        pair = self.source.pair(self.clip.value, self.modality_pair.value)
        return solve_plan(pair, self.method.value, self.blur.value, self.tol, self.max_iter)

    def _title(self, state: PlanState) -> str:
        blur = f", blur {self.blur.value:.3f}" if not self.blur.disabled else ""
        where = f"clip {self.clip.value}, {self.modality_pair.value}: " if len(self.clip.options) > 1 else ""
        return (f"{where}{self.method.value}{blur}: cost <P, C> = {state.cost:.4f}, "
                f"correspondences recovered {state.accuracy:.0%}")

    def _on_change(self, _change) -> None:
        self.blur.disabled = not takes_blur(self.method.value)
        state = self.compute()
        correct, wrong = _correspondence_lines(state)
        with self.figure.batch_update():
            self.figure.data[0].z = state.plan.numpy()
            self.figure.data[1].x = state.truth.numpy()
            self.figure.data[1].y = list(range(len(state.truth)))
            self.figure.data[2].x, self.figure.data[2].y = correct
            self.figure.data[3].x, self.figure.data[3].y = wrong
            self.figure.layout.title.text = self._title(state)
        self.state = state


# -- expert activations --------------------------------------------------------------------------
EXPERT_NAMES = tuple(f"{m} expert" for m in MODALITIES) + ("shared expert",)


class ExpertActivationBrowser(_Explorer):
    """A trained AlignMamba-2's experts along one clip: each expert's share of every token's update
    in one fusion projection (heatmap over the packed sequence ``[H_A; H_V; H_L]``), and the mean
    shares per modality (stacked bars); for learned routing the title gives the routing mutual
    information in bits on this clip. Controls: clip and layer (projection).

    Args:
        model: an AlignMamba-2 with Modality-Aware Mamba fusion.
        split: an :class:`alignlib.data.mmsa.Split`.
    """

    def __init__(self, model, split, layer: str | None = None):
        import ipywidgets as w
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        self.model, self.split = model, split
        self.clips = [str(i) for i in split.ids]
        self.clip = w.Dropdown(options=self.clips, description="clip")
        layers = sorted(analysis.record_expert_activity(model, analysis.clip_batch(split, [0])).shares)
        if layer is not None and layer not in layers:
            raise ValueError(f"unknown layer {layer!r}; choose one of {layers}")
        self.layer = w.Dropdown(options=layers, value=layer or layers[0], description="layer")
        self.controls = (self.clip, self.layer)

        view = self.compute()
        figure = make_subplots(rows=1, cols=2, column_widths=[0.68, 0.32], horizontal_spacing=0.1,
                               subplot_titles=("share of each token's update ([H_A; H_V; H_L])",
                                               "mean share per modality"))
        figure.add_trace(go.Heatmap(z=view["shares"].T, y=list(EXPERT_NAMES), zmin=0, zmax=1, colorscale="Viridis",
                                    name="share", colorbar=dict(x=0.6, xanchor="left", thickness=12)), row=1, col=1)
        for e, name in enumerate(EXPERT_NAMES):
            figure.add_trace(go.Bar(x=list(MODALITIES), y=view["table"][:, e], name=name), row=1, col=2)
        figure.update_xaxes(title_text="token of the packed sequence", row=1, col=1)
        figure.update_yaxes(title_text="share", range=[0, 1], row=1, col=2)
        figure.update_layout(barmode="stack", title=dict(text=self._title(view), y=0.97), height=430, width=980,
                             margin=dict(t=110, b=60), legend=LEGEND_ABOVE_RIGHT)
        self.figure = go.FigureWidget(figure)
        self.view = view
        watch(self.controls, self._on_change)
        self.widget = w.VBox([w.HBox(list(self.controls)), self.figure])

    def compute(self) -> dict:
        """For the chosen clip and layer: ``shares (L, M + 1)`` over the clip's real tokens,
        ``modality (L,)`` ids, ``table (M, M + 1)`` (:func:`alignlib.analysis.share_table`) and
        ``mi`` (bits, None for deterministic routing)."""
        index = self.clips.index(self.clip.value)
        activity = analysis.record_expert_activity(self.model, analysis.clip_batch(self.split, [index]))
        real = activity.mask[0]
        router = self.layer.value.replace("_proj", "_router")
        mi = analysis.routing_mutual_information(activity).get(router)
        return {"shares": activity.shares[self.layer.value][0][real].double().numpy(),
                "modality": activity.modality[0][real].numpy(),
                "table": analysis.share_table(activity, self.layer.value), "mi": mi}

    def _title(self, view: dict) -> str:
        shared = ", ".join(f"{m} {view['table'][k, -1]:.0%}" for k, m in enumerate(MODALITIES))
        routing = "" if view["mi"] is None else f"; routing MI {view['mi']:.2f} bits (max {math.log2(3):.2f})"
        return f"clip {self.clip.value}, {self.layer.value}: shared expert's share {shared}{routing}"

    def _on_change(self, _change) -> None:
        view = self.compute()
        with self.figure.batch_update():
            self.figure.data[0].z = view["shares"].T
            for e in range(len(EXPERT_NAMES)):
                self.figure.data[1 + e].y = view["table"][:, e]
            self.figure.layout.title.text = self._title(view)
        self.view = view


# -- MMD ------------------------------------------------------------------------------------------
class MMDExplorer(_Explorer):
    """MMD^2 between ``P = N(0, I_d)`` and ``Q = N(s 1, sigma^2 I_d)`` under the kernel
    ``exp(-gamma |x - y|^2)``: the population value (closed form) against the shift and against
    the bandwidth, and the biased estimate from one draw of ``n_tokens`` tokens per set.

    Controls: shift ``s``, ``log10 gamma``, scale ``sigma`` of ``Q``.
    """

    def __init__(self, dim: int = 8, shift: float = 0.5, gamma: float | None = None, scale: float = 1.0,
                 n_tokens: int = 60, seed: int = 0):
        import ipywidgets as w
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        if dim < 1 or n_tokens < 2:
            raise ValueError(f"dim must be >= 1 and n_tokens >= 2, got dim={dim}, n_tokens={n_tokens}")
        self.dim, self.n_tokens, self.seed = dim, n_tokens, seed
        gamma = 1.0 / dim if gamma is None else gamma
        self.shift = w.FloatSlider(value=shift, min=0.0, max=3.0, step=0.05, description="shift s")
        centre = math.log10(gamma)  # the slider's grid passes through the initial gamma, so a browser keeps it
        self.gamma = w.FloatLogSlider(value=gamma, base=10, min=centre - 60 * 0.05, max=centre + 40 * 0.05, step=0.05,
                                      description="gamma", readout_format=".4f")
        self.scale = w.FloatLogSlider(value=scale, base=10, min=-0.6, max=0.6, step=0.02, description="sigma of Q",
                                      readout_format=".2f")
        self.controls = (self.shift, self.gamma, self.scale)
        self.shift_grid = np.linspace(0.0, 3.0, 61)
        self.gamma_grid = np.logspace(self.gamma.min, self.gamma.max, 61)

        view = self.compute()
        figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                               subplot_titles=("against the shift (gamma fixed)", "against the bandwidth (shift fixed)"))
        figure.add_trace(go.Scatter(x=self.shift_grid, y=view["by_shift"], mode="lines", line=dict(color="black"),
                                    name="population (closed form)"), row=1, col=1)
        figure.add_trace(go.Scatter(x=[self.shift.value], y=[view["estimate"]], mode="markers",
                                    marker=dict(color="darkorange", size=11), name=f"biased estimate, {n_tokens} tokens"),
                         row=1, col=1)
        figure.add_trace(go.Scatter(x=self.gamma_grid, y=view["by_gamma"], mode="lines", line=dict(color="black"),
                                    showlegend=False), row=1, col=2)
        figure.add_trace(go.Scatter(x=[self.gamma.value], y=[view["population"]], mode="markers",
                                    marker=dict(color="royalblue", size=11), name="current setting"), row=1, col=2)
        figure.update_xaxes(title_text="mean shift s (per coordinate)", row=1, col=1)
        figure.update_xaxes(title_text="gamma", type="log", row=1, col=2)
        figure.update_yaxes(title_text="MMD^2", row=1, col=1)
        figure.update_layout(title=dict(text=self._title(view), y=0.97), height=430, width=980,
                             margin=dict(t=110, b=60), legend=LEGEND_ABOVE_RIGHT)
        self.figure = go.FigureWidget(figure)
        self.view = view
        watch(self.controls, self._on_change)
        self.widget = w.VBox([w.HBox([self.shift, self.gamma, self.scale]), self.figure])

    def compute(self) -> dict:
        """Curves and values for the controls' current values."""
        shift, gamma, scale = self.shift.value, self.gamma.value, self.scale.value
        generator = torch.Generator().manual_seed(self.seed)
        x = torch.randn(1, self.n_tokens, self.dim, generator=generator, dtype=torch.float64)
        y = shift + scale * torch.randn(1, self.n_tokens, self.dim, generator=generator, dtype=torch.float64)
        return {
            "by_shift": np.array([gaussian_mmd2(s, gamma, self.dim, scale) for s in self.shift_grid]),
            "by_gamma": np.array([gaussian_mmd2(shift, g, self.dim, scale) for g in self.gamma_grid]),
            "population": gaussian_mmd2(shift, gamma, self.dim, scale),
            "estimate": mmd2(x, y, bandwidth=gamma).item(),
        }

    def _title(self, view: dict) -> str:
        return (f"s = {self.shift.value:.2f}, gamma = {self.gamma.value:.4f}, sigma = {self.scale.value:.2f}: "
                f"population MMD^2 = {view['population']:.4f}, biased estimate = {view['estimate']:.4f}")

    def _on_change(self, _change) -> None:
        view = self.compute()
        with self.figure.batch_update():
            self.figure.data[0].y = view["by_shift"]
            self.figure.data[1].x, self.figure.data[1].y = [self.shift.value], [view["estimate"]]
            self.figure.data[2].y = view["by_gamma"]
            self.figure.data[3].x, self.figure.data[3].y = [self.gamma.value], [view["population"]]
            self.figure.layout.title.text = self._title(view)
        self.view = view


# -- SSM impulse response and a trained model's step sizes ------------------------------------------
def impulse_response(a: float, delta: float, length: int) -> np.ndarray:
    """Kernel ``K_k = Delta exp(k Delta a)`` (``k = 0..length-1``) of the scalar SSM
    ``h_t = exp(Delta a) h_{t-1} + Delta u_t``, ``y_t = h_t`` (Mamba's ``Bbar = Delta B``, B = C = 1)."""
    if a >= 0 or delta <= 0:
        raise ValueError(f"need a < 0 and delta > 0, got a={a}, delta={delta}")
    return delta * np.exp(np.arange(length) * delta * a)


class ImpulseResponseExplorer(_Explorer):
    """Left: the impulse response of one SSM channel for the ``A`` and ``Delta`` sliders. Right
    (when ``deltas`` are given): a trained model's step size ``Delta_t``, averaged over channels,
    along one test sequence chosen by a slider, with the sequence's symbol tokens marked.

    Args:
        deltas: ``(N, T, D)`` step sizes (after softplus) of N test sequences, or None.
        tokens: ``(N, T)`` token ids of those sequences.
        is_symbol: ``(N, T)`` bool, True where the token is a symbol to remember.
    """

    def __init__(self, a: float = -1.0, delta: float = 0.1, length: int = 40, deltas=None, tokens=None,
                 is_symbol=None):
        import ipywidgets as w
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        self.length = length
        self.a = w.FloatLogSlider(value=-a, base=10, min=-2, max=1, step=0.05, description="-A")
        self.delta = w.FloatLogSlider(value=delta, base=10, min=-3, max=0.5, step=0.05, description="Delta",
                                      readout_format=".3f")
        self.controls = [self.a, self.delta]
        self.deltas = None
        if deltas is not None:
            self.deltas = np.asarray(deltas, dtype=np.float64).mean(axis=2)  # (N, T)
            self.tokens, self.is_symbol = np.asarray(tokens), np.asarray(is_symbol, dtype=bool)
            if self.tokens.shape != self.deltas.shape or self.is_symbol.shape != self.deltas.shape:
                raise ValueError(f"deltas (N, T, D), tokens and is_symbol (N, T) disagree: {np.shape(deltas)}, "
                                 f"{self.tokens.shape}, {self.is_symbol.shape}")
            self.sequence = w.IntSlider(value=0, min=0, max=len(self.deltas) - 1, description="test sequence")
            self.controls.append(self.sequence)

        kernel = impulse_response(-self.a.value, self.delta.value, length)
        columns = 2 if self.deltas is not None else 1
        titles = ("impulse response K_k = Delta exp(k Delta A)",) + (
            ("trained model: Delta_t along a test sequence",) if columns == 2 else ())
        figure = make_subplots(rows=1, cols=columns, subplot_titles=titles, horizontal_spacing=0.1)
        figure.add_trace(go.Scatter(x=list(range(length)), y=kernel, mode="lines+markers", name="K_k"), row=1, col=1)
        figure.update_xaxes(title_text="lag k", row=1, col=1)
        if columns == 2:
            steps, symbols = self._sequence_view()
            figure.add_trace(go.Bar(x=list(range(len(steps))), y=steps, marker_color=self._colours(), name="Delta_t",
                                    showlegend=False), row=1, col=2)
            figure.add_trace(go.Bar(x=[None], y=[None], marker_color="darkorange", name="symbol token"), row=1, col=2)
            figure.add_trace(go.Bar(x=[None], y=[None], marker_color="lightgray", name="noise / recall token"),
                             row=1, col=2)
            figure.update_xaxes(title_text="position t", row=1, col=2)
            figure.update_yaxes(title_text="mean Delta_t over channels", row=1, col=2)
        figure.update_layout(title=dict(text=self._title(kernel), y=0.96), height=460, width=980 if columns == 2 else 560,
                             margin=dict(t=140, b=60), legend=LEGEND_ABOVE_RIGHT)
        self.figure = go.FigureWidget(figure)
        watch(self.controls, self._on_change)
        self.widget = w.VBox([w.HBox(self.controls), self.figure])

    def _sequence_view(self):
        index = self.sequence.value
        return self.deltas[index], self.is_symbol[index]

    def _colours(self):
        return ["darkorange" if s else "lightgray" for s in self._sequence_view()[1]]

    def symbol_noise_ratio(self) -> float:
        """Mean ``Delta_t`` on symbol tokens over mean ``Delta_t`` on the others, over all sequences."""
        return float(self.deltas[self.is_symbol].mean() / self.deltas[~self.is_symbol].mean())

    def _title(self, kernel: np.ndarray) -> str:
        abar = math.exp(-self.delta.value * self.a.value)
        half_life = math.log(2) / (self.delta.value * self.a.value)
        text = f"A = {-self.a.value:.3g}, Delta = {self.delta.value:.3g}: Abar = {abar:.3f}, half-life {half_life:.1f} steps"
        if self.deltas is not None:
            steps, symbols = self._sequence_view()
            text += (f"<br>sequence {self.sequence.value}: mean Delta_t on symbols {steps[symbols].mean():.3f}, "
                     f"on other tokens {steps[~symbols].mean():.3f}")
        return text

    def _on_change(self, _change) -> None:
        kernel = impulse_response(-self.a.value, self.delta.value, self.length)
        with self.figure.batch_update():
            self.figure.data[0].y = kernel
            if self.deltas is not None:
                self.figure.data[1].y = self._sequence_view()[0]
                self.figure.data[1].marker.color = self._colours()
            self.figure.layout.title.text = self._title(kernel)


# -- coupled state chains -------------------------------------------------------------------------
class CoupledPulseExplorer(_Explorer):
    """A unit pulse in the first modality at ``pulse_at`` through ``M`` coupled scalar chains
    ``h_t^m = c Abar^m sum_k h_{t-1}^k + Delta x_t^m`` with ``Abar^m = exp(Delta a_m)``: the
    summed state grows by ``c sum_m Abar^m`` per step, so it blows up once that exceeds 1.

    Controls: coupling ``c`` and step ``Delta``; ``a`` ``(M,)`` negative, one per modality.
    """

    def __init__(self, a: Sequence[float] = (-0.5, -1.0, -2.0), delta: float = 0.1, coupling: float = 1.0,
                 length: int = 30, pulse_at: int = 5, names: Sequence[str] | None = None):
        import ipywidgets as w
        import plotly.graph_objects as go

        self.a = torch.tensor(list(a), dtype=torch.float64)
        if (self.a >= 0).any() or not 0 <= pulse_at < length:
            raise ValueError(f"need every a < 0 and 0 <= pulse_at < length, got a={list(a)}, pulse_at={pulse_at}")
        self.length, self.pulse_at = length, pulse_at
        self.names = list(names) if names is not None else [f"modality {m}" for m in range(len(self.a))]
        self.coupling = w.FloatSlider(value=coupling, min=0.0, max=1.5, step=0.01, description="coupling c",
                                      readout_format=".2f")
        self.delta = w.FloatLogSlider(value=delta, base=10, min=-3, max=0.5, step=0.05, description="Delta",
                                      readout_format=".3f")
        self.controls = (self.coupling, self.delta)

        norms = self.compute()
        figure = go.Figure()
        for m, name in enumerate(self.names):
            figure.add_trace(go.Scatter(x=list(range(length)), y=norms[m], mode="lines+markers", name=name))
        figure.update_xaxes(title_text="time step t")
        figure.update_yaxes(title_text="|h_t^m|", type="log", exponentformat="power")
        figure.update_layout(title=dict(text=self._title(), y=0.94), height=440, width=760, margin=dict(t=110),
                             legend=dict(x=1.02, xanchor="left", y=1.0))
        self.figure = go.FigureWidget(figure)
        watch(self.controls, self._on_change)
        self.widget = w.VBox([w.HBox(list(self.controls)), self.figure])

    def abar_sum(self) -> float:
        """``sum_m exp(Delta a_m)``."""
        return torch.exp(self.delta.value * self.a).sum().item()

    def growth(self) -> float:
        """``c sum_m exp(Delta a_m)``: the summed state's factor per step."""
        return self.coupling.value * self.abar_sum()

    def compute(self) -> np.ndarray:
        """``|h_t^m|`` of shape ``(M, length)`` from :func:`alignlib.ssm.coupled.coupled_scan` (NaN before the pulse)."""
        modalities = len(self.a)
        u = torch.zeros(modalities, 1, 1, self.length, dtype=torch.float64)
        u[0, 0, 0, self.pulse_at] = 1.0
        delta = torch.full_like(u, self.delta.value)
        ones = torch.ones(modalities, 1, 1, self.length, dtype=torch.float64)
        _, states = coupled_scan(u, delta, self.a[:, None, None], ones, ones, return_states=True,
                                 coupling=self.coupling.value)
        norms = states[:, :, 0, 0, 0].abs().numpy()  # (M, L)
        return np.where(norms > 0, norms, np.nan)  # no point before the pulse on the log axis

    def _title(self) -> str:
        factor = self.growth()
        verdict = "> 1: the pulse blows up" if factor > 1 else "<= 1: the pulse decays"
        return (f"c = {self.coupling.value:.2f}, Delta = {self.delta.value:.3f}: c * sum_m Abar^m = {factor:.3f} {verdict}"
                f"<br>(blow-up threshold c = 1 / sum_m Abar^m = {1 / self.abar_sum():.3f})")

    def _on_change(self, _change) -> None:
        norms = self.compute()
        with self.figure.batch_update():
            for m in range(len(self.names)):
                self.figure.data[m].y = norms[m]
            self.figure.layout.title.text = self._title()
