"""Explorers of trained models: the plan explorer's :class:`TrainedModelSource` (a model's token
states, audio or video onto the words) and the :class:`ExpertActivationBrowser` (a trained
AlignMamba-2's expert shares along one clip, per layer)."""
from __future__ import annotations

import math

import numpy as np
import torch

from alignlib import analysis
from alignlib.data.mmsa import MODALITIES
from alignlib.widgets.base import LEGEND_ABOVE_RIGHT, Explorer, watch
from alignlib.widgets.plans import AlignmentPair, locate


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


EXPERT_NAMES = tuple(f"{m} expert" for m in MODALITIES) + ("shared expert",)


class ExpertActivationBrowser(Explorer):
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
