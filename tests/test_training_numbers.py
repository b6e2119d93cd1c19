"""Every model's numbers after 20 seeded training steps equal those of the reference commit e50c9c7
to 1e-5: the optimisations of the training step (validation at loading time, layouts, the OT loss's
iterations) change no number.

``tests/training_numbers.json`` was written by this file's ``__main__`` on e50c9c7's library
(``git archive e50c9c7 alignlib | tar -x -C DIR; PYTHONPATH=DIR python tests/test_training_numbers.py``):
per model, the training loss of each epoch (``alignlib.train``'s ``metrics.jsonl``) and the loss
(L1 + auxiliary losses) of the model after 20 steps on the first 32 training clips, in eval mode.
"""
import json
import sys
from pathlib import Path

import pytest
import torch

from alignlib import PROJECT_ROOT

RECORDED = Path(__file__).with_name("training_numbers.json")
DATA = PROJECT_ROOT / "data_samples" / "synthetic_tiny.pkl"
STEPS = 20
VARIANTS = {"alignmamba1": {}, "alignmamba1-learned-plan": {"plan": "learned"}, "alignmamba2": {},
            "alignmamba2-learned-routing": {"routing": "learned"}, "coupled": {}, "concat": {},
            "multistream": {}, "mult": {}}


def numbers(variant: str, out: Path) -> dict:
    """``variant`` trained for :data:`STEPS` seeded steps (two epochs of batch 10, d_model 16, 2 layers, dropout 0.2):
    its epochs' training losses and its loss on the first 32 training clips afterwards."""
    from alignlib.data import MMSADataset, collate, load_mmsa
    from alignlib.models.checkpoint import load_model
    from alignlib.train import TrainConfig, train

    model = variant.split("-")[0]
    config = TrainConfig(model=model, data=str(DATA), out=str(out), epochs=2, batch_size=10, max_steps=STEPS,
                         patience=100, seed=0, device="cpu",
                         model_options={"d_model": 16, "n_layers": 2, "d_state": 4, **VARIANTS[variant]})
    train(config, progress=False)
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    trained, _ = load_model(out / "last.pt")
    split = load_mmsa(str(DATA)).splits["train"]
    dataset = MMSADataset(split, alignment=getattr(trained, "needs_alignment", False))
    batch = collate([dataset[i] for i in range(32)])
    with torch.no_grad():
        prediction, aux = trained(batch)
        loss = torch.nn.functional.l1_loss(prediction, batch.labels) + sum(aux.values())
    return {"steps": log[-1]["steps"], "train_loss": [entry["train_loss"] for entry in log], "loss": loss.item()}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_losses_after_20_steps_equal_the_reference_commits(variant, tmp_path):
    expected = json.loads(RECORDED.read_text())[variant]
    got = numbers(variant, tmp_path)
    assert got["steps"] == expected["steps"] == STEPS
    assert got["train_loss"] == pytest.approx(expected["train_loss"], rel=1e-5, abs=1e-6)
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-5, abs=1e-6)


if __name__ == "__main__":  # record the numbers of the library on PYTHONPATH
    import tempfile

    recorded = {}
    for name in sorted(VARIANTS):
        with tempfile.TemporaryDirectory() as folder:
            recorded[name] = numbers(name, Path(folder))
        print(name, recorded[name], file=sys.stderr)
    RECORDED.write_text(json.dumps(recorded, indent=1) + "\n")
