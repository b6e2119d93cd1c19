"""A user's mistake on the command line: one line ``error: ...`` on stderr, exit code 2, no traceback."""
import pickle
import subprocess
import sys

import pytest

from alignlib import PROJECT_ROOT
from alignlib import train as training
from alignlib.data import __main__ as data_cli

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
