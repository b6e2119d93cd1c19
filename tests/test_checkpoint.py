"""The one checkpoint format: written by the trainer, read with ``weights_only=True``, rebuilt into the
model that was trained; a missing, truncated or foreign file is a one-line error and runs no code."""
import pickle
from pathlib import Path

import pytest
import torch

from alignlib.data import load_mmsa
from alignlib.models.checkpoint import FORMAT, CheckpointError, load_model, read_checkpoint
from alignlib.train import TrainConfig, evaluate, train

PROJECT = Path(__file__).resolve().parents[1]
SAMPLE = str(PROJECT / "data_samples" / "synthetic_tiny.pkl")


class RunsCode:
    """Unpickling this calls ``Path.touch`` on ``marker``: what a checkpoint from elsewhere could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(model="alignmamba1", data=SAMPLE, out=str(out), epochs=1, batch_size=32,
                         model_options={"d_model": 8, "n_layers": 1})
    return config, train(config, progress=False)


def test_a_trained_run_is_plain_data_and_tensors_and_rebuilds_its_model(run):
    config, metrics = run
    state = read_checkpoint(Path(config.out) / "last.pt")
    assert state["format"] == FORMAT and state["model_name"] == "alignmamba1" and state["epoch"] == 0
    assert state["config"]["model_options"] == {"d_model": 8, "n_layers": 1}
    assert all(isinstance(v, torch.Tensor) for v in state["model"].values()) and isinstance(state["rng"], torch.Tensor)
    model, best = load_model(config.out)
    assert not model.training and best["format"] == FORMAT
    tested, _ = evaluate(model, load_mmsa(SAMPLE).splits["test"], 32, torch.device("cpu"))
    assert tested["MAE"] == metrics["MAE"]


def test_missing_truncated_and_foreign_files_get_one_line_and_run_no_code(run, tmp_path):
    config, _ = run
    with pytest.raises(CheckpointError, match=f"no checkpoint at {tmp_path / 'best.pt'}"):
        load_model(tmp_path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((Path(config.out) / "last.pt").read_bytes()[:1000])
    marker = tmp_path / "code-ran"
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": FORMAT, "model": RunsCode(marker)}, foreign)
    pickled = tmp_path / "pickled.pt"
    pickled.write_bytes(pickle.dumps(RunsCode(marker), protocol=2))
    plain = tmp_path / "plain.pt"
    torch.save({"model": {}}, plain)
    for path, message in ((truncated, "unreadable checkpoint"), (foreign, "unreadable checkpoint"),
                          (pickled, "unreadable checkpoint"), (plain, "not an alignlib checkpoint")):
        with pytest.raises(CheckpointError) as error:
            read_checkpoint(path)
        assert str(error.value).startswith(f"{path}: {message}") and "\n" not in str(error.value)
    assert not marker.exists(), "loading a checkpoint ran code"


def test_no_module_loads_with_weights_only_false():
    offenders = [str(p.relative_to(PROJECT)) for p in (PROJECT / "alignlib").rglob("*.py")
                 if "weights_only=False" in p.read_text()]
    assert not offenders
