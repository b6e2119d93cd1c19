"""Interactive explorers for the notebooks. Each class owns its controls and a plotly
``FigureWidget`` built with its real initial data; callbacks change the figure, so what a test
sees after setting a control is what a browser shows."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from alignlib import ot
from alignlib.warped_pairs import warped_pair

METHODS = ("relaxed", "sinkhorn", "exact")


@dataclass
class PlanState:
    """One computed view: plan ``(Tm, Tn)``, cost matrix ``(Tm, Tn)``, truth ``(Tm,)``, scores."""

    plan: torch.Tensor
    cost_matrix: torch.Tensor
    truth: torch.Tensor
    cost: float
    accuracy: float


def compute_plan_state(method: str, n_source: int, n_target: int, noise: float, warp: float,
                       blur: float, dim: int = 16, seed: int = 0) -> PlanState:
    """Draw a warped pair (see :func:`alignlib.warped_pairs.warped_pair`) and solve its plan."""
    pair = warped_pair(n_source, n_target, dim=dim, noise=noise, warp=warp, seed=seed)
    if method == "relaxed":
        plan = ot.relaxed_plan(pair.source, pair.target)
    elif method == "sinkhorn":
        plan = ot.entropic_plan(pair.source, pair.target, blur=blur)
    else:
        plan = ot.exact_plan(pair.source, pair.target)
    cost_matrix = ot.cosine_cost(pair.source, pair.target)
    return PlanState(
        plan=plan[0],
        cost_matrix=cost_matrix[0],
        truth=pair.correspondence[0],
        cost=ot.plan_cost(plan, cost_matrix)[0].item(),
        accuracy=ot.correspondence_accuracy(plan, pair.correspondence),
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


class TransportPlanExplorer:
    """Sliders for the method, blur, sequence lengths, noise and warp of a synthetic pair, and a
    figure with the plan heatmap (true correspondences circled) and the token correspondences.

    Display it in a notebook as the last expression of a cell, or with ``display(explorer)``.
    """

    def __init__(self, method: str = "sinkhorn", n_source: int = 24, n_target: int = 16,
                 noise: float = 0.5, warp: float = 1.0, blur: float = 0.05, dim: int = 16, seed: int = 0):
        import ipywidgets as w
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
        self.dim, self.seed = dim, seed
        self.method = w.ToggleButtons(options=METHODS, value=method, description="method")
        self.blur = w.FloatLogSlider(value=blur, base=10, min=-2.5, max=0, step=0.05, description="blur",
                                     readout_format=".3f", disabled=method != "sinkhorn")
        self.n_source = w.IntSlider(value=n_source, min=2, max=80, description="source Tm")
        self.n_target = w.IntSlider(value=n_target, min=2, max=80, description="target Tn")
        self.noise = w.FloatSlider(value=noise, min=0.0, max=3.0, step=0.05, description="noise")
        self.warp = w.FloatSlider(value=warp, min=-4.0, max=4.0, step=0.1, description="warp")
        self.controls = (self.method, self.blur, self.n_source, self.n_target, self.noise, self.warp)

        state = self.compute()
        correct, wrong = _correspondence_lines(state)
        figure = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55],
                               subplot_titles=("transport plan P (o = true target)", "token correspondence"))
        figure.add_trace(go.Heatmap(z=state.plan.numpy(), colorscale="Viridis", colorbar=dict(x=0.42),
                                    name="plan"), row=1, col=1)
        figure.add_trace(go.Scatter(x=state.truth.numpy(), y=list(range(len(state.truth))), mode="markers",
                                    marker=dict(symbol="circle-open", color="white", size=9), name="true target"),
                         row=1, col=1)
        figure.add_trace(go.Scatter(x=correct[0], y=correct[1], mode="lines", line=dict(color="seagreen"),
                                    name="recovered"), row=1, col=2)
        figure.add_trace(go.Scatter(x=wrong[0], y=wrong[1], mode="lines", line=dict(color="crimson"),
                                    name="missed"), row=1, col=2)
        figure.update_xaxes(title_text="target token j", row=1, col=1)
        figure.update_yaxes(title_text="source token i", autorange="reversed", row=1, col=1)
        figure.update_xaxes(showticklabels=False, row=1, col=2)
        figure.update_yaxes(tickvals=[0, 1], ticktext=["target", "source"], range=[-0.1, 1.1], row=1, col=2)
        figure.update_layout(title=self._title(state), height=430, width=950, legend=dict(orientation="h"))
        self.figure = go.FigureWidget(figure)
        self.state = state
        for control in self.controls:
            control.observe(self._on_change, names="value")
        self.widget = w.VBox([w.HBox([self.method, self.blur]),
                              w.HBox([self.n_source, self.n_target]),
                              w.HBox([self.noise, self.warp]), self.figure])

    def compute(self) -> PlanState:
        """The plan for the controls' current values."""
        return compute_plan_state(self.method.value, self.n_source.value, self.n_target.value,
                                  self.noise.value, self.warp.value, self.blur.value, self.dim, self.seed)

    def _title(self, state: PlanState) -> str:
        blur = f", blur {self.blur.value:.3f}" if self.method.value == "sinkhorn" else ""
        return (f"{self.method.value}{blur}: cost <P, C> = {state.cost:.4f}, "
                f"correspondences recovered {state.accuracy:.0%}")

    def _on_change(self, _change) -> None:
        self.blur.disabled = self.method.value != "sinkhorn"
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

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
