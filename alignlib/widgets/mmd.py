"""The MMD explorer: MMD^2 between two Gaussians, the population value (closed form) against the
shift and the bandwidth, beside the biased estimate from one draw."""
from __future__ import annotations

import math

import numpy as np
import torch

from alignlib.align.mmd import gaussian_mmd2, mmd2
from alignlib.widgets.base import LEGEND_ABOVE_RIGHT, Explorer, watch


class MMDExplorer(Explorer):
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
