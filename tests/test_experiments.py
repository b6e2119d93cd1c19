"""alignlib.experiments: declared grids (the committed results' among them), resumable sweeps,
confidence intervals against scipy, the efficiency harness's out-of-memory handling, and the
command line's errors."""
import ast
import dataclasses
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import papermill
import pytest
from scipy import stats as sps

from alignlib import PROFILES, PROJECT_ROOT, analysis, notebooks
from alignlib.data import digit_scenes, load_mmsa, references, synthetic
from alignlib.experiments import (ablations, cluster, efficiency, inside, lambda_grid, learned, missing, model_table,
                                  stress, sweeps, training)
from alignlib.experiments import emma as emma_sweep
from alignlib.experiments.__main__ import main as experiments_main
from alignlib.experiments.stats import loglog_slope, mean_ci, summary
from alignlib.experiments.sweep import Sweep, SweepError, claim, claim_path, load, tidy
from alignlib.models import emma
from alignlib.models.checkpoint import load_model
from alignlib.models.sentiment import MODELS
from alignlib.train import TrainConfig


def test_every_sweep_declares_unique_runs_in_both_profiles():
    assert sorted(sweeps()) == ["ablations", "efficiency", "emma", "inside", "lambda", "learned", "missing", "models",
                                "stress"]
    for name, sweep in sweeps().items():
        for profile in PROFILES:
            runs = sweep.runs(profile)
            ids = [r["id"] for r in runs]
            assert len(ids) == len(set(ids)), f"{name}/{profile}: duplicate run ids"
            json.dumps(runs)  # the grid is stored in the results JSON


COMMITTED = sorted(p.stem.removeprefix("experiments_") for p in (PROJECT_ROOT / "benchmarks" / "results").glob("experiments_*.json"))


def test_committed_results_are_sweeps():
    """Every committed ``experiments_NAME.json`` is a sweep's (records of an earlier declaration live in
    ``benchmarks/results/earlier/``, which the notebooks do not read)."""
    assert COMMITTED and set(COMMITTED) <= set(sweeps()), set(COMMITTED) - set(sweeps())


@pytest.mark.parametrize("name", COMMITTED)
def test_each_committed_result_is_its_sweeps_full_profile(name):
    """The committed JSON's grid, description and estimate are what the sweep declares today."""
    sweep, record = sweeps()[name], load(PROJECT_ROOT / "benchmarks" / "results" / f"experiments_{name}.json")
    assert (record["sweep"], record["profile"], record["reproduces"]) == (name, "full", sweep.reproduces)
    assert record["grid"] == sweep.runs("full")
    assert record["estimated_seconds"] == pytest.approx(sum(map(sweep.estimate, record["grid"])))


@pytest.mark.parametrize("name", [n for n in COMMITTED if sweeps()[n].statistics])
def test_each_committed_result_stores_the_comparisons_its_runs_give(name):
    """A committed sweep with comparisons stores them (adjusted p, minimal detectable effect, verdict),
    and they are what its view computes from its runs today."""
    sweep, record = sweeps()[name], load(PROJECT_ROOT / "benchmarks" / "results" / f"experiments_{name}.json")
    assert record["statistics"] == sweep.statistics(record)
    assert {"p_adjusted", "verdict"} <= set(record["statistics"][0])


def test_ablation_grid_has_the_papers_rows_and_three_seeds_at_full_scale():
    runs = [run for run in ablations.SWEEP.runs("full") if run["kind"] == "train"]
    options = {r["factors"]["variant"]: r["train"]["model_options"] for r in runs}
    assert options["w/o OT loss"]["lambda_ot"] == 0 and options["w/o MMD loss"]["lambda_mmd"] == 0
    assert options["w/o dual alignment loss"]["align_loss"] is False
    assert options["w/o both"]["moe"] is False and options["w/o both"]["align_loss"] is False
    assert options["w/ learnable routing"]["routing"] == "learned"
    assert options["AlignMamba-1 w/o local OT"]["plan"] == "proportional"
    for variant in options:
        seeds = [r["train"]["seed"] for r in runs if r["factors"]["variant"] == variant]
        assert len(seeds) >= 3 and len(set(seeds)) == len(seeds)


def test_parameter_matched_width_is_the_closest_by_brute_force():
    dims = synthetic.PRESETS["tiny"]["dims"]
    options = {"d_model": 16, "n_layers": 2}
    target = ablations.parameter_count("alignmamba2", dims, {**options, "moe": True})
    gaps = {w: abs(ablations.parameter_count("alignmamba2", dims, {**options, "moe": False, "d_model": w}) - target)
            for w in range(16, 40)}
    assert ablations.matched_width(dims, options) == min(gaps, key=gaps.get)
    assert gaps[min(gaps, key=gaps.get)] < 0.05 * target


def test_lambda_grid_is_logarithmic_with_zero_and_missing_rates_follow_table_1():
    for profile in PROFILES:
        values = lambda_grid.SWEEP.profiles[profile]["lambdas"]
        assert values[0] == 0
        ratios = np.diff(np.log10(values[1:]))
        assert np.allclose(ratios, ratios[0]) and ratios[0] > 0
        cells = {(r["factors"]["lambda_ot"], r["factors"]["lambda_mmd"]) for r in lambda_grid.SWEEP.runs(profile)
                 if r["kind"] == "train"}
        assert cells == {(a, b) for a in values for b in values}
    assert np.allclose(missing.RATES, np.arange(0, 0.75, 0.1))
    lengths = efficiency.SWEEP.profiles["full"]["lengths"]
    assert lengths[0] == 1024 and lengths[-1] == 100_000


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_mean_ci_matches_scipy_t_interval(n):
    x = np.random.default_rng(n).normal(3.0, 2.0, n)
    mean, low, high = mean_ci(x)
    expected = sps.t.interval(0.95, n - 1, loc=x.mean(), scale=sps.sem(x))
    assert mean == pytest.approx(x.mean()) and (low, high) == pytest.approx(expected, rel=1e-12)


def test_mean_ci_covers_the_true_mean_95_percent_of_the_time():
    samples = np.random.default_rng(0).normal(1.0, 1.0, (4000, 3))
    covered = np.mean([low <= 1.0 <= high for _, low, high in map(mean_ci, samples)])
    assert abs(covered - 0.95) < 3 * math.sqrt(0.95 * 0.05 / 4000)


def test_mean_ci_of_one_value_has_no_interval_and_bad_input_is_named():
    mean, low, high = mean_ci([2.5])
    assert mean == 2.5 and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="values"):
        mean_ci([1.0, float("nan")])


def test_loglog_slope_against_scipy_linregress():
    lengths = np.array([1e3, 2e3, 4e3, 8e3])
    assert loglog_slope(lengths, 3e-6 * lengths**2) == pytest.approx(2.0)
    noisy = 5 * lengths**1.1 * np.random.default_rng(1).uniform(0.8, 1.2, lengths.size)
    assert loglog_slope(lengths, noisy) == pytest.approx(sps.linregress(np.log(lengths), np.log(noisy)).slope)


def small_grid(settings):
    """Three real training runs on 24 synthetic clips, one epoch each."""
    data = {"preset": "tiny", "n_clips": 24, "seed": 0}
    runs = []
    for variant, options in (("a", {"lambda_mmd": 0.0}), ("b", {})):
        for seed in ((0, 1) if variant == "a" else (0,)):
            runs.append({"id": f"{variant}-seed{seed}", "kind": "train", "factors": {"variant": variant, "seed": seed},
                         "data": data, "train": {"model": "alignmamba1", "epochs": 1, "batch_size": 8, "patience": 1,
                                                 "seed": seed, "model_options": {"d_model": 8, "n_layers": 1, **options}}})
    return runs


def small_sweep(name="lambda", grid=small_grid, execute=training.execute):
    """A sweep of ``grid``'s runs, the same in both profiles."""
    return Sweep(name, "test", {profile: {} for profile in PROFILES}, grid, execute, training.estimate)


def without_timings(record):
    record = json.loads(json.dumps(record))
    record.pop("command")
    for run in record["runs"].values():
        run.pop("seconds")
    return record


def test_an_interrupted_sweep_resumes_to_the_json_of_an_uninterrupted_one(tmp_path):
    whole = small_sweep().run(out=tmp_path / "whole", progress=False)

    calls = []

    def crash_after_two(run, root, device):
        if len(calls) == 2:
            raise KeyboardInterrupt("killed mid-sweep")
        calls.append(run["id"])
        return training.execute(run, root, device)

    with pytest.raises(KeyboardInterrupt):
        small_sweep(execute=crash_after_two).run(out=tmp_path / "cut", progress=False)
    partial = load(tmp_path / "cut" / "experiments_lambda.json")
    assert sorted(partial["runs"]) == sorted(calls) == ["a-seed0", "a-seed1"]
    with pytest.raises(SweepError, match="--resume"):
        small_sweep().run(out=tmp_path / "cut", progress=False)

    calls.clear()
    counted = small_sweep(execute=lambda run, root, device: (calls.append(run["id"]), training.execute(run, root, device))[1])
    resumed = counted.run(out=tmp_path / "cut", resume=True, progress=False)
    assert calls == ["b-seed0"]  # finished runs are never repeated
    assert without_timings(resumed) == without_timings(whole)
    assert without_timings(load(tmp_path / "cut" / "experiments_lambda.json")) == without_timings(whole)

    table = tidy(whole)
    mae = table[table.metric == "MAE"]
    assert len(mae) == 3 and set(mae.run) == {"a-seed0", "a-seed1", "b-seed0"}
    row = summary(table, ["variant"]).query("variant == 'a' and metric == 'MAE'").iloc[0]
    expected = sps.t.interval(0.95, 1, loc=mae[mae.variant == "a"].value.mean(), scale=sps.sem(mae[mae.variant == "a"].value))
    assert (row.ci_low, row.ci_high) == pytest.approx(expected)
    run = whole["runs"]["a-seed1"]
    assert run["seed"] == 1 and run["config"]["model_options"]["lambda_mmd"] == 0 and run["software"]["torch"]


def test_resuming_with_another_grid_is_refused(tmp_path):
    small_sweep(grid=lambda settings: small_grid(settings)[:1]).run(out=tmp_path, progress=False)
    with pytest.raises(SweepError, match="another sweep, profile or grid"):
        small_sweep(grid=lambda settings: small_grid(settings)[1:2]).run(out=tmp_path, resume=True, progress=False)


def test_a_grown_grid_resumes_with_only_its_new_runs(tmp_path):
    small_sweep(grid=lambda settings: small_grid(settings)[:1]).run(out=tmp_path, progress=False)
    calls = []
    counted = small_sweep(grid=lambda settings: small_grid(settings)[:2],
                          execute=lambda run, root, device: (calls.append(run["id"]), training.execute(run, root, device))[1])
    grown = counted.run(out=tmp_path, resume=True, progress=False)
    assert calls == ["a-seed1"] and sorted(grown["runs"]) == ["a-seed0", "a-seed1"]
    assert grown["grid"] == small_sweep().runs("default")[:2]
    assert grown["estimated_seconds"] == pytest.approx(sum(map(training.estimate, grown["grid"])))

    def changed(settings):
        first, second = small_grid(settings)[:2]
        return [{**first, "train": {**first["train"], "epochs": 3}}, second]
    with pytest.raises(SweepError, match="another sweep, profile or grid"):  # a finished run declared otherwise
        small_sweep(grid=changed).run(out=tmp_path, resume=True, progress=False)


def test_a_sweep_stops_when_another_grid_took_its_file_meanwhile(tmp_path):
    other = small_sweep(grid=lambda settings: small_grid(settings)[2:])  # a grid with run b-seed0 only

    def train_while_the_other_finishes(run, root, device):
        other.run(out=root, resume=True, progress=False)  # another process, another grid, same folder
        return training.execute(run, root, device)

    first = small_sweep(grid=lambda settings: small_grid(settings)[:1], execute=train_while_the_other_finishes)
    with pytest.raises(SweepError, match="another grid"):
        first.run(out=tmp_path, progress=False)
    assert sorted(load(tmp_path / "experiments_lambda.json")["runs"]) == ["b-seed0"]  # its record is intact


def test_missing_rate_zero_reproduces_the_trainers_test_metrics(tmp_path):
    def grid(settings):
        return [{**small_grid(settings)[0], "test_missing_rates": [0.0, 0.5]}]

    record = small_sweep("missing", grid, missing.execute).run(out=tmp_path, progress=False)
    rows = record["runs"]["a-seed0"]["rows"]
    trained = json.loads((tmp_path / "runs" / "missing" / "a-seed0" / "test_metrics.json").read_text())
    assert [r["test_missing_rate"] for r in rows] == [0.0, 0.5]
    assert rows[0]["metrics"]["MAE"] == pytest.approx(trained["MAE"], abs=1e-6)
    assert rows[1]["metrics"]["MAE"] != pytest.approx(trained["MAE"], abs=1e-6)
    # the trainer's own test at that rate (its final_test on the finished run) agrees
    from alignlib.train import TrainConfig, train

    config = record["runs"]["a-seed0"]["config"]
    config.update(data=str(tmp_path / config["data"]), out=str(tmp_path / config["out"]), test_missing_rate=0.5, resume=True)
    assert train(TrainConfig(**config), progress=False)["MAE"] == pytest.approx(rows[1]["metrics"]["MAE"], abs=1e-6)


def test_efficiency_point_out_of_memory_is_recorded(tmp_path):
    # AlignMamba-1 at 2048 tokens builds a 2048 x 2048 float32 cost matrix: 16 MiB at once
    settings = dict(model="alignmamba1", length=2048, d_model=8, n_layers=1, repeats=1, time_limit_s=60)
    capped = efficiency.measure_point(efficiency.Point(**settings, memory_limit_mib=8))
    assert capped["status"] == "oom" and capped["metrics"] == {}
    roomy = efficiency.measure_point(efficiency.Point(**settings, memory_limit_mib=2048))
    assert roomy["status"] == "ok" and roomy["metrics"]["peak_mib"] >= 2048 * 2048 * 4 / 2**20
    assert roomy["metrics"]["latency_ms"] > 0


def test_a_point_after_an_oom_of_its_model_is_skipped():
    finished = {"alignmamba1-L1024": {"factors": {"model": "alignmamba1", "length": 1024},
                                      "rows": [{"status": "oom", "metrics": {}}]}}
    later = {"factors": {"model": "alignmamba1", "length": 2048}, "efficiency": {"model": "alignmamba1", "length": 2048}}
    other = {"factors": {"model": "mult", "length": 2048}, "efficiency": {"model": "mult", "length": 2048}}
    config, rows = efficiency.SWEEP.skip(later, finished)
    assert config == later["efficiency"] and rows[0]["status"] == "skipped" and rows[0]["reason"] == "oom at length 1024"
    assert efficiency.SWEEP.skip(other, finished) is None


@pytest.mark.parametrize("arguments, message", [
    (["nope"], "unknown sweep 'nope'"),
    (["ablations", "--profile", "huge"], "unknown profile 'huge'"),
    (["ablations", "--device", "tpu"], "--device must be cpu or cuda"),
    (["ablations", "--workers", "0"], "--workers must be at least 1"),
    (["ablations", "--partition", "gpu"], "--partition and --gpus-per-run are for --executor slurm"),
    (["ablations", "--executor", "local-submitit", "--workers", "2"], "--workers is for --executor local"),
    (["ablations", "--executor", "slurm", "--time", "0"], "--time must be at least 1 minute"),
])
def test_command_line_errors_exit_2(arguments, message, tmp_path, capsys):
    """In this process (argparse's errors exit with 2; a real process's stderr: the next test)."""
    with pytest.raises(SystemExit) as exit_:
        experiments_main([*arguments, "--out", str(tmp_path)])
    assert exit_.value.code == 2 and f"error: {message}" in capsys.readouterr().err


def test_command_line_refuses_a_file_as_out_and_an_existing_sweep_without_resume(tmp_path, capsys):
    afile = tmp_path / "results.txt"
    afile.write_text("")
    result = subprocess.run([sys.executable, "-m", "alignlib.experiments", "lambda", "--out", str(afile)],
                            capture_output=True, text=True)  # a real process: one line, no traceback
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].endswith("is a file, not a folder")
    assert "Traceback" not in result.stderr
    (tmp_path / "experiments_lambda.json").write_text("{}")
    assert experiments_main(["lambda", "--out", str(tmp_path), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error:") and "--resume" in error


def test_inside_sweep_rows_are_each_checkpoints_summary(tmp_path):
    settings = {**inside.SWEEP.profiles["default"], "epochs": 2, "clips": 3, "d_model": 8}
    grid = [run for run in inside.grid(settings) if run["factors"]["variant"] == "AM2 learned routing"]
    record = dataclasses.replace(inside.SWEEP, grid=lambda settings: grid).run(out=tmp_path, progress=False)
    (run_id, done), = record["runs"].items()
    assert [row["epoch"] for row in done["rows"]] == [0, 1, 2]
    recorded = {k: v for k, v in done["config"].items() if k != "analysis"}
    config = TrainConfig(**{**recorded, "data": str(tmp_path / recorded["data"]), "out": str(tmp_path / recorded["out"])})
    data = load_mmsa(config.data)
    truth = analysis.truth_tables(config.data, "test")
    models = [analysis.initial_model(config)] + [load_model(tmp_path / "runs" / "inside" / run_id / f"epoch_{k}.pt")[0]
                                                 for k in (1, 2)]
    controls = analysis.state_controls(models[-1], data.splits["train"], data.splits["test"],
                                       range(min(inside.CONTROL_CLIPS, len(data.splits["train"]))), range(3))
    for row, model in zip(done["rows"], models):
        expected = analysis.checkpoint_summary(model, data.splits["test"], truth, range(3), settings["blur"])
        expected.update(controls if row is done["rows"][-1] else {})  # the last checkpoint's controls
        assert {k: v for k, v in row["metrics"].items() if not k.startswith("test_")} == pytest.approx(expected)
    assert done["rows"][-1]["metrics"]["test_stopped_by"] in ("patience", "steps", "epochs")
    tested = json.loads((tmp_path / "runs" / "inside" / run_id / "test_metrics.json").read_text())
    assert done["rows"][-1]["metrics"]["test_MAE"] == tested["MAE"]
    assert done["rows"][-1]["metrics"]["test_best_epoch"] == tested["epoch"]
    assert "test_epoch" not in done["rows"][-1]["metrics"]
    assert any(k.startswith("mi_") for k in done["rows"][0]["metrics"])
    table = tidy(record)
    assert set(table.epoch) == {0, 1, 2} and set(table.variant) == {"AM2 learned routing"}


def test_emma_sweep_profiles_are_notebook_09s():
    """The sweep's default profile is notebook 09's parameters cell and its full profile the yaml,
    so the committed sweep is what the notebook's full profile would train."""
    notebook = next(path for path in notebooks.discover() if path.stem == "09_emma")
    default = {name: ast.literal_eval(p["default"]) for name, p in papermill.inspect_notebook(str(notebook)).items()}
    full = {**default, **notebooks.profile_parameters(notebook, "full")}
    for profile, parameters in (("default", default), ("full", full)):
        settings = emma_sweep.SWEEP.profiles[profile]
        assert {**settings, "seeds": list(settings["seeds"])} == {
            key: parameters["seed" if key == "data_seed" else key] for key in settings}, profile
    assert default["pixel_weight"] == emma_sweep.PIXEL_WEIGHT


def test_emma_sweep_runs_train_and_score(tmp_path):
    small = {**emma_sweep.SWEEP.profiles["default"], "n_train": 120, "n_test": 60, "probe_scenes": 60, "train_steps": 40,
             "d_model": 8, "n_layers": 2, "batch_size": 8}
    grid = [run for run in emma_sweep.grid(small) if run["factors"]["variant"] == "+both (EMMA)"]
    sweep = dataclasses.replace(emma_sweep.SWEEP, grid=lambda settings: grid)
    record = sweep.run(out=tmp_path, progress=False)
    metrics = record["runs"]["both-emma-seed0"]["rows"][0]["metrics"]
    train_data = digit_scenes.make_digit_scenes(120, "train", seed=0)
    test_data = digit_scenes.make_digit_scenes(60, "test", seed=1)
    valid_data = digit_scenes.make_digit_scenes(emma_sweep.VALID_SCENES, "train", seed=2)
    direct = emma.train_and_score(emma.EmmaConfig(patch_size=8, d_model=8, n_layers=2, pixel_weight=1.0, mff=True),
                                  train_data, test_data, train_data.subset(slice(0, 60)), 40, 8, small["learning_rate"],
                                  seed=0, progress=False, valid_data=valid_data)
    for key, value in direct.scores.items():
        assert metrics[key] == pytest.approx(value, nan_ok=True), key
    np.testing.assert_allclose([metrics[f"probe_r2_layer{k}"] for k in range(3)], direct.r2)
    # the last 5 % of the 40 steps: steps 38 and 39
    assert metrics["final_pixel_loss"] == pytest.approx((direct.history[38]["pixel"] + direct.history[39]["pixel"]) / 2)
    assert metrics["final_answer_loss"] == pytest.approx((direct.history[38]["answer"] + direct.history[39]["answer"]) / 2)
    assert record["runs"]["both-emma-seed0"]["seed"] == 0
    curve = record["runs"]["both-emma-seed0"]["rows"][0]["valid_curve"]
    assert [(p["step"], p["error"]) for p in curve] == [(p["step"], p["error"]) for p in direct.valid_curve]
    assert [p["answer_loss"] for p in curve] == pytest.approx([p["answer_loss"] for p in direct.valid_curve], rel=1e-5)
    assert {k: metrics[k] for k in ("optimizer_steps", "stopped_by", "valid_flat")} == emma.convergence(direct.history,
                                                                                                      direct.valid_curve)
    with pytest.raises(SweepError, match="CPU only"):
        sweep.run(out=tmp_path / "gpu", device="cuda", progress=False)


def slow_fake_run(run, root, device):
    """A stand-in executor: records which process ran ``run``, takes a moment, returns one row."""
    with open(root / "executed.txt", "a") as log:
        log.write(f"{run['id']} {os.getpid()}\n")
    time.sleep(0.3)
    return {"seed": run["factors"]["seed"]}, [{"metrics": {"MAE": float(run["factors"]["seed"])}}]


def worker(out):
    grid = small_grid({}) + [{**small_grid({})[0], "id": f"extra-seed{k}", "factors": {"variant": "c", "seed": k}}
                             for k in range(3)]
    small_sweep(grid=lambda settings: grid, execute=slow_fake_run).run(out=out, resume=True, progress=False, command="test")


def test_workers_share_a_sweep_and_each_run_runs_once(tmp_path):
    alone, together = tmp_path / "alone", tmp_path / "together"
    alone.mkdir(), together.mkdir()
    context = multiprocessing.get_context("fork")
    first = context.Process(target=worker, args=(alone,))
    first.start(), first.join()
    workers = [context.Process(target=worker, args=(together,)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert all(w.exitcode == 0 for w in workers)
    executed = [line.split() for line in (together / "executed.txt").read_text().splitlines()]
    ids = [run_id for run_id, _ in executed]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 6  # every run once
    assert len({pid for _, pid in executed}) > 1  # and shared between the processes
    assert without_timings(load(together / "experiments_lambda.json")) == \
        without_timings(load(alone / "experiments_lambda.json"))
    assert not list((together / "claims").iterdir())


def test_a_claim_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    claim_path(tmp_path, "a-seed0").parent.mkdir(parents=True)
    claim_path(tmp_path, "a-seed0").write_text(str(dead.pid))
    assert claim(tmp_path, "a-seed0")
    assert claim_path(tmp_path, "a-seed0").read_text() == str(os.getpid())
    claim_path(tmp_path, "b-seed0").write_text(str(os.getppid()))  # a live process holds it
    assert not claim(tmp_path, "b-seed0")


@pytest.fixture(scope="module")
def missing_alone(tmp_path_factory):
    """The ``missing`` sweep's default profile run by one local process (the command line)."""
    out = tmp_path_factory.mktemp("one")
    one = subprocess.run([sys.executable, "-m", "alignlib.experiments", "missing", "--quiet", "--out", str(out)],
                         capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    return load(out / "experiments_missing.json")


def test_a_finished_sweep_stores_its_comparisons_and_each_runs_end(missing_alone):
    """The record of a whole grid carries ``statistics`` (the view's paired drops, as JSON rows) and
    every trained run how it ended (optimiser steps, stop reason, flat validation curve)."""
    expected = missing.paired_drops(missing_alone)
    stored = missing_alone["statistics"]
    assert [row["model"] for row in stored] == list(expected.model)
    assert [row["mean"] for row in stored] == pytest.approx(list(expected["mean"]))
    for run_id, run in missing_alone["runs"].items():
        if run_id != "references":
            first = run["rows"][0]["metrics"]
            assert first["optimizer_steps"] > 0 and first["stopped_by"] in ("patience", "steps", "epochs")
            assert isinstance(first["valid_flat"], bool)


def assert_same_results(ours, alone):
    """Two results records are the same but for timings, software and the command (the thread count
    may differ, and with it the last bits of a sum: metrics to 1e-5)."""
    ours, alone = json.loads(json.dumps(ours)), json.loads(json.dumps(alone))
    metrics = {}
    for name, record in (("ours", ours), ("alone", alone)):
        for run_id, run in record["runs"].items():
            run.pop("software")
            metrics[name, run_id] = [row.pop("metrics") for row in run["rows"]]
    assert without_timings(ours) == without_timings(alone)
    for run_id in alone["runs"]:
        for mine, theirs in zip(metrics["ours", run_id], metrics["alone", run_id], strict=True):
            words = {k for k, v in theirs.items() if isinstance(v, str)}  # such as stopped_by
            assert {k: mine[k] for k in words} == {k: theirs[k] for k in words}
            assert {k: v for k, v in mine.items() if k not in words} == pytest.approx(
                {k: v for k, v in theirs.items() if k not in words}, rel=1e-5, nan_ok=True)


def test_command_line_workers_give_the_json_of_one_process(tmp_path, missing_alone):
    command = [sys.executable, "-m", "alignlib.experiments", "missing", "--quiet"]
    two = subprocess.run([*command, "--out", str(tmp_path / "two"), "--workers", "2"], capture_output=True, text=True)
    assert two.returncode == 0, two.stderr
    shared = load(tmp_path / "two" / "experiments_missing.json")
    assert shared["command"] == missing_alone["command"].replace(missing_alone["command"].split()[-1], str(tmp_path / "two"))
    assert_same_results(shared, missing_alone)


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from ``/proc/*/stat``)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_scheduler_jobs_through_submitits_local_executor_resume_a_killed_job(tmp_path, missing_alone):
    """``--executor slurm``'s path, run by submitit's own LocalExecutor (real subprocesses, one a run):
    one job killed mid-run (SIGKILL, after two of its epochs) leaves only its run missing, ``--resume``
    resubmits that run alone, and the JSON is the local process's."""
    sweep, out, victim = sweeps()["missing"], tmp_path / "jobs", "alignmamba2-seed0"
    executor = cluster.make_executor("local-submitit", out / "jobs" / "missing", minutes=5)
    submitted, killed = out / "jobs" / "missing.json", []

    def kill_mid_run():
        log, deadline = out / "runs" / "missing" / victim / "metrics.jsonl", time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if log.exists() and len(log.read_text().splitlines()) >= 2:
                task = children(int(json.loads(submitted.read_text())[victim]))  # the job's controller runs it
                os.kill(task[0], signal.SIGKILL)
                killed.append(task[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_mid_run)
    killer.start()
    submit = dict(sweep=sweep, executor=executor, profile="default", out=out, device="cpu", command="test",
                  progress=False, poll_s=0.2)
    missing_runs = cluster.submit(resume=False, **submit)
    killer.join()
    assert killed and missing_runs == [victim]
    first = json.loads(submitted.read_text())
    assert sorted(first) == sorted(run["id"] for run in sweep.runs("default"))  # one job a run
    assert sorted(load(out / "experiments_missing.json")["runs"]) == sorted(set(first) - {victim})
    with pytest.raises(SweepError, match="--resume"):
        cluster.submit(resume=False, **submit)

    assert cluster.submit(resume=True, **submit) == []
    second = json.loads(submitted.read_text())
    assert {run_id for run_id in second if second[run_id] != first[run_id]} == {victim}  # only it resubmitted
    assert_same_results(load(out / "experiments_missing.json"), missing_alone)


def test_slurm_executor_asks_for_the_partition_gpus_and_time(tmp_path, monkeypatch):
    """The job script of ``--executor slurm --partition gpu --gpus-per-run 2 --time 30`` (nothing is
    submitted: stand-ins for sbatch and srun on PATH let the executor be built), and the error without them."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SweepError, match="sbatch and srun not on this machine's PATH"):
        cluster.make_executor("slurm", tmp_path / "jobs")
    for tool in ("sbatch", "srun"):
        (tmp_path / tool).write_text("#!/bin/sh\nexit 1\n")
        (tmp_path / tool).chmod(0o755)
    executor = cluster.make_executor("slurm", tmp_path / "jobs", partition="gpu", gpus_per_run=2, minutes=30)
    script = executor._make_submission_file_text("python -m submitit.core._submit", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2", "#SBATCH --time=30", "#SBATCH --nodes=1",
                 "#SBATCH --ntasks-per-node=1"):
        assert line in script


def test_sweeps_sharing_a_folder_keep_their_runs_apart(tmp_path):
    one = small_grid({})[:1]
    other = [{**one[0], "train": {**one[0]["train"], "model_options": {"d_model": 6, "n_layers": 1}}}]  # same id
    first = small_sweep("lambda", lambda settings: one).run(out=tmp_path, progress=False)
    second = small_sweep("missing", lambda settings: other).run(out=tmp_path, progress=False)  # would resume the other's last.pt
    assert first["runs"]["a-seed0"]["config"]["out"] == "runs/lambda/a-seed0"
    assert second["runs"]["a-seed0"]["config"]["out"] == "runs/missing/a-seed0"
    assert first["runs"]["a-seed0"]["rows"] != second["runs"]["a-seed0"]["rows"]


def test_two_sweeps_sharing_a_folder_claim_their_own_runs(tmp_path):
    """A run id that two sweeps share (every training sweep has a "references" run) is claimed per
    sweep: another sweep's live claim on that id does not make this one skip its run."""
    sweep = small_sweep(execute=slow_fake_run)
    first_id = sweep.runs("default")[0]["id"]
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / f"other.{first_id}").write_text(str(os.getppid()))  # sweep "other" holds it, alive
    record = sweep.run(out=tmp_path, progress=False, command="test")
    assert set(record["runs"]) == {run["id"] for run in sweep.runs("default")}


def test_the_references_run_records_the_datas_reference_lines(tmp_path):
    settings = training.SIZES["default"]
    run = training.references_run(settings)
    config, rows = training.execute(run, tmp_path, "cpu")
    expected = references.score_references(tmp_path / config["data"])
    assert len(rows) == 3 * len(references.REFERENCES)
    for row in rows:  # (a constant's Corr is NaN)
        assert row["metrics"] == pytest.approx(expected[row["reference"]][row["reference_seed"]], nan_ok=True)
    record = {"sweep": "models", "grid": [run], "runs": {"references": {"factors": run["factors"], "rows": rows}}}
    lines = training.reference_summary(record)
    assert set(lines.reference) == set(references.REFERENCES) and training.trained_runs(record).empty


def test_learned_sweep_rows_score_each_checkpoints_own_plan(tmp_path):
    settings = {**learned.SWEEP.profiles["default"], "epochs": 2, "clips": 5, "d_model": 8}
    grid = [run for run in learned.grid(settings) if run["factors"]["variant"] in ("learned plan", "oracle plan")]
    record = dataclasses.replace(learned.SWEEP, grid=lambda settings: grid).run(out=tmp_path, progress=False)
    for run_id, done in record["runs"].items():
        assert [row["epoch"] for row in done["rows"]] == [0, 1, 2]
        recorded = {k: v for k, v in done["config"].items() if k != "analysis"}
        config = TrainConfig(**{**recorded, "data": str(tmp_path / recorded["data"]), "out": str(tmp_path / recorded["out"])})
        test = load_mmsa(config.data).splits["test"]
        model = load_model(tmp_path / "runs" / "learned" / run_id / "epoch_2.pt")[0]
        found = analysis.correspondences(model, test, test.alignment, range(5), methods=("proportional",))
        last = done["rows"][-1]["metrics"]
        assert last["audio_model"] == found.accuracy["audio"]["model"]
        assert last["vision_proportional"] == found.accuracy["vision"]["proportional"]
        assert last["test_optimizer_steps"] > 0 and "correspondence_accuracy_vision" in last
        best = load_model(tmp_path / "runs" / "learned" / run_id / "best.pt")[0]  # every test clip's states
        batch = analysis.clip_batch(test, range(len(test)))
        for m, states in analysis.token_states(best, batch).items():
            assert last[f"state_spread_{m}"] == pytest.approx(analysis.state_spread(states, batch.masks[m]), abs=1e-6)
        if done["factors"]["variant"] == "oracle plan":  # the true plan finds every word
            assert last["correspondence_accuracy_audio"] == last["correspondence_accuracy_vision_clip_low"] == 1.0


def test_learned_sweep_tunes_the_oracle_wider_at_a_higher_learning_rate():
    runs = {r["factors"]["variant"]: r for r in learned.SWEEP.runs("full") if r["kind"] != "references"}
    plain, tuned = runs["oracle plan"]["train"], runs[learned.TUNED_ORACLE]["train"]
    assert tuned["model_options"] == {**plain["model_options"], "d_model": 2 * plain["model_options"]["d_model"]}
    assert tuned["lr"] == 3e-3 and "lr" not in plain  # the others train at TrainConfig's lr
    assert learned.SWEEP.estimate(runs[learned.TUNED_ORACLE]) > learned.SWEEP.estimate(runs["oracle plan"])


def test_models_sweep_has_the_controls_and_the_references():
    runs = model_table.SWEEP.runs("full")
    assert runs[0]["kind"] == "references"
    plans = {r["factors"]["variant"]: r["train"]["model_options"].get("plan") for r in runs[1:]}
    assert {plans[v] for v in plans if v.startswith("AlignMamba-1,")} == {"oracle", "shuffled", "learned"}
    assert {r["train"]["model"] for r in runs[1:]} == set(MODELS)


def test_stress_grid_maps_each_knob_alone_and_the_combined_settings_with_their_references():
    runs = stress.SWEEP.runs("full")
    trained = [r for r in runs if r["kind"] == "train"]
    levels = {knob: sorted({r["factors"][knob] for r in trained
                            if all(r["factors"][k] == 0 for k in stress.KNOBS if k != knob)}) for knob in stress.KNOBS}
    tops = {"pause": 0.6, "skip": 0.4, "faint": 0.9, "nonlinear": 1.0}
    for knob, top in tops.items():
        assert len(levels[knob]) >= 4 and levels[knob][0] == 0.0 and levels[knob][-1] >= top, (knob, levels[knob])
    knobs = {r["factors"]["setting"]: {k: r["factors"][k] for k in stress.KNOBS} for r in runs}
    assert knobs["moderate"] == {"pause": 0.2, "skip": 0.1, "faint": 0.5, "nonlinear": 0.5}
    assert knobs["hard"] == {"pause": 0.4, "skip": 0.2, "faint": 0.75, "nonlinear": 1.0}
    for setting, values in knobs.items():
        mine = [r for r in runs if r["factors"]["setting"] == setting]
        references = [r for r in mine if r["kind"] == "references"]
        assert len(references) == 1 and all(r["data"] == references[0]["data"] for r in mine)
        assert {k: references[0]["data"].get(k, 0.0) for k in stress.KNOBS} == values
        assert {(r["factors"]["variant"], r["factors"]["seed"]) for r in mine if r["kind"] == "train"} == {
            (label, seed) for label in stress.PLANS for seed in (0, 1, 2)}
        assert all(r["data"]["preset"] == "mosi" for r in mine)
    plans = {r["train"]["model_options"]["plan"] for r in trained}
    assert plans == {"relaxed", "learned", "time_prior", "oracle", "shuffled"}
    assert stress.SWEEP.estimate(trained[0]) > 0


def test_stress_runs_record_accuracy_on_word_frames_pauses_floors_and_knobs(tmp_path):
    settings = {**stress.SWEEP.profiles["default"], "epochs": 1, "settings": {"pause 0.4": {"pause": 0.4}}}
    chosen = ("learned plan, no-word state", "oracle plan", "time-prior plan")
    grid = [r for r in stress.grid(settings) if r["kind"] == "references" or r["factors"]["variant"] in chosen]
    record = dataclasses.replace(stress.SWEEP, grid=lambda settings: grid).run(out=tmp_path, progress=False)
    for run in grid:
        done = record["runs"][run["id"]]
        assert done["factors"]["pause"] == 0.4 and done["factors"]["skip"] == 0.0
        if run["kind"] == "references":
            continue
        metrics = done["rows"][0]["metrics"]
        assert {"correspondence_accuracy_audio", "correspondence_accuracy_vision", "test_MAE", "test_Corr",
                "optimizer_steps", "stopped_by", "valid_flat", "pause_f1_audio", "vision_chance"} <= set(metrics)
        path = tmp_path / done["config"]["data"]
        assert synthetic.difficulty(path) == synthetic.Difficulty(pause=0.4)
        floors = analysis.correspondence_floors(load_mmsa(path).splits["test"])
        assert {k: metrics[k] for k in floors} == floors
        if run["factors"]["variant"] == "oracle plan":  # the true plan: every word frame found, every pause said
            assert metrics["correspondence_accuracy_audio"] == metrics["pause_f1_vision"] == 1.0
        if run["factors"]["variant"] == "time-prior plan":  # sends every frame somewhere: it never says "no word"
            assert metrics["pause_recall_audio"] == 0.0


def stress_record(accuracy, mae, set_level=1.0, bound=0.5):
    """A stress record by hand: ``accuracy[variant][setting]`` and ``mae[variant][setting]`` per seed 0, 1."""
    settings = {"clean": {}, "pause 0.2": {"pause": 0.2}, "pause 0.4": {"pause": 0.4}, "hard": stress.COMBINED["hard"]}
    grid, runs = [], {}
    for name, knobs in settings.items():
        where = {"setting": name, **{k: float(knobs.get(k, 0.0)) for k in stress.KNOBS}}
        run = {"id": f"references {name}", "factors": {"variant": "references", "model": "references", **where}}
        grid.append(run)
        runs[run["id"]] = {"factors": run["factors"], "rows": [
            {"reference": r, "reference_seed": seed, "metrics": {"MAE": value + 0.01 * seed}}
            for r, value in (("set_level", set_level), ("bound", bound)) for seed in (0, 1)]}
        for variant in accuracy:
            for seed in (0, 1):
                run = {"id": f"{name} {variant} {seed}", "factors": {"variant": variant, **where, "seed": seed}}
                grid.append(run)
                value = accuracy[variant][name]
                runs[run["id"]] = {"factors": run["factors"], "rows": [{"metrics": {
                    "correspondence_accuracy_audio": value, "correspondence_accuracy_vision": value + 0.1,
                    "test_MAE": mae[variant][name] + 0.02 * seed}}]}
    return {"sweep": "stress", "grid": grid, "runs": runs}


def test_stress_views_find_where_a_plan_breaks():
    record = stress_record(
        accuracy={"fragile": {"clean": 0.9, "pause 0.2": 0.7, "pause 0.4": 0.3, "hard": 0.2},
                  "sturdy": {"clean": 0.95, "pause 0.2": 0.9, "pause 0.4": 0.9, "hard": 0.9},
                  "blind": {"clean": 0.95, "pause 0.2": 0.9, "pause 0.4": 0.9, "hard": 0.9}},
        mae={"fragile": {"clean": 0.6, "pause 0.2": 0.7, "pause 0.4": 0.8, "hard": 0.99},
             "sturdy": {"clean": 0.6, "pause 0.2": 0.6, "pause 0.4": 0.65, "hard": 0.7},
             "blind": {"clean": 0.6, "pause 0.2": 1.2, "pause 0.4": 1.3, "hard": 1.3}})
    points = stress.breaking_points(record).set_index("variant")
    assert list(points.knob.unique()) == ["pause"]  # the other knobs were run at one level only
    assert points.broken_at["fragile"] == 0.4 and math.isnan(points.broken_at["sturdy"])
    assert points.broken_at["blind"] == 0.2  # its MAE reached set_level (1.005 over the two seeds)
    assert points.accuracy_at_top["fragile"] == pytest.approx(0.3) and points.MAE_at_top["sturdy"] == pytest.approx(0.66)
    hard = stress.combined_table(record).set_index("variant")
    assert set(stress.combined_table(record).setting) == {"hard"}
    assert hard.share_of_the_way["sturdy"] == pytest.approx((1.005 - 0.71) / (1.005 - 0.505))
    sentences = stress.summary(record)
    assert any(s.startswith("fragile breaks at pause 0.4") for s in sentences)
    assert any(s.startswith("sturdy holds up to pause 0.4") for s in sentences)
    assert any(s.startswith("On the hard setting, sturdy finds 0.90 of the word frames") for s in sentences)


def test_the_reading_map_scores_each_setting_and_finds_where_it_falls_to_the_guess(tmp_path):
    """Before training: on clean data no frame is a pause (pause F1 0: the no-word path only takes word
    frames); the floors are the data's own; and the breaking point is the lowest level at which the
    better path is no better than the proportional guess (checked on a map written by hand)."""
    settings = {"clean": {}, "pause 0.4": {"pause": 0.4}}
    found = stress.reading_map(settings, {"preset": "tiny", "n_clips": 90}, tmp_path)
    assert set(found.metric) == {"forced", "no_word", "proportional", "chance", "pause_f1"}
    values = found.set_index(["setting", "modality", "metric"])["value"]
    path = training.ensure_data({"preset": "tiny", "n_clips": 90, "seed": 0, "pause": 0.4}, tmp_path)
    floors = analysis.correspondence_floors(load_mmsa(path).splits["test"])
    assert {f"{m}_{f}": values["pause 0.4", m, f] for m in ("audio", "vision") for f in ("proportional", "chance")} == floors
    assert values["clean", "vision", "pause_f1"] == 0.0 and values["pause 0.4", "vision", "pause_f1"] > 0.3

    by_hand = []
    for level, forced, no_word in ((0.0, 0.8, 0.7), (0.5, 0.5, 0.45), (0.75, 0.4, 0.39), (0.9, 0.2, 0.3)):
        knobs = {k: (level if k == "faint" else 0.0) for k in stress.KNOBS}
        for metric, value in (("forced", forced), ("no_word", no_word), ("proportional", 0.4)):
            by_hand.append({"setting": f"faint {level:g}", **knobs, "modality": "audio", "seed": 0,
                            "metric": metric, "value": value})
    breaks = stress.reading_breaks(pd.DataFrame(by_hand)).set_index("knob")
    assert breaks.broken_at["faint"] == 0.75 and breaks.best_at_top["faint"] == 0.3
    assert math.isnan(breaks.broken_at["pause"])  # only its level 0 was mapped
    assert stress.reading_sentences(pd.DataFrame(by_hand))[2].startswith("audio: the reading falls to the proportional guess at faint 0.75")


def test_the_full_profile_refuses_a_dirty_library_unless_allowed(tmp_path, monkeypatch):
    """Committed results name one clean commit: from a tree with uncommitted library changes the full
    profile stops before any run, unless --allow-dirty, which the record keeps."""
    from alignlib.experiments import sweep as sweep_module

    monkeypatch.setattr(sweep_module, "software", lambda: {"git": "0123abc+dirty"})
    ablation = sweeps()["ablations"]
    with pytest.raises(sweep_module.SweepError, match="clean commit"):
        ablation.start("full", tmp_path, resume=False, device="cpu")
    _, _, record = ablation.start("full", tmp_path, resume=False, device="cpu", allow_dirty=True)
    assert record["allow_dirty"] is True
    _, _, record = ablation.start("default", tmp_path, resume=False, device="cpu")  # the default profile is for trying
    assert "allow_dirty" not in record
    monkeypatch.setattr(sweep_module, "software", lambda: {"git": "0123abc"})
    assert "allow_dirty" not in ablation.start("full", tmp_path, resume=False, device="cpu")[2]
