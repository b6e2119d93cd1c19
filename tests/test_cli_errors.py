"""A user's mistake on the command line: one line ``error: ...`` on stderr, exit code 2, no traceback;
a bug (any exception but a UserError) propagates: its traceback shows and the process exits 1."""
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from alignlib import PROJECT_ROOT
from alignlib import train as training
from alignlib.data import __main__ as data_cli
from alignlib.data import synthetic

SAMPLE = str(PROJECT_ROOT / "data_samples" / "synthetic_tiny.pkl")


def run_train(argv, capsys):
    code = training.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize("argv, message", [
    (["--data", "no/such/file.pkl"], "no/such/file.pkl: no such file"),
    (["--data", SAMPLE, "--epochs", "0"], "epochs: must be at least 1, got 0"),
    (["--data", SAMPLE, "--epochs", "-1"], "epochs: must be at least 1, got -1"),
    (["--data", SAMPLE, "--epochs", "two"], "epochs: expected an integer, got 'two'"),
    (["--data", SAMPLE, "--lr", "-0.1"], "lr: must be > 0"),
    (["--data", SAMPLE, "--set", "d_model=abc"], "d_model: expected an integer, got 'abc'"),
    (["--data", SAMPLE, "--set", "moe=maybe"], "moe: expected true or false"),
    (["--data", SAMPLE, "--set", "width=3"], "--set width: unknown model option"),
    (["--data", SAMPLE, "--set", "d_model"], "expected KEY=VALUE"),
    (["--data", SAMPLE, "--set", "readout=max"], "readout: unknown 'max'"),
    (["--data", SAMPLE, "--set", "plan=greedy"], "plan: unknown 'greedy'"),
    (["--data", SAMPLE, "--test-missing-rate", "1.5"], "test_missing_rate: must be in [0, 1)"),
    (["--data", SAMPLE, "--device", "gpu"], "device: unknown 'gpu'"),
    (["--data", SAMPLE, "--out", SAMPLE], "is a file, not a run folder"),
])
def test_train_cli_errors(argv, message, capsys):
    code, err = run_train(argv, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_malformed_data_and_unreadable_checkpoint(tmp_path, capsys):
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(pickle.dumps({"train": {}})[:-5])
    code, err = run_train(["--data", str(broken), "--out", str(tmp_path / "a")], capsys)
    assert code == 2 and err == [f"error: {broken}: not a readable MMSA pickle (UnpicklingError: pickle data was "
                                 "truncated); is the file truncated?"]
    not_mmsa = tmp_path / "list.pkl"
    not_mmsa.write_bytes(pickle.dumps([1, 2]))
    code, err = run_train(["--data", str(not_mmsa)], capsys)
    assert code == 2 and len(err) == 1 and "expected a dict with splits" in err[0]
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"not a checkpoint")
    code, err = run_train(["--data", SAMPLE, "--out", str(run), "--resume"], capsys)
    assert code == 2 and len(err) == 1 and "last.pt: unreadable checkpoint" in err[0]
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("- a list\n")
    code, err = run_train(["--data", SAMPLE, "--config", str(yaml_file)], capsys)
    assert code == 2 and err == [f"error: {yaml_file}: expected a mapping of options"]
    yaml_file.write_text("epochs: three\n")
    code, err = run_train(["--data", SAMPLE, "--config", str(yaml_file)], capsys)
    assert code == 2 and err == ["error: epochs: expected int, got 'three'"]


@pytest.mark.parametrize("argv, message", [
    (["synth", "--out", "{tmp}"], "is a folder"),
    (["synth", "--out", "{tmp}/x.pkl", "--n", "0"], "--n must be at least 3"),
    (["synth", "--out", "{tmp}/x.pkl", "--preset", "big"], "invalid choice: 'big'"),
    (["synth", "--out", "{sample}/x.pkl"], "is not a folder"),
    (["synth", "--out", "{tmp}/x.pkl", "--pause", "0.95"], "pause: must be in [0, 0.9], got 0.95"),
    (["synth", "--out", "{tmp}/x.pkl", "--faint", "-1"], "faint: must be in [0, 1.0], got -1.0"),
    (["synth", "--out", "{tmp}/x.pkl", "--skip", "lots"], "argument --skip: invalid float value: 'lots'"),
    (["bogus"], "invalid choice: 'bogus'"),
])
def test_data_cli_errors(argv, message, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, sample=SAMPLE) for a in argv]
    try:
        code = data_cli.main(argv)
    except SystemExit as exit:
        code = exit.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_a_real_process_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "alignlib.train", "--data", SAMPLE, "--epochs", "-1"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr == "error: epochs: must be at least 1, got -1\n"


def test_a_mistake_found_deep_in_training_is_still_one_line(tmp_path, capsys):
    """The oracle plan on data without its frame-to-word tables is refused where the dataset is built."""
    bare = tmp_path / "no_tables.pkl"
    bare.write_bytes(Path(SAMPLE).read_bytes())  # the pickle without its .correspondence.npz
    code, err = run_train(["--data", str(bare), "--model", "alignmamba1", "--set", "plan=oracle",
                           "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and len(err) == 1 and "needs the true frame-to-word tables" in err[0], err


def test_a_bug_is_not_reported_as_a_users_mistake(tmp_path, monkeypatch):
    """A ValueError that is not a UserError (here: raised inside training) propagates: the traceback shows."""
    def broken(config, progress=True):
        raise ValueError("expected a (B, T, d) tensor, got (B, d)")

    monkeypatch.setattr(training, "train", broken)
    with pytest.raises(ValueError, match=r"got \(B, d\)"):
        training.main(["--data", SAMPLE, "--out", str(tmp_path / "run")])
    monkeypatch.setattr(synthetic, "generate", lambda *args, **knobs: (_ for _ in ()).throw(ValueError("internal")))
    with pytest.raises(ValueError, match="internal"):
        data_cli.main(["synth", "--out", str(tmp_path / "x.pkl")])


def test_a_bug_exits_1_with_its_traceback(tmp_path):
    program = ("import sys; from alignlib import train\n"
               "def broken(config, progress=True): raise ValueError('internal: shapes disagree')\n"
               f"train.train = broken; sys.exit(train.main(['--data', {SAMPLE!r}, '--out', {str(tmp_path / 'run')!r}]))")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.startswith("Traceback (most recent call last)")
    assert result.stderr.strip().splitlines()[-1] == "ValueError: internal: shapes disagree"


def test_sweep_and_notebook_clis_report_a_mistake_in_one_line(tmp_path, capsys, monkeypatch):
    from alignlib import notebooks
    from alignlib.experiments import __main__ as experiments_cli
    from alignlib.experiments import sweeps
    from alignlib.experiments.sweep import Sweep

    sweeps()["missing"].results_path(tmp_path).write_text("{}")
    assert experiments_cli.main(["missing", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "pass --resume" in err[0], err
    monkeypatch.setattr(Sweep, "run", lambda *args, **kwargs: (_ for _ in ()).throw(KeyError("runs")))
    with pytest.raises(KeyError):  # a bug in a sweep is not a user's mistake
        experiments_cli.main(["missing", "--out", str(tmp_path / "other"), "--quiet"])
    monkeypatch.setattr(notebooks, "PARAMS_DIR", tmp_path / "no_params")  # no full-profile parameters
    assert notebooks.main(["run", "--only", "01", "--profile", "full", "--out", str(tmp_path / "nb")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and "01_optimal_transport.ipynb: no full parameter file" in err[0], err
