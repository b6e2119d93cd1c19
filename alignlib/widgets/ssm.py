"""SSM explorers: one channel's impulse response (and a trained model's step sizes along a
sequence), and a pulse through Coupled Mamba's coupled state chains."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from alignlib.ssm.coupled import coupled_scan
from alignlib.widgets.base import LEGEND_ABOVE_RIGHT, Explorer, watch


def impulse_response(a: float, delta: float, length: int) -> np.ndarray:
    """Kernel ``K_k = Delta exp(k Delta a)`` (``k = 0..length-1``) of the scalar SSM
    ``h_t = exp(Delta a) h_{t-1} + Delta u_t``, ``y_t = h_t`` (Mamba's ``Bbar = Delta B``, B = C = 1)."""
    if a >= 0 or delta <= 0:
        raise ValueError(f"need a < 0 and delta > 0, got a={a}, delta={delta}")
    return delta * np.exp(np.arange(length) * delta * a)


class ImpulseResponseExplorer(Explorer):
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


class CoupledPulseExplorer(Explorer):
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
