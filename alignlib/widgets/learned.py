"""The learned-plan explorer (notebook 10): a model's own frame-to-word plan on one clip at one epoch of
training, against the true word of every frame, with the clip's accuracy across the epochs.

It shows plans computed beforehand (one :func:`alignlib.analysis.correspondences` result per epoch,
read by attribute), so it imports neither the models nor the trainer."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from alignlib.widgets.base import LEGEND_ABOVE_RIGHT, Explorer, watch


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def clip_view(epoch, clip: int, modality: str, method: str = "model") -> dict:
    """One clip of one epoch's plans (an object with ``plans[(modality, method)] (B, T_m, T_l)``,
    ``truth[modality] (B, T_m)`` and ``masks``), over its real frames and words: ``plan (n, W)`` with
    each frame's row scaled to sum to 1 (a frame with no mass, a missing modality, stays 0),
    ``truth (n,)`` and ``guess (n,)`` (the heaviest word) as indices among the real words, and
    ``accuracy``, the share of the clip's frames whose heaviest word is their true one."""
    frames = _numpy(epoch.masks[modality][clip]).astype(bool)
    words = _numpy(epoch.masks["text"][clip]).astype(bool)
    plan = _numpy(epoch.plans[(modality, method)][clip]).astype(np.float64)[frames][:, words]
    mass = plan.sum(1, keepdims=True)
    plan = np.divide(plan, mass, out=np.zeros_like(plan), where=mass > 0)
    rank = np.cumsum(words) - 1  # a word's place among the real words
    truth = _numpy(epoch.truth[modality][clip])[frames]
    truth = np.where(truth >= 0, rank[np.clip(truth, 0, None)], -1)
    guess = plan.argmax(1)
    return {"plan": plan, "truth": truth, "guess": guess,
            "accuracy": float((guess == truth).mean()) if len(truth) else float("nan")}


class LearnedPlanExplorer(Explorer):
    """A model's own plan on one clip at one epoch: the heatmap of each frame's mass over the words
    (frames run left to right, a monotone plan climbs a staircase), the true word of every frame
    (circles) and the heaviest word (crosses: green on the true word, red elsewhere); on the right the
    clip's accuracy at every epoch (the selected one marked) beside the accuracy over all the clips.
    Controls: run (hidden with one run), clip, epoch, modality.

    Args:
        runs: ``{name: [epoch 0, epoch 1, ...]}`` (or one such list): per epoch, the plans on the same
            clips as :func:`alignlib.analysis.correspondences` returns them (``plans``, ``truth``,
            ``masks``, ``accuracy``; epoch 0 is the initial model).
        clip_ids: a name for each clip (default: its index).
        method: the plan shown, a method of ``plans`` (``"model"``: the model's own plan).
    """

    def __init__(self, runs: Mapping[str, Sequence] | Sequence, clip_ids: Sequence | None = None,
                 method: str = "model", modality: str = "audio", run: str | None = None):
        import ipywidgets as w
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        self.runs = dict(runs) if isinstance(runs, Mapping) else {"run": list(runs)}
        if not self.runs or any(len(epochs) == 0 for epochs in self.runs.values()):
            raise ValueError("runs: give at least one run with at least one epoch")
        first = next(iter(self.runs.values()))[0]
        n_clips = len(_numpy(first.masks["text"]))
        if any(len(_numpy(e.masks["text"])) != n_clips for epochs in self.runs.values() for e in epochs):
            raise ValueError("runs: every epoch must hold the same clips")
        modalities = [m for m in first.truth if (m, method) in first.plans]
        if modality not in modalities:
            raise ValueError(f"modality: no {method!r} plan for {modality!r}; choose one of {modalities}")
        if run is not None and run not in self.runs:
            raise ValueError(f"run: unknown {run!r}; choose one of {list(self.runs)}")
        self.method = method
        self.clip_ids = [str(c) for c in (range(n_clips) if clip_ids is None else clip_ids)]
        if len(self.clip_ids) != n_clips:
            raise ValueError(f"clip_ids: expected {n_clips} names, got {len(self.clip_ids)}")
        self.run = w.Dropdown(options=list(self.runs), value=run or next(iter(self.runs)), description="run")
        self.clip = w.IntSlider(value=0, min=0, max=n_clips - 1, description="clip")
        self.epoch = w.IntSlider(value=0, min=0, max=len(self.runs[self.run.value]) - 1, description="epoch")
        self.modality = w.ToggleButtons(options=modalities, value=modality, description="modality")
        self.controls = ((self.run,) if len(self.runs) > 1 else ()) + (self.clip, self.epoch, self.modality)

        view = self.compute()
        figure = make_subplots(rows=1, cols=2, column_widths=[0.66, 0.34], horizontal_spacing=0.12,
                               subplot_titles=("each frame's mass over the words (o = true word)",
                                               "frames on their true word"))
        figure.add_trace(go.Heatmap(z=view["plan"].T, zmin=0, zmax=1, colorscale="Viridis", name="plan",
                                    colorbar=dict(x=0.6, xanchor="left", thickness=12, len=0.9)), row=1, col=1)
        figure.add_trace(go.Scatter(x=view["frames"], y=view["truth"], mode="markers", name="true word",
                                    marker=dict(symbol="circle-open", color="magenta", size=8, line=dict(width=2))),
                         row=1, col=1)
        for k, (name, color) in enumerate((("heaviest: right", "seagreen"), ("heaviest: wrong", "crimson"))):
            hit = view["guess"] == view["truth"]
            chosen = hit if k == 0 else ~hit
            figure.add_trace(go.Scatter(x=view["frames"][chosen], y=view["guess"][chosen], mode="markers", name=name,
                                        marker=dict(symbol="x", color=color, size=6)), row=1, col=1)
        figure.add_trace(go.Scatter(x=view["epochs"], y=view["curve"], mode="lines+markers", name="this clip",
                                    line=dict(color="#1f77b4")), row=1, col=2)
        figure.add_trace(go.Scatter(x=view["epochs"], y=view["all_clips"], mode="lines", name="all clips",
                                    line=dict(color="gray", dash="dash")), row=1, col=2)
        figure.add_trace(go.Scatter(x=[self.epoch.value], y=[view["accuracy"]], mode="markers", name="selected epoch",
                                    marker=dict(color="orange", size=12, symbol="diamond")), row=1, col=2)
        figure.update_xaxes(title_text="frame (time)", row=1, col=1)
        figure.update_yaxes(title_text="word", row=1, col=1)
        figure.update_xaxes(title_text="epoch", row=1, col=2)
        figure.update_yaxes(range=[-0.02, 1.02], row=1, col=2)
        figure.update_layout(title=dict(text=self._title(view), y=0.97), height=450, width=1000,
                             margin=dict(t=110, b=60), legend=LEGEND_ABOVE_RIGHT)
        self.figure = go.FigureWidget(figure)
        self.view = view
        watch(self.controls, self._on_change)
        self.widget = w.VBox([w.HBox([c for c in (self.run, self.modality) if c in self.controls]),
                              w.HBox([self.clip, self.epoch]), self.figure])

    def compute(self) -> dict:
        """For the controls' values: :func:`clip_view` plus ``frames`` (0..n-1), ``epochs``, ``curve``
        (this clip's accuracy at every epoch of the run) and ``all_clips`` (every clip's frames pooled)."""
        epochs = self.runs[self.run.value]
        modality, clip = self.modality.value, self.clip.value
        view = clip_view(epochs[min(self.epoch.value, len(epochs) - 1)], clip, modality, self.method)
        view["frames"] = np.arange(len(view["truth"]))
        view["epochs"] = np.arange(len(epochs))
        view["curve"] = np.array([clip_view(e, clip, modality, self.method)["accuracy"] for e in epochs])
        view["all_clips"] = np.array([e.accuracy[modality][self.method] for e in epochs])
        return view

    def _title(self, view: dict) -> str:
        where = f"{self.run.value}, " if len(self.runs) > 1 else ""
        return (f"{where}clip {self.clip_ids[self.clip.value]}, {self.modality.value}, epoch {self.epoch.value}: "
                f"{view['accuracy']:.0%} of its {len(view['truth'])} frames on their true word "
                f"(all clips {view['all_clips'][min(self.epoch.value, len(view['all_clips']) - 1)]:.0%})")

    def _on_change(self, change) -> None:
        if change is not None and change.get("owner") is self.run:
            self.epoch.max = len(self.runs[self.run.value]) - 1  # clamps the epoch, which calls back once more
        view = self.compute()
        hit = view["guess"] == view["truth"]
        with self.figure.batch_update():
            self.figure.data[0].z = view["plan"].T
            self.figure.data[1].x, self.figure.data[1].y = view["frames"], view["truth"]
            self.figure.data[2].x, self.figure.data[2].y = view["frames"][hit], view["guess"][hit]
            self.figure.data[3].x, self.figure.data[3].y = view["frames"][~hit], view["guess"][~hit]
            self.figure.data[4].x, self.figure.data[4].y = view["epochs"], view["curve"]
            self.figure.data[5].x, self.figure.data[5].y = view["epochs"], view["all_clips"]
            self.figure.data[6].x, self.figure.data[6].y = [self.epoch.value], [view["accuracy"]]
            self.figure.layout.title.text = self._title(view)
        self.view = view
