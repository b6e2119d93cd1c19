"""The transport-plan explorer: a plan (:func:`alignlib.align.ot.plan`) against the true
correspondence, for pairs from a pluggable :class:`PairSource` (:class:`SyntheticPairSource`,
:class:`DataClipSource`; :class:`alignlib.widgets.trained.TrainedModelSource` for trained models)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np
import torch

from alignlib.align import ot
from alignlib.data.warped_pairs import warped_pair
from alignlib.widgets.base import LEGEND_ABOVE_RIGHT, Explorer, watch

METHODS = ("relaxed", "entropic", "exact")  # the plan methods the explorer offers
BLUR_LOG_RANGE, BLUR_LOG_STEP = (-2.5, 0.0), 0.05  # the blur slider: 10^-2.5 to 1 in steps of 0.05 decades
# A plan is drawn, not trained on: an L1 marginal error of 1e-3 (0.1% of the mass) is invisible in
# a heatmap, and at blur >= BLUR the polishing reaches it well within the iteration cap.
EXPLORER_TOL = 1e-3
EXPLORER_MAX_ITER = 5000


def on_log_grid(value: float, log_range: tuple[float, float], step: float) -> float:
    """``value`` moved to the nearest point ``10^(low + k step)`` of a log slider's range. A value off
    the grid would be snapped by the browser, and that change would come back to the kernel and
    recompute the figure while the page is still loading."""
    low, high = log_range
    exponent = low + step * round((math.log10(value) - low) / step)
    return 10 ** min(max(exponent, low), high)


def takes_blur(method: str) -> bool:
    """Whether the plan method ``method`` reads the blur (the slider is greyed out otherwise)."""
    return "blur" in ot.PLAN_METHODS[method].settings


def locate(source, clip: str, modality_pair: str) -> tuple[int, str]:
    """A clip source's index of ``clip`` and the source modality of ``"audio -> text"``-style pairs."""
    if clip not in source.clips:
        raise ValueError(f"unknown clip {clip!r}")
    if modality_pair not in source.modality_pairs:
        raise ValueError(f"unknown modality pair {modality_pair!r}; choose one of {source.modality_pairs}")
    return source.clips.index(clip), modality_pair.split(" ->")[0]


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
    """Warped pairs (:func:`alignlib.data.warped_pairs.warped_pair`) with sliders for their lengths,
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


class TransportPlanExplorer(Explorer):
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
