"""The inside sweep (notebook 07): AlignMamba-2's claim that its OT and MMD losses align each frame
with its word, and its experts' activity. Each variant is trained with a checkpoint per epoch, and
every checkpoint (epoch 0 being the initial model) is summarised by
:func:`alignlib.analysis.checkpoint_summary` on the first test clips: its plans scored against the
synthetic truth, its alignment losses, expert shares and routing mutual information.

Notebook 07's view of the committed record: pure functions returning DataFrames (:func:`plan_table`,
:func:`loss_table`, :func:`comparisons`, :func:`test_mae`, :func:`share_changes`, :func:`routing_mi`,
:func:`spread_table`), :func:`summary` (the answer in sentences) and :func:`show` (displays them)."""
from __future__ import annotations

import json
from pathlib import Path

from alignlib.align.ot import BLUR
from alignlib.data.mmsa import SPOKEN_NAMES
from alignlib.experiments import plots, stats, training
from alignlib.experiments.sweep import RUN_OVERHEAD_S, Sweep, run_id

VARIANTS = {"AM2 with losses": ("alignmamba2", {}), "AM2 without losses": ("alignmamba2", {"align_loss": False}),
            "AM2 OT weight 1": ("alignmamba2", {"lambda_ot": 1.0}), "AlignMamba-1": ("alignmamba1", {}),
            "AM2 learned routing": ("alignmamba2", {"routing": "learned"}),
            "AlignMamba-1 learned plan": ("alignmamba1", {"plan": "learned"})}
# the estimate, for MOSI-sized clips (an upper bound for the tiny ones): seconds per epoch at
# d_model 64 (benchmarks/results/training_cpu.json), and per scored clip and checkpoint
MOSI_EPOCH_SECONDS = {"alignmamba1": 7.9, "alignmamba2": 45.5}  # with its validation and test evaluation
SECONDS_PER_CLIP = {"alignmamba1": 0.25, "alignmamba2": 1.0}
CONTROL_CLIPS = 300  # training clips whose states give the controls' means, whitening and probe


def grid(settings: dict) -> list[dict]:
    """The trained models of notebook 07, each with every epoch's checkpoint analysed, and the data's reference lines."""
    return [training.references_run(settings)] + [{**training.training_run(label, model, options, seed, settings), "kind": "inside",
             "analysis": {"clips": settings["clips"], "blur": settings["blur"]}}
            for label, (model, options) in VARIANTS.items() for seed in settings["seeds"]]


@training.with_references
def execute(run: dict, root: Path, device: str) -> tuple[dict, list[dict]]:
    """Train with a checkpoint per epoch (:func:`alignlib.analysis.train_keeping_epochs`, resumable
    epoch by epoch), then one row per checkpoint, epoch 0 being the initial model:
    :func:`alignlib.analysis.checkpoint_summary` on the first test clips, and on the last row the
    test metrics of the checkpoint best on validation (``test_*``, from epoch ``test_best_epoch``)
    and the last checkpoint's :func:`alignlib.analysis.state_controls` (statistics and probe from the
    first :data:`CONTROL_CLIPS` training clips)."""
    from alignlib import analysis
    from alignlib.data import load_mmsa
    from alignlib.models.checkpoint import load_model

    config = training.train_config(run, root, device)
    kept = analysis.train_keeping_epochs(config)
    test = load_mmsa(config.data).splits["test"]
    clips, blur = range(min(run["analysis"]["clips"], len(test))), run["analysis"]["blur"]
    rows = [{"epoch": epoch, "metrics": summary}
            for epoch, summary in enumerate(analysis.epoch_summaries(config, kept, test, test.alignment, clips, blur))]
    tested = json.loads((Path(config.out) / "test_metrics.json").read_text())  # the checkpoint best on validation
    rows[-1]["metrics"].update({f"test_{k}": v for k, v in tested.items() if k not in ("epoch", "test_missing_rate")
                                and (isinstance(v, (int, float)) or k in training.CONVERGENCE)})
    rows[-1]["metrics"]["test_best_epoch"] = tested["epoch"]
    train = load_mmsa(config.data).splits["train"]
    last = load_model(kept[-1])[0] if kept else analysis.initial_model(config)
    rows[-1]["metrics"].update(analysis.state_controls(last, train, test, range(min(CONTROL_CLIPS, len(train))), clips))
    return {**training.recorded(config, root), "analysis": run["analysis"]}, rows


def estimate(run: dict) -> float:
    """Training, a test evaluation per epoch and the plans of every checkpoint (epoch 0's too)."""
    from alignlib.data import synthetic

    if run["kind"] == "references":
        return training.estimate(run)
    data, train = run["data"], run["train"]
    preset = synthetic.PRESETS[data["preset"]]
    length = sum(preset["lengths"].values()) / sum(synthetic.PRESETS["mosi"]["lengths"].values())
    clips = (data["n_clips"] or sum(preset["splits"])) / sum(synthetic.PRESETS["mosi"]["splits"])
    epoch = MOSI_EPOCH_SECONDS[train["model"]] * train["model_options"]["d_model"] / 64 * clips * length
    plans = SECONDS_PER_CLIP[train["model"]] * run["analysis"]["clips"] * length
    epochs = min(train["epochs"], training.EXPECTED_EPOCHS)
    return RUN_OVERHEAD_S + epochs * epoch + (epochs + 1) * plans


# Each variant on the first `clips` test clips. The full profile trains to convergence on the short
# preset (MOSI's clips and widths, 16-word clips; training.SIZES) and scores 200 test clips per epoch.
SWEEP = Sweep(
    name="inside",
    reproduces="AlignMamba-2's claim that its OT and MMD losses align each frame with its word "
               "(against the synthetic truth), and its experts' activity",
    profiles={"default": {"data": {"preset": "tiny", "n_clips": None, "seed": 0}, "epochs": 3, "patience": 3,
                          "max_steps": 0, "batch_size": 16, "d_model": 16, "n_layers": 2, "clips": 8, "blur": BLUR,
                          "seeds": (0,)},
              "full": {**training.SIZES["full"], "clips": 200, "blur": BLUR, "seeds": (0, 1, 2)}},
    grid=grid, execute=execute, estimate=estimate, notebook="07_inside_trained_models")


# -- notebook 07's view of the committed record -------------------------------------------------------
PLAN_VARIANTS = tuple(v for v in VARIANTS if v != "AM2 learned routing")  # whose plans are scored in the table
BASELINE = "AM2 without losses"  # what the variants with alignment losses are compared with
WITH_LOSSES = ("AM2 with losses", "AM2 OT weight 1")
COMPARED = ("audio_exact", "vision_exact", "ot", "mmd", "test_MAE")  # their paired comparisons at the end
PLAN_METHODS = ("exact", "entropic", "relaxed", "model")  # "model": AlignMamba-1's own plan
NO_CHANGE = "no change"  # the zero that a change from initialisation is tested against
# the converged AlignMamba-2 variants of the ablations sweep (same data and sizes), whose states' spread it records
SPREAD_VARIANTS = ("AlignMamba-2", "w/o OT loss", "w/o MMD loss", "w/o dual alignment loss")


def checkpoints(record: dict):
    """The trained runs' tidy rows (:func:`training.split`) at initialisation (epoch 0,
    ``checkpoint`` "init") and at each run's last checkpoint ("end": early stopping ends each run at
    its own epoch; the ``test_*`` metrics, of the checkpoint best on validation, sit on that row)."""
    import pandas as pd

    _, runs = training.split(record)
    last = runs.groupby("run").epoch.transform("max")
    return pd.concat([runs[runs.epoch == 0].assign(checkpoint="init"), runs[runs.epoch == last].assign(checkpoint="end")],
                     ignore_index=True)


def _cells(record: dict):
    """:func:`~alignlib.experiments.stats.summary` per variant, checkpoint and metric, indexed by them."""
    return stats.summary(checkpoints(record), ["variant", "checkpoint"]).set_index(["variant", "checkpoint", "metric"])


def plan_table(record: dict):
    """One row per plan variant, modality and method: the share of frames whose heaviest plan entry is
    their true word at initialisation (``init``) and at the end (``end`` with ``ci_low, ci_high``, 95 %
    over seeds), the ``proportional`` guess (reads no state), ``chance`` (a word drawn uniformly) and
    ``position`` of the end interval: "above the proportional guess", "below the proportional guess,
    above chance", "not above chance" (or "one seed")."""
    import pandas as pd

    cells, rows = _cells(record), []
    for variant in [v for v in PLAN_VARIANTS if (v, "end") in cells.index.droplevel("metric")]:
        for modality in ("audio", "vision"):
            guess = cells.loc[(variant, "init", f"{modality}_proportional"), "mean"]
            chance = cells.loc[(variant, "init", f"{modality}_chance"), "mean"]
            for method in PLAN_METHODS:
                if (variant, "end", f"{modality}_{method}") not in cells.index:
                    continue
                end = cells.loc[(variant, "end", f"{modality}_{method}")]
                position = ("one seed" if end.n < 2 else "above the proportional guess" if end.ci_low > guess else
                            "below the proportional guess, above chance" if end.ci_low > chance else "not above chance")
                rows.append({"variant": variant, "modality": modality, "method": method,
                             "init": cells.loc[(variant, "init", f"{modality}_{method}"), "mean"], "end": end["mean"],
                             "ci_low": end.ci_low, "ci_high": end.ci_high, "proportional": guess, "chance": chance,
                             "position": position, "n": int(end.n)})
    return pd.DataFrame(rows)


CONTROLS = {"exact": "exact plan, raw states", "exact_centred": "exact plan, centred", "exact_whitened": "exact plan, whitened",
            "probe": "linear probe with the tables", "probe_r2": "probe R²"}  # analysis.state_controls, beside the raw plan


def control_table(record: dict):
    """The controls of the anisotropy confound at the end of training (:func:`alignlib.analysis.state_controls`),
    beside the raw exact plan: per plan variant, modality and :data:`CONTROLS` measure ``n, mean,
    ci_low, ci_high`` over seeds, and the variant's ``chance``. Empty for a record made before the controls."""
    import pandas as pd

    ends = checkpoints(record)
    ends = ends[(ends.checkpoint == "end") & ends.variant.isin(PLAN_VARIANTS)]
    found = ends[ends.metric.str.fullmatch(r"(audio|vision)_(exact_centred|exact_whitened|probe|probe_r2)")]
    if found.empty:
        return pd.DataFrame(columns=["variant", "modality", "measure", "n", "mean", "ci_low", "ci_high", "chance"])
    rows = ends[ends.metric.isin(found.metric.unique()) | ends.metric.isin(["audio_exact", "vision_exact"])]
    table = stats.summary(rows[rows.variant.isin(found.variant.unique())], ["variant"])
    table = table.assign(modality=table.metric.str.split("_").str[0], measure=table.metric.str.split("_", n=1).str[1])
    chance = stats.summary(checkpoints(record).query("checkpoint == 'init'"), ["variant"]).set_index(["variant", "metric"])["mean"]
    table = table.assign(chance=[chance.get((v, f"{m}_chance"), float("nan")) for v, m in zip(table.variant, table.modality)])
    order = {v: i for i, v in enumerate(PLAN_VARIANTS)} | {f"_{k}": i for i, k in enumerate(CONTROLS)}
    table = table.assign(_v=table.variant.map(order), _k=table.measure.map(lambda k: order[f"_{k}"]))
    return table.sort_values(["_v", "modality", "_k"]).drop(columns=["_v", "_k", "metric"]).reset_index(drop=True)[
        ["variant", "modality", "measure", "n", "mean", "ci_low", "ci_high", "chance"]]


def loss_table(record: dict):
    """One row per variant: the unweighted OT and MMD losses of the scored test clips at
    initialisation (mean over seeds) and at the end (mean and 95 % interval)."""
    import pandas as pd

    cells = _cells(record)
    rows = [{"variant": variant, "loss": loss, "init": cells.loc[(variant, "init", loss), "mean"],
             **cells.loc[(variant, "end", loss), ["mean", "ci_low", "ci_high"]].rename({"mean": "end"}).to_dict()}
            for variant in VARIANTS if (variant, "end", "ot") in cells.index for loss in ("ot", "mmd")]
    return pd.DataFrame(rows)


def comparisons(record: dict):
    """AlignMamba-2 with its losses (paper weights, and OT weight 1) minus without them, paired over
    seeds at the end (:func:`~alignlib.experiments.stats.paired_differences`: Holm per metric, minimal
    detectable effect, verdict): exact-plan accuracy per modality, OT and MMD loss, test MAE."""
    ends = checkpoints(record)
    return stats.paired_differences(ends[ends.checkpoint == "end"], BASELINE, variants=WITH_LOSSES, metrics=COMPARED)


def test_mae(record: dict):
    """Each variant's test MAE (the checkpoint best on validation) beside the data's reference lines
    (:func:`training.reference_rows`), with how its runs ended: ``epochs`` and ``steps`` (min-max over
    seeds) and ``flat`` (runs whose validation curve was flat at the end, of ``n``)."""
    ends = checkpoints(record)
    ends = ends[ends.checkpoint == "end"]
    summary = stats.summary(ends[ends.metric == "test_MAE"].assign(metric="MAE"), ["variant"])
    rows = training.reference_rows(summary, training.reference_summary(record), "variant")
    ran = ends[ends.metric.isin(["test_epochs_run", "test_optimizer_steps"])].groupby(["variant", "metric"]).value
    span = (ran.min().astype(int).astype(str) + "-" + ran.max().astype(int).astype(str)).unstack("metric")
    flat = {variant: sum(bool(run["rows"][-1]["metrics"].get("test_valid_flat")) for run in record["runs"].values()
                         if run["factors"]["variant"] == variant) for variant in rows.variant}
    return rows.assign(epochs=rows.variant.map(span.test_epochs_run), steps=rows.variant.map(span.test_optimizer_steps),
                       flat=rows.variant.map(flat), n=rows.variant.map(summary.set_index("variant")["n"]))


def changes(record: dict, variant: str, prefix: str):
    """How each metric of ``variant`` that starts with ``prefix`` moved from initialisation to the end:
    the paired end-minus-init difference per seed tested against no change, the metrics one family
    (Holm over them). One row per metric (``metric`` without the prefix), with ``init`` and ``end`` means."""
    import pandas as pd

    rows = checkpoints(record)
    rows = rows[(rows.variant == variant) & rows.metric.str.startswith(prefix)]
    wide = rows.pivot_table(index=["metric", "seed"], columns="checkpoint", values="value")
    moved = (wide.end - wide.init).rename("value").reset_index().rename(columns={"metric": "of"})
    zero = moved.assign(of=NO_CHANGE, value=0.0).drop_duplicates("seed")
    table = pd.concat([moved, zero]).assign(metric="end - init")
    result = stats.paired_differences(table, NO_CHANGE, by="of").drop(columns=["metric", "reference"])
    result = result.rename(columns={"of": "metric"})
    means = wide.groupby("metric").mean()
    result = result.assign(init=result.metric.map(means.init), end=result.metric.map(means.end))
    return result.assign(metric=result.metric.str[len(prefix):])


def share_changes(record: dict, variant: str = "AM2 with losses"):
    """:func:`changes` of the shared expert's share of each modality's update, per projection
    (``metric``: ``fusion.K.{in,out}_proj_{modality}``)."""
    return changes(record, variant, "shared_")


def routing_mi(record: dict):
    """The learned routers' mutual information with the modality (bits): one row per router and seed,
    ``init`` (epoch 0) and ``end`` (the run's last checkpoint)."""
    rows = checkpoints(record)
    rows = rows[(rows.variant == "AM2 learned routing") & rows.metric.str.startswith("mi_")]
    table = rows.pivot_table(index=["metric", "seed"], columns="checkpoint", values="value").reset_index()
    return table.assign(router=table.metric.str[3:]).astype({"seed": int})[["router", "seed", "init", "end"]]


def spread_table(ablations: dict):
    """The spread of the converged AlignMamba-2's states (:func:`alignlib.analysis.state_spread`, 0:
    all of a clip's tokens on one direction) with and without its losses, as the ablations sweep
    records it on this sweep's data and sizes (this sweep records none): each variant minus the one
    without losses, paired over seeds (:func:`~alignlib.experiments.stats.paired_differences`),
    with both means (``mean_variant``, ``mean_without``)."""
    _, runs = training.split(ablations)
    runs = runs[runs.variant.isin(SPREAD_VARIANTS) & runs.metric.str.startswith("state_spread_")]
    result = stats.paired_differences(runs, "w/o dual alignment loss", variants=SPREAD_VARIANTS)
    means = runs.groupby(["variant", "metric"]).value.mean()
    return result.assign(modality=result.metric.str[len("state_spread_"):],
                         mean_variant=[means[v, m] for v, m in zip(result.variant, result.metric)],
                         mean_without=[means["w/o dual alignment loss", m] for m in result.metric])


def _interval(row, mean: str = "mean") -> str:
    """``mean [low, high]`` of a table row (its mean in column ``mean``)."""
    return f"{row[mean]:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]"


def summary(record: dict, ablations: dict | None = None) -> str:
    """The answer of notebook 07 in sentences (markdown), every number from ``record`` (and the
    states' spread from the ablations sweep's record, when given)."""
    plans = plan_table(record).set_index(["variant", "modality", "method"])
    paired = comparisons(record).set_index(["variant", "metric"])
    losses = loss_table(record).set_index(["variant", "loss"])
    mae = test_mae(record).set_index("variant")
    am2 = [plans.loc["AM2 with losses", m, "exact"] for m in ("audio", "vision")]
    own = [plans.loc["AlignMamba-1 learned plan", m, "model"] for m in ("audio", "vision")]
    n = int(am2[0].n)
    places = f"both {am2[0].position}" if am2[0].position == am2[1].position else f"{am2[0].position}; {am2[1].position}"
    text = [
        "**The claim.** AlignMamba-2 adds an OT loss \"to capture fine-grained, token-level correspondences\" "
        "and an MMD loss for the distributions' statistics, and credits them with its ablation gains; the paper "
        "measures the task metrics only, never whether a frame ends up near the word it belongs to.",
        f"**Our number** ({n} seeds a model, trained with early stopping on the validation MAE: "
        f"{int(mae.flat.sum())} of {int(mae.n.sum())} runs ended on a flat validation curve; "
        f"{record['grid'][1]['analysis']['clips']} scored test clips of the synthetic benchmark, which stores every "
        "frame's word). The exact OT plan between the trained AlignMamba-2's "
        f"states puts {_interval(am2[0], 'end')} of the audio and {_interval(am2[1], 'end')} of the video frames on their word "
        f"({places}: the proportional guess, which reads no state, reaches "
        f"{am2[0].proportional:.3f} and {am2[1].proportional:.3f}, chance {am2[0].chance:.3f}). Against the same model "
        "trained without the losses: audio " + paired.loc["AM2 with losses", "audio_exact"].verdict + "; video "
        + paired.loc["AM2 with losses", "vision_exact"].verdict + ".",
        f"Weighted 1, the OT loss falls from {losses.loc['AM2 OT weight 1', 'ot'].init:.2f} to "
        f"{losses.loc['AM2 OT weight 1', 'ot'].end:.3f} (its end minus the end of the model trained without the losses: "
        f"{paired.loc['AM2 OT weight 1', 'ot'].verdict}), and its plans still put only audio "
        f"{plans.loc['AM2 OT weight 1', 'audio', 'exact'].end:.3f}, video {plans.loc['AM2 OT weight 1', 'vision', 'exact'].end:.3f}"
        f" of the frames on their word (chance {am2[0].chance:.3f})"
        f" ({paired.loc['AM2 OT weight 1', 'audio_exact'].verdict}; {paired.loc['AM2 OT weight 1', 'vision_exact'].verdict}).",
        "What finding the words looks like, on the same clips: AlignMamba-1's learned monotone plan (the control) "
        f"puts {_interval(own[0], 'end')} of the audio and {_interval(own[1], 'end')} of the video frames on their word.",
        f"Test MAE against the `set_level` line ({mae.set_level.iloc[0]:.3f}: the best a predictor reaches that does not "
        f"know which frame belongs to which word; the cue oracle `bound` {mae.bound.iloc[0]:.3f}, above the label's noise "
        f"floor {training.label_noise_floor(record):.3f}): " + "; ".join(
            f"{v} {_interval(mae.loc[v])}, {mae.loc[v].position} it" for v in mae.index) + ".",
        "**Why they differ.** A likely reason: both losses compare *sets* of tokens with a cosine cost, blind to their order: a frame "
        "lies near *some* word state, and the loss is low, whichever word it is; nothing in them asks for the right one.",
    ]
    if ablations is not None:
        spread = spread_table(ablations).set_index(["variant", "modality"])
        audio = spread.loc["AlignMamba-2", "audio"]
        text.append(
            "The converged states are also anisotropic, the audio most: the ablations sweep (same data and sizes) "
            f"measures an audio spread of {audio.mean_variant:.3f} with the losses and {audio.mean_without:.3f} "
            f"without them ({audio.verdict}; 0 would be every frame of a clip on one direction). A cosine plan "
            "between such states can sit near chance whatever training does, so the raw plans alone cannot separate "
            "\"the losses align nothing\" from \"a cosine plan cannot see it\"; no committed number measures a "
            "collapse caused by the losses.")
    text.append(control_sentences(record))
    return "\n\n".join(text)


def control_sentences(record: dict, variant: str = "AM2 with losses") -> str:
    """What the controls of :func:`control_table` say of ``variant`` (markdown), or that the record predates them."""
    table = control_table(record)
    if variant not in set(table.variant):
        return ("**The controls.** This record predates the controls that separate the two "
                "(`analysis.state_controls`: exact plans on centred and on whitened states, and a linear probe from a "
                "frame's state to its word's content fitted with the tables); a rerun of the sweep records them, and "
                "section 2 shows them on this notebook's small models.")
    rows = table[table.variant == variant].set_index(["modality", "measure"])
    said = lambda measure: " and ".join(f"{_interval(rows.loc[m, measure])} ({SPOKEN_NAMES[m]})"
                                        for m in ("audio", "vision"))
    chance = " / ".join(f"{rows.loc[m, 'exact'].chance:.3f}" for m in ("audio", "vision"))
    above = [m for m in ("audio", "vision") if rows.loc[m, "probe"].ci_low > rows.loc[m, "probe"].chance]
    return (f"**The controls** ({variant}, last checkpoint; chance {chance}). The exact plan puts {said('exact')} of the "
            f"frames on their word between the raw states, {said('exact_centred')} with each modality's mean removed and "
            f"{said('exact_whitened')} whitened. A linear probe fitted with the tables on training clips maps a frame's "
            f"state nearest to its own word's content for {said('probe')} of the test frames (R² {said('probe_r2')}): "
            + (f"the word is linearly in the {' and '.join(SPOKEN_NAMES[m] for m in above)} states, so a "
               "plan that misses it misses something the state holds." if above else
               "the probe does no better than chance, so the states hold little of their word for any plan to find."))


def experts_summary(record: dict) -> str:
    """The experts and the learned routers in sentences (markdown): the shared-expert shares that moved
    from initialisation beyond chance, and the routers' mutual information with the modality from the
    first checkpoint to the last (each seed's, and paired over seeds)."""
    shares = share_changes(record)
    moved = shares[shares.p_adjusted < stats.ALPHA]
    mi, mi_moved = routing_mi(record), changes(record, "AM2 learned routing", "mi_")
    means = mi.groupby("router")[["init", "end"]].mean()
    direction = "falls" if (means.end < means.init).all() else "moves, not in one direction,"
    per_seed = "; ".join(f"seed {seed}: " + ", ".join(f"{r.init:.2f}→{r.end:.2f}" for r in part.itertuples())
                         for seed, part in mi.groupby("seed"))
    projection = moved.metric.str.rsplit("_", n=1)
    return "\n\n".join([
        "**The experts.** With deterministic routing a token of modality $m$ always gets $E_m(h) + E_\\text{shared}(h)$: "
        "the two matrices fold into one, so training cannot identify which of them carries the update, only their sum "
        f"matters. Of the {len(shares)} shared-expert shares (projection × modality, Holm over them), "
        f"{len(moved)} moved from initialisation beyond what the seeds leave to chance: " + "; ".join(
            f"the {p[1]} tokens' in `{p[0]}`, {r.init:.3f} → {r.end:.3f} ({r.verdict})"
            for p, r in zip(projection, moved.itertuples())) + ".",
        f"**Learned routing.** The routers' mutual information with the modality {direction} during training: averaged "
        "over the seeds, " + ", ".join(f"`{router}` {r.init:.2f} → {r.end:.2f}" for router, r in means.iterrows())
        + f" bits (first → last checkpoint; each seed's, in the same order: {per_seed}). It fell in {int((mi.end < mi.init).sum())} of the "
        f"{len(mi)} router-seed pairs; paired over {int(mi_moved.n.max())} seeds, the largest mean fall is "
        f"{mi_moved.sort_values('mean').iloc[0].verdict}."
        + (" What the routers learn does not follow the modality more than their initial draw did." if direction == "falls" else ""),
    ])


def plot_curves(record: dict):
    """Exact-plan accuracy (audio, video) and the OT and MMD losses against the epoch, per plan
    variant: mean and 95 % band over the seeds that reached the epoch (two or more), with the proportional guess and
    chance. Returns the figure."""
    import matplotlib.pyplot as plt

    _, runs = training.split(record)
    curves = stats.summary(runs[runs.variant.isin(PLAN_VARIANTS)], ["variant", "epoch"])
    curves = curves[curves.n >= min(2, curves.n.max())]  # a band needs two seeds: the epochs that two or more reached
    floors = plan_table(record).groupby("modality")[["proportional", "chance"]].first()
    fig, axes = plt.subplots(1, 4, figsize=(19, 4))
    for ax, metric in zip(axes, ("audio_exact", "vision_exact", "ot", "mmd")):
        plots.curves_with_bands(ax, curves, "epoch", "variant", metric)
        if metric.endswith("exact"):
            modality = metric.split("_")[0]
            ax.axhline(floors.proportional[modality], color="black", ls="--", label="proportional guess")
            ax.axhline(floors.chance[modality], color="grey", ls=":", label="chance")
            ax.set(title=f"{modality} -> text: exact-plan accuracy", ylabel="share of frames on their word")
        else:
            ax.set(title=f"{metric.upper()} loss, test clips (unweighted)")
        ax.legend(fontsize=7)
    seeds = int(curves["n"].max())
    fig.suptitle(f"mean and 95 % band over {seeds} seeds" if seeds > 1 else "one seed (no interval)")
    fig.tight_layout()
    return fig


def show(record: dict, ablations: dict | None = None) -> None:
    """Display the committed results: how the runs ended, the curves, the plan table, the paired
    comparisons, the test MAE beside the reference lines, the states' spread and the experts."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    run = next(run for run in record["grid"] if run["kind"] == "inside")
    print(f"{record['command']}: {len(record['runs'])} runs, git "
          f"{', '.join(sorted({r['software']['git'][:8] for r in record['runs'].values() if 'software' in r}))}; "
          f"data {run['data']['preset']} preset, at most {run['train']['epochs']} epochs (patience "
          f"{run['train']['patience']}, at most {run['train']['max_steps']} optimiser steps), d_model "
          f"{run['train']['model_options']['d_model']}, {run['analysis']['clips']} scored test clips per checkpoint")
    plot_curves(record)
    plt.show()
    cells = plan_table(record).assign(end=lambda t: [_interval(r, "end") for _, r in t.iterrows()])
    table = cells.pivot(index=["variant", "modality"], columns="method", values="end")[list(PLAN_METHODS)].fillna("")
    table = table.assign(proportional=cells.groupby(["variant", "modality"]).proportional.first().round(3),
                         chance=cells.groupby(["variant", "modality"]).chance.first().round(3))
    display(table.reindex([v for v in PLAN_VARIANTS if v in table.index], level="variant"))
    display(comparisons(record)[["variant", "metric", "mean", "low", "high", "verdict"]].round(4))
    display(test_mae(record).round(3))
    if ablations is not None:
        display(spread_table(ablations)[["variant", "modality", "mean_variant", "mean_without", "verdict"]].round(4))
    display(Markdown(experts_summary(record)))


# -- the notebook's own (default-profile) runs, through the same view ---------------------------------
def as_record(summaries: dict) -> dict:
    """A record in the sweep's layout from ``{(variant, seed): [one checkpoint summary per epoch]}``
    (:func:`alignlib.analysis.epoch_summaries`, epoch 0 first), so that runs made outside the sweep go
    through the same view (:func:`plan_table`, :func:`loss_table`, :func:`plot_curves`, :func:`routing_mi`)."""
    grid = [{"id": run_id(variant, seed), "factors": {"variant": variant, "seed": seed}} for variant, seed in summaries]
    return {"sweep": "inside", "grid": grid,
            "runs": {run["id"]: {"rows": [{"epoch": epoch, "metrics": metrics} for epoch, metrics in
                                          enumerate(summaries[run["factors"]["variant"], run["factors"]["seed"]])]}
                     for run in grid}}


def learning_curves(configs: dict):
    """``{(variant, seed): TrainConfig}`` -> one row per run and epoch of its ``metrics.jsonl``
    (``variant, seed, epoch, steps, train_task, valid_MAE``, ...)."""
    import pandas as pd

    return pd.DataFrame([{"variant": variant, "seed": seed, **json.loads(line)} for (variant, seed), config in configs.items()
                         for line in (Path(config.out) / "metrics.jsonl").read_text().splitlines()])


def plot_learning_curves(curves):
    """Training L1 and validation MAE against the epoch, one line per variant (mean over seeds). Returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 3.6), sharey=True)
    for ax, column, title in zip(axes, ("train_task", "valid_MAE"), ("training L1 (MAE, with dropout)", "validation MAE")):
        for variant, part in curves.groupby("variant", sort=False):
            ax.plot(*zip(*part.groupby("epoch")[column].mean().items()), "o-", label=variant)
        ax.set(title=title, xlabel="epoch")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_clip_plans(models: dict, split, truth: dict, clip: int):
    """The exact plans of one clip from audio and video onto its words, per model: the plan with each
    frame's true word (magenta circles) and the proportional guess's staircase (white); under each, the
    frames joined to their heaviest word (green: right, red: wrong). Returns the figure."""
    import matplotlib.pyplot as plt
    import numpy as np

    from alignlib import analysis

    panels = [(name, model, modality) for name, model in models.items() for modality in analysis.SOURCES]
    fig, axes = plt.subplots(2, len(panels), figsize=(4.5 * len(panels), 8), gridspec_kw={"height_ratios": [3, 1]})
    for col, (name, model, modality) in enumerate(panels):
        found = analysis.correspondences(model, split, truth, [clip], methods=("exact", "proportional"))
        frames, words = found.masks[modality][0], found.masks["text"][0]
        plan = found.plans[modality, "exact"][0][frames][:, words].numpy()
        true_word = found.truth[modality][0][frames].numpy()
        rows = np.arange(len(true_word))
        axes[0, col].imshow(plan, aspect="auto", cmap="viridis")
        axes[0, col].scatter(true_word, rows, s=12, facecolors="none", edgecolors="magenta")
        axes[0, col].plot(found.plans[modality, "proportional"][0][frames].argmax(1).numpy(), rows, color="white", lw=1)
        axes[0, col].set(title=f"{name}\n{modality}: {found.accuracy[modality]['exact']:.0%} recovered",
                         xlabel="word", ylabel="frame")
        for i, j in enumerate(plan.argmax(1)):
            axes[1, col].plot([i / max(len(rows) - 1, 1), j / max(int(words.sum()) - 1, 1)], [1, 0], lw=0.7,
                              color="seagreen" if j == true_word[i] else "crimson")
        axes[1, col].set(yticks=[0, 1], yticklabels=["words", "frames"], xticks=[])
    fig.tight_layout()
    return fig
