from dataclasses import replace

import pytest
import torch

from harkit import HarkitError
from harkit.models import create_model
from harkit.training.checkpoint import load_checkpoint
from harkit.training.engine import train
from harkit.transfer import load_pretrained


@pytest.fixture
def source_run(tiny_config, tmp_path):
    return train(replace(tiny_config, epochs=1), tmp_path / "source", progress=False, evaluate=False)


def test_features_copied_and_head_fresh(source_run):
    source = load_checkpoint(source_run / "best.pt")["state_dict"]
    target = create_model("sann", 32, 3, 12, width=0.125)
    counts = load_pretrained(target, source_run, ["acc_x", "acc_y", "acc_z"], "sann")
    state = target.state_dict()
    assert torch.equal(state["stages.0.0.weight"], source["stages.0.0.weight"])
    assert torch.equal(state["stages.3.1.conv.weight"], source["stages.3.1.conv.weight"])
    assert state["head.weight"].shape == (12, 64 * 3)
    assert counts["copied"] > 10 and counts["initialised"] == 2


def test_input_weights_follow_channel_names(tiny_config, tmp_path):
    config = replace(tiny_config, model="lstm", epochs=1, model_options={"hidden": 8})
    run = train(config, tmp_path / "lstm", progress=False, evaluate=False)
    source = load_checkpoint(run / "best.pt")["state_dict"]["lstm.weight_ih_l0"]
    target = create_model("lstm", 32, 3, 4, hidden=8)
    load_pretrained(target, run, ["gyro_x", "acc_x", "magnet_x"], "lstm")
    mapped = target.state_dict()["lstm.weight_ih_l0"]
    assert torch.equal(mapped[:, 0], source[:, 3]) and torch.equal(mapped[:, 1], source[:, 0])
    assert (mapped[:, 2] == 0).all()


def test_fine_tune_with_frozen_features(source_run, tiny_config, tmp_path):
    config = replace(
        tiny_config,
        epochs=1,
        init_from=str(source_run),
        freeze_features=True,
        dataset_options={"transitions": True},
        window=32,
    )
    run = train(config, tmp_path / "fine", progress=False, evaluate=False)
    before = load_checkpoint(source_run / "best.pt")["state_dict"]
    after = load_checkpoint(run / "last.pt")["state_dict"]
    assert torch.equal(before["stages.1.0.weight"], after["stages.1.0.weight"])
    assert after["head.weight"].shape[0] == 12


def test_wrong_model_is_refused(source_run):
    with pytest.raises(HarkitError, match="holds a sann model"):
        load_pretrained(create_model("cnn", 32, 6, 6), source_run, ["acc_x"], "cnn")
