"""The trainer: reproducible, resumable, atomic checkpoints, clear errors, and DDP with two gloo
processes following the single-process loss trajectory."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from alignlib import PROJECT_ROOT
from alignlib import train as training
from alignlib.data import MMSADataset, collate, load_mmsa
from alignlib.models.checkpoint import CheckpointError
from alignlib.models.sentiment import MODELS, build_model

SAMPLE = str(PROJECT_ROOT / "data_samples" / "synthetic_tiny.pkl")
SMALL = {"d_model": 16, "n_layers": 1, "d_state": 4}


def config(tmp_path, name="run", **overrides):
    values = dict(model="concat", data=SAMPLE, out=str(tmp_path / name), epochs=2, batch_size=32,
                  model_options=dict(SMALL))
    values.update(overrides)
    return training.TrainConfig(**values)


def log(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_takes_the_same_batch(name):
    data = load_mmsa(SAMPLE)
    batch = collate([MMSADataset(data.splits["train"])[i] for i in range(4)])
    torch.manual_seed(0)
    model = build_model(name, data.dims, training.ModelConfig(**SMALL))
    prediction, aux = model(batch)
    assert prediction.shape == (4,) and all(v.dim() == 0 for v in aux.values())
    (prediction.sum() + sum(aux.values())).backward()
    model.eval()
    assert "ot" not in model(batch)[1], "no OT at inference"


def test_same_seed_same_metrics(tmp_path):
    first = training.train(config(tmp_path, "a", model="alignmamba2"), progress=False)
    second = training.train(config(tmp_path, "b", model="alignmamba2"), progress=False)
    assert first == second
    records = log(tmp_path / "a")
    assert len(records) == 2 and {"train_ot", "train_mmd", "valid_MAE"} <= set(records[0])
    assert json.loads((tmp_path / "a" / "test_metrics.json").read_text())["MAE"] == first["MAE"]


def test_interrupted_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path):
    straight = training.train(config(tmp_path, "straight", epochs=3), progress=False)
    training.train(config(tmp_path, "resumed", epochs=1), progress=False)  # "interrupted" after epoch 1
    resumed = training.train(config(tmp_path, "resumed", epochs=3, resume=True), progress=False)
    assert resumed == straight
    assert [r["train_loss"] for r in log(tmp_path / "resumed")] == [r["train_loss"] for r in log(tmp_path / "straight")]


def test_a_resumed_run_drops_epochs_logged_after_its_checkpoint(tmp_path):
    training.train(config(tmp_path, "straight", epochs=2), progress=False)
    training.train(config(tmp_path, "resumed", epochs=1), progress=False)
    with open(tmp_path / "resumed" / "metrics.jsonl", "a") as handle:  # killed after logging epoch 2, before saving it
        handle.write(json.dumps({"epoch": 2, "train_loss": -1.0}) + "\n")
    training.train(config(tmp_path, "resumed", epochs=2, resume=True), progress=False)
    assert log(tmp_path / "resumed") == log(tmp_path / "straight")


def test_checkpoint_errors_and_atomic_writes(tmp_path, monkeypatch):
    training.train(config(tmp_path, epochs=1), progress=False)
    last = tmp_path / "run" / "last.pt"
    good = last.read_bytes()
    with pytest.raises(CheckpointError, match="made for model 'concat', not 'multistream'"):
        training.train(config(tmp_path, model="multistream", resume=True), progress=False)
    with pytest.raises(CheckpointError, match="made with model options .*'d_model': 16.*not .*'d_model': 32"):
        training.train(config(tmp_path, resume=True, model_options={**SMALL, "d_model": 32}), progress=False)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        training.train(config(tmp_path, epochs=2, resume=True), progress=False)
    assert last.read_bytes() == good, "a failed save leaves the previous checkpoint intact"
    monkeypatch.undo()
    last.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="unreadable checkpoint"):
        training.train(config(tmp_path, resume=True), progress=False)


def test_data_that_does_not_fit_the_model(tmp_path):
    data = load_mmsa(SAMPLE)
    model = build_model("concat", {**data.dims, "audio": 7}, training.ModelConfig(**SMALL))
    batch = collate([MMSADataset(data.splits["train"])[0]])
    with pytest.raises(ValueError, match="audio features are 5-d but the model was built for 7-d"):
        model(batch)
    with pytest.raises(ValueError, match="unknown model 'gpt'"):
        build_model("gpt", data.dims)
    with pytest.raises(ValueError, match="unknown model option"):
        training.ModelConfig.from_dict({"width": 3})


def test_cli(tmp_path, capsys):
    with pytest.raises(SystemExit):
        training.parse_args(["--help"])
    help_text = capsys.readouterr().out
    for option in ("--model", "--data", "--out", "--epochs", "--config", "--resume", "--bf16", "--set"):
        assert option in help_text
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("model: mult\nepochs: 4\nmodel_options: {d_model: 8}\n")
    parsed = training.parse_args(["--config", str(yaml_file), "--data", SAMPLE, "--epochs", "2", "--set", "n_heads=2"])
    assert (parsed.model, parsed.epochs, parsed.model_options) == ("mult", 2, {"d_model": 8, "n_heads": 2})
    with pytest.raises(training.UsageError, match="invalid choice: 'gpt'"):
        training.parse_args(["--model", "gpt", "--data", SAMPLE])
    for f in training.dataclasses.fields(training.TrainConfig):  # every field is a flag
        if f.name != "model_options":
            assert "--" + f.name.replace("_", "-") in help_text
    for f in training.dataclasses.fields(training.ModelConfig):  # every model option is documented for --set
        assert f"{f.name} ({f.type}" in " ".join(help_text.split())


def test_missing_modalities_at_test_time(tmp_path):
    """Table 1's protocol: modalities dropped at inference only, seeded, at least one kept."""
    full = training.train(config(tmp_path, "full", epochs=1), progress=False)
    dropped = training.train(config(tmp_path, "dropped", epochs=1, test_missing_rate=0.5), progress=False)
    assert dropped["test_missing_rate"] == 0.5 and full["test_missing_rate"] == 0.0
    assert log(tmp_path / "full") == log(tmp_path / "dropped"), "training is untouched"
    data = load_mmsa(SAMPLE)
    torch.manual_seed(0)
    model = build_model("concat", data.dims, training.ModelConfig(**SMALL))
    split = data.splits["test"]
    present = training.missing_modality_mask(len(split), 0.5, seed=0)
    _, with_present = training.evaluate(model, split, 32, torch.device("cpu"), present)
    zeroed = MMSADataset(split, present)
    batch = collate([zeroed[i] for i in range(len(split))])
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(with_present), model(batch)[0])
    assert (~present).any() and present.any(axis=1).all()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_gloo_processes_follow_the_single_process_trajectory(tmp_path):
    """torchrun on one machine (``--standalone``), and as two nodes of one process each meeting at a
    c10d rendezvous endpoint (the multi-node command of the README, both nodes here), follow the
    single process's losses and validation MAE."""
    common = ["--model", "concat", "--data", SAMPLE, "--epochs", "2", "--batch-size", "32", "--device", "cpu",
              "--set", "d_model=16", "--set", "n_layers=1", "--set", "d_state=4", "--set", "dropout=0.0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "alignlib.train", *common, "--out", str(tmp_path / "one")],
                   check=True, capture_output=True, env=env)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    "-m", "alignlib.train", *common, "--out", str(tmp_path / "two")],
                   check=True, capture_output=True, env=env)
    rendezvous = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                  "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "test"]
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *rendezvous, "-m", "alignlib.train",
                               *common, "--out", str(tmp_path / "nodes")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    assert all(node.wait(timeout=120) == 0 for node in nodes), [node.stderr.read()[-2000:] for node in nodes]
    one = log(tmp_path / "one")
    for two in (log(tmp_path / "two"), log(tmp_path / "nodes")):
        assert len(two) == len(one) == 2
        for a, b in zip(one, two):
            assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
            assert b["valid_MAE"] == pytest.approx(a["valid_MAE"], rel=1e-4)


def test_fused_and_chunked_scans_train_to_the_same_metrics(tmp_path, monkeypatch):
    """The fused C++ scan (the CPU default) and the pure-PyTorch chunked scan give one training run,
    to float tolerance, at a fixed seed."""
    import alignlib.ssm.mamba

    fused = training.train(config(tmp_path, "fused", model="alignmamba2", epochs=2), progress=False)
    scan, calls = alignlib.ssm.mamba.selective_scan, []

    def chunked_scan(*args, **kwargs):
        calls.append(kwargs["backend"])
        return scan(*args, **{**kwargs, "backend": "chunked"})

    monkeypatch.setattr(alignlib.ssm.mamba, "selective_scan", chunked_scan)
    chunked = training.train(config(tmp_path, "chunked", model="alignmamba2", epochs=2), progress=False)
    assert calls and set(calls) == {"auto"}, "every Mamba block went through the chunked scan"
    for name in ("MAE", "Corr", "Non0_acc_2"):
        assert chunked[name] == pytest.approx(fused[name], abs=1e-4), name
    fused_log, chunked_log = log(tmp_path / "fused"), log(tmp_path / "chunked")
    for a, b in zip(fused_log, chunked_log):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)


@pytest.mark.parametrize("history, window, flat", [
    ([1.0, 0.8, 0.7], 2, False),  # too short to tell
    ([1.0, 0.8, 0.7, 0.699, 0.70], 2, True),  # the last two epochs gained 0.1 %
    ([1.0, 0.8, 0.7, 0.65, 0.66], 2, False),  # still falling by 7 %
])
def test_validation_flat(history, window, flat):
    assert training.validation_flat(history, window) is flat


def test_results_record_how_training_ended(tmp_path):
    budget = training.train(config(tmp_path, "budget", epochs=5, max_steps=4), progress=False)
    assert (budget["optimizer_steps"], budget["epochs_run"], budget["stopped_by"]) == (6, 2, "steps")  # 3 batches an epoch
    assert [r["steps"] for r in log(tmp_path / "budget")] == [3, 6]
    patient = training.train(config(tmp_path, "patient", epochs=30, patience=1, lr=0.5), progress=False)
    assert patient["stopped_by"] == "patience" and patient["valid_flat"] and patient["epochs_run"] < 30
    resumed = training.train(config(tmp_path, "budget", epochs=5, max_steps=4, resume=True), progress=False)
    assert resumed == budget  # a finished run resumed reports the same ending


def test_only_the_oracle_controls_are_given_the_tables(tmp_path):
    for plan, given in [("relaxed", False), ("learned", False), ("oracle", True), ("shuffled", True)]:
        run = training.build_run(config(tmp_path, plan, model="alignmamba1", model_options={"plan": plan}),
                                 torch.device("cpu"), 0, 1)
        batch = collate([run.train_set[i] for i in range(4)])
        assert (batch.alignment is not None) is given, plan
    learned = training.train(config(tmp_path, "learned", model="alignmamba1", epochs=1, model_options={"plan": "learned"}),
                             progress=False)
    assert "train_align" in log(tmp_path / "learned")[0] and learned["optimizer_steps"] == 3
